"""The built-in training methods of ``kgc train``.

Each is a :class:`kgcore.training.TrainingMethod`: how the base model loads (``qlora``: quantized),
and which parameters train (a LoRA / prompt-learning wrapper, all weights, or some layers).
``kgcore.training.train`` does the rest (data, adapters to continue from, the Trainer, saving).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from kgcore.errors import InputError
from kgcore.training import TrainConfig, TrainContext, TrainingMethod, resolve_lora_targets


class BuiltinMethod(TrainingMethod):
    """Knows the DeepSpeed configs shipped in ``kgc_trainers.deepspeed`` by name (``zero2``, ``zero3_offload``, ...)."""

    def deepspeed_config(self, value: str) -> Any:
        from kgc_trainers.deepspeed import deepspeed_config

        return str(deepspeed_config(value))


class LoraMethod(BuiltinMethod):
    """LoRA adapters (peft) on the family's target modules (or ``lora_target_modules``)."""

    name = "lora"
    summary = "LoRA adapters (peft)"
    produces = "adapter"
    continues = ("LORA",)

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        if ctx.continued:  # the last of config.adapters, loaded trainable, keeps its own r/alpha/targets
            return model
        from peft import LoraConfig, TaskType, get_peft_model

        targets = resolve_lora_targets(model, config, ctx.family)
        peft_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_r, lora_alpha=config.resolved_lora_alpha,
                                 lora_dropout=config.lora_dropout, target_modules=targets,
                                 modules_to_save=config.lora_modules_to_save)
        return get_peft_model(model, peft_config)


class QLoraMethod(LoraMethod):
    """LoRA on a bitsandbytes 4/8-bit base model (also on CPU with bitsandbytes >= 0.48)."""

    name = "qlora"
    summary = "LoRA on a 4/8-bit quantized model"

    def check(self, config: TrainConfig) -> list[tuple[str, str]]:
        problems = []
        if importlib.util.find_spec("bitsandbytes") is None:
            problems.append(("method", "qlora needs bitsandbytes: pip install bitsandbytes (or 'kgcore[quant]')"))
        if config.quantization.bits == 8 and config.quantization.quant_type != "nf4":
            problems.append(("quantization.quant_type", "quant_type applies to 4 bits only"))
        return problems

    def quantization_config(self, config: TrainConfig, torch: Any, transformers: Any) -> Any:
        q = config.quantization
        if q.bits == 8:
            return transformers.BitsAndBytesConfig(load_in_8bit=True)
        compute = q.compute_dtype
        if compute == "auto":
            compute = "bfloat16" if config.bf16 else "float16" if config.fp16 else "float32"
        return transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                                               bnb_4bit_use_double_quant=q.double_quant,
                                               bnb_4bit_compute_dtype=getattr(torch, compute))

    def prepare_base(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        from peft import prepare_model_for_kbit_training

        # fp32 norms/embeddings and input gradients; checkpointing only when asked (the reference forced it)
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})


class FullMethod(BuiltinMethod):
    """Every weight trains (fp32 master weights, as the reference's ``model.float()``)."""

    name = "full"
    summary = "full fine-tuning"
    produces = "model"
    uses_peft = False

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        if not config.deepspeed:
            model = model.float()
        for param in model.parameters():
            param.requires_grad_(True)
        return model


def _num_layers(model: Any) -> int:
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "get_text_config", lambda: cfg)()
    for attr in ("num_hidden_layers", "num_layers", "n_layer"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise InputError("cannot tell how many layers this model has (no num_hidden_layers in its config)",
                     field="freeze_trainable_layers")


class FreezeMethod(BuiltinMethod):
    """Only ``freeze_modules`` of the last ``freeze_trainable_layers`` layers train (negative: the first)."""

    name = "freeze"
    summary = "train some modules of the first/last N layers"
    produces = "model"
    uses_peft = False

    def trainable_layers(self, model: Any, config: TrainConfig) -> list[int]:
        total, n = _num_layers(model), config.freeze_trainable_layers
        if abs(n) > total:
            raise InputError(f"{n} layers asked, the model has {total}", field="freeze_trainable_layers")
        return list(range(total - n, total)) if n > 0 else list(range(-n))

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        layers = set(self.trainable_layers(model, config))
        wanted = [m.split(".") for m in config.freeze_modules]
        found: set[str] = set()
        trained = 0
        for name, param in model.named_parameters():
            parts = name.split(".")
            # the first numeric component is the layer index (the reference matched "{idx}.{module}" as a
            # substring, so layer 1 also caught layers 11, 21, ...)
            index = next((i for i, p in enumerate(parts) if p.isdigit()), None)
            on = False
            if index is not None and int(parts[index]) in layers:
                rest = parts[index + 1:]
                if rest:
                    found.add(rest[0])
                on = any(m == ["all"] or rest[:len(m)] == m for m in wanted)
            param.requires_grad_(on)
            if on:
                param.data = param.data.float()
                trained += 1
        if not trained:
            raise InputError(f"freeze_modules {config.freeze_modules} match no parameter of layers "
                             f"{sorted(layers)}; modules of a layer: {', '.join(sorted(found)) or '?'} (or 'all')",
                             field="freeze_modules")
        return model


class _PromptLearning(BuiltinMethod):
    produces = "adapter"
    mergeable = False

    def peft_config(self, config: TrainConfig, hidden: int) -> Any:
        raise NotImplementedError

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        if ctx.continued:
            return model
        from peft import get_peft_model

        cfg = getattr(model.config, "get_text_config", lambda: model.config)()
        hidden = config.encoder_hidden_size or getattr(cfg, "hidden_size", None) or 512
        return get_peft_model(model, self.peft_config(config, hidden))


class PTuningMethod(_PromptLearning):
    """P-tuning: trained virtual tokens produced by an MLP prompt encoder (peft ``PromptEncoderConfig``)."""

    name = "ptuning"
    summary = "P-tuning (prompt encoder)"
    continues = ("P_TUNING",)

    def peft_config(self, config: TrainConfig, hidden: int) -> Any:
        from peft import PromptEncoderConfig, TaskType

        return PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens,
                                   encoder_hidden_size=hidden)


class PrefixMethod(_PromptLearning):
    """Prefix tuning = P-tuning v2 (the reference's ChatGLM ``pre_seq_len``/``prefix_projection``)."""

    name = "prefix"
    summary = "prefix tuning / P-tuning v2"
    continues = ("PREFIX_TUNING",)

    def peft_config(self, config: TrainConfig, hidden: int) -> Any:
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens,
                                  prefix_projection=config.prefix_projection, encoder_hidden_size=hidden)


__all__ = ["BuiltinMethod", "FreezeMethod", "FullMethod", "LoraMethod", "PTuningMethod", "PrefixMethod", "QLoraMethod"]
