"""The built-in training methods of ``kgc train``; each reads its own section of the config.

How the base model loads (``qlora``: quantized) and which parameters train: a LoRA or
prompt-learning wrapper (peft), every weight, or some modules of some layers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from kgcore.errors import InputError

from .config import TrainConfig
from .families import ALL_LINEAR, ModelFamily
from .method import TrainContext, TrainingMethod


def linear_module_names(model: Any, exclude: Sequence[str] = ("lm_head",)) -> list[str]:
    """Last name components of every linear layer (bitsandbytes 4/8-bit ones included), minus ``exclude``."""
    import torch

    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            last = full_name.rsplit(".", 1)[-1]
            if last not in exclude and full_name not in exclude:
                names.add(last)
    return sorted(names)


def resolve_lora_targets(model: Any, config: TrainConfig, family: ModelFamily) -> list[str]:
    """The config's LoRA target modules, else the family's; ``all`` = :func:`linear_module_names`.
    A name that matches no module is an error listing the model's linear layers."""
    targets = config.lora.target_modules if config.lora.target_modules is not None else family.lora_target_modules
    available = linear_module_names(model, family.lora_exclude_modules)
    if targets in ("all", ALL_LINEAR):
        return available
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        origin = "lora.target_modules" if config.lora.target_modules is not None else f"family '{family.name}'"
        raise InputError(f"LoRA target module(s) {', '.join(missing)} (from {origin}) match no module of "
                         f"'{config.model}'; its linear layers: {', '.join(available)} (or use 'all')",
                         field="lora.target_modules")
    return list(targets)


class LoraMethod(TrainingMethod):
    """LoRA adapters (peft) on the family's target modules (or ``lora.target_modules``)."""

    continues = ("LORA",)

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        if ctx.continued:  # the last of config.adapters, loaded trainable, keeps its own r/alpha/targets
            return model
        from peft import LoraConfig, TaskType, get_peft_model

        lora = config.lora
        targets = resolve_lora_targets(model, config, ctx.family)
        peft_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora.r, lora_alpha=lora.resolved_alpha,
                                 lora_dropout=lora.dropout, target_modules=targets,
                                 modules_to_save=lora.modules_to_save)
        return get_peft_model(model, peft_config)


class QLoraMethod(LoraMethod):
    """LoRA on a bitsandbytes 4/8-bit base model (also on CPU with bitsandbytes >= 0.48)."""

    def check(self, config: TrainConfig) -> list[tuple[str, str]]:
        problems = []
        if importlib.util.find_spec("bitsandbytes") is None:
            problems.append(("method", "qlora needs bitsandbytes: pip install bitsandbytes (or 'kgcore[quant]')"))
        if config.quantization.bits == 8 and config.quantization.quant_type != "nf4":
            problems.append(("quantization.quant_type", "quant_type applies to 4 bits only"))
        return problems

    def quantization_config(self, config: TrainConfig, torch: Any, transformers: Any) -> Any:
        from kgc_backends.loading import bitsandbytes_config

        q = config.quantization
        return bitsandbytes_config(transformers, torch, q.bits, q.quant_type, q.double_quant,
                                   config.concrete_dtype(q.compute_dtype))

    def prepare_base(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        from peft import prepare_model_for_kbit_training

        # fp32 norms/embeddings and input gradients; checkpointing only when asked (the reference forced it)
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})


class FullMethod(TrainingMethod):
    """Every weight trains (fp32 master weights, as the reference's ``model.float()``)."""

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
                     field="freeze.trainable_layers")


class FreezeMethod(TrainingMethod):
    """Only ``freeze.modules`` of the last ``freeze.trainable_layers`` layers train (negative: the first)."""

    produces = "model"
    uses_peft = False

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        total, n = _num_layers(model), config.freeze.trainable_layers
        if abs(n) > total:
            raise InputError(f"{n} layers asked, the model has {total}", field="freeze.trainable_layers")
        layers = set(range(total - n, total) if n > 0 else range(-n))
        wanted = [m.split(".") for m in config.freeze.modules]
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
            raise InputError(f"freeze modules {config.freeze.modules} match no parameter of layers {sorted(layers)}; "
                             f"modules of a layer: {', '.join(sorted(found)) or '?'} (or 'all')",
                             field="freeze.modules")
        return model


class _PromptLearning(TrainingMethod):
    mergeable = False

    def peft_config(self, config: TrainConfig, hidden: int) -> Any:
        raise NotImplementedError

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        if ctx.continued:
            return model
        from peft import get_peft_model

        cfg = getattr(model.config, "get_text_config", lambda: model.config)()
        hidden = config.prompt_learning.encoder_hidden_size or getattr(cfg, "hidden_size", None) or 512
        return get_peft_model(model, self.peft_config(config, hidden))


class PTuningMethod(_PromptLearning):
    """P-tuning: trained virtual tokens produced by an MLP prompt encoder (peft ``PromptEncoderConfig``)."""

    continues = ("P_TUNING",)

    def peft_config(self, config: TrainConfig, hidden: int) -> Any:
        from peft import PromptEncoderConfig, TaskType

        return PromptEncoderConfig(task_type=TaskType.CAUSAL_LM,
                                   num_virtual_tokens=config.prompt_learning.num_virtual_tokens,
                                   encoder_hidden_size=hidden)


class PrefixMethod(_PromptLearning):
    """Prefix tuning = P-tuning v2 (the reference's ChatGLM ``pre_seq_len``/``prefix_projection``)."""

    continues = ("PREFIX_TUNING",)

    def peft_config(self, config: TrainConfig, hidden: int) -> Any:
        from peft import PrefixTuningConfig, TaskType

        options = config.prompt_learning
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=options.num_virtual_tokens,
                                  prefix_projection=options.prefix_projection, encoder_hidden_size=hidden)
