"""``kgc train``: one training run, step by step, through ``transformers``' ``Trainer``.

:func:`train` checks the output folder, reads the data (before any model loads, so data errors come
fast), loads the tokenizer and finds the model family, encodes the records, sets up the Trainer's
arguments (which also sets up torch.distributed under torchrun), prepares the output folder, loads the
model (adapters to continue from, then the training method's preparation), trains, and writes the
result, the log, the loss plot and the run's metadata. Only the main process writes files and fires
the ``train`` run hooks.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgcore.prompt import AUTO
from kgcore.errors import InputError, KGCError
from kgcore.plugins import PluginHost, get_host
from kgcore.prediction import package_versions

from .config import CONFIG_FILE, TrainConfig, check_config, load_config, save_config
from .data import DataStats, Examples, PadCollator, PromptEncoder, encode_records, hold_out, read_records
from .families import ALL_LINEAR, ModelFamily, resolve_family
from .logs import LOG_FILE, PLOT_FILE, log_callback, plot_loss, read_log
from .method import TrainContext, TrainingMethod

META_FILE = "kgc_train_meta.json"
#: Settings that may change when a run is resumed without a warning.
_RESUME_FREE = {"epochs", "max_steps", "resume", "overwrite_output_dir", "logging_steps", "eval_strategy", "eval_steps",
                "eval_on_start", "save_strategy", "save_steps", "save_total_limit", "plot_loss",
                "dataloader_num_workers", "max_eval_samples", "dev_file", "eval_batch_size"}
#: Distributions whose versions go into the run's metadata.
_PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "deepspeed", "matplotlib")


@dataclass
class TrainResult:
    """What :func:`train` returns (``model``/``tokenizer`` are the trained objects, in memory)."""

    output_dir: str
    produces: str
    method: str
    family: str
    template: str
    #: adapter directories to pass to ``kgc predict --backend hf -O adapter=...`` (in order)
    predict_adapters: list[str]
    #: the adapter can be merged into the weights (else predict with ``-O merge_adapters=false``)
    mergeable: bool
    metrics: dict[str, Any]
    stats: DataStats
    log_path: str
    plot_path: str | None
    resumed_from: str | None
    first_loss: float | None = None
    last_loss: float | None = None
    first_eval_loss: float | None = None
    last_eval_loss: float | None = None
    model: Any = None
    tokenizer: Any = None

    @property
    def predict_command(self) -> str:
        template = f" --template {self.template}" if self.template != AUTO else ""
        if self.produces == "model":
            return f"kgc predict --backend hf -m {self.output_dir}{template} -i TEST.json -o PRED.json"
        merge = "" if self.mergeable else " -O merge_adapters=false"
        return (f"kgc predict --backend hf -m BASE_MODEL -O adapter={','.join(self.predict_adapters)}{merge}{template} "
                f"-i TEST.json -o PRED.json")


def train(config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str]) -> TrainResult:
    """Run one training (the Python API of ``kgc train``).

    ``config`` is a :class:`TrainConfig`, a mapping of its fields (sections or flat keys) or a config
    file path.
    """
    host = get_host()
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = load_config(None, config, overrides_source="config")
    else:
        check_config(config, host=host)
    with host.run("train", config.to_dict()) as run:  # fires on the main process only
        result, run.result = _train(config, host)
    return result


def _train(config: TrainConfig, host: PluginHost) -> tuple[TrainResult, dict[str, Any] | None]:
    method = host.registry.load("trainer", config.method)()
    resume_from = _checkpoint_to_resume(config)
    train_records, eval_records, stats = _load_data(config)
    torch, transformers = _import_libraries()
    tokenizer, family = _load_tokenizer(config, transformers, host)
    config = _resolved(config, family, has_dev_data=bool(eval_records))
    encoder = PromptEncoder(tokenizer, config.template, config.system, host)
    train_examples = encode_records(train_records, encoder, config, stats)
    eval_examples = encode_records(eval_records, encoder, config) if config.eval_strategy != "no" else []
    if stats.truncated:
        _say(f"{stats.truncated} of {len(train_examples)} training sequences were longer than cutoff_len "
             f"{config.cutoff_len} and were cut")
    if stats.segment_mismatches:
        _say(f"{stats.segment_mismatches} prompts tokenize differently as one text than segment by segment (the "
             f"reference's way); training uses the text's tokens, which kgc predict sends")

    args = _training_arguments(config, method, bool(eval_examples), torch, transformers)
    with args.main_process_first(desc="output directory"):
        if _is_main():
            _prepare_output_dir(config, resume_from, note=f"family {family.name}; {len(train_examples)} training / "
                                                          f"{len(eval_examples)} eval sequences")
    model, continued = _load_model(config, family, method, torch, transformers)
    parameters = (sum(p.numel() for p in model.parameters() if p.requires_grad),
                  sum(p.numel() for p in model.parameters()))
    _say(f"{len(train_examples)} training / {len(eval_examples)} eval sequences (mean {stats.mean_len}, max "
         f"{stats.max_len} tokens); trainable parameters {parameters[0]:,} of {parameters[1]:,} "
         f"({100 * parameters[0] / parameters[1]:.3f}%)")
    trainer = _build_trainer(transformers, model, args, tokenizer, train_examples, eval_examples,
                             Path(config.output_dir) / LOG_FILE)

    started = time.time()
    if resume_from:
        _say(f"resuming from {resume_from}")
    output = trainer.train(resume_from_checkpoint=resume_from)
    metrics = _final_metrics(trainer, output.metrics, bool(eval_examples))
    trainer.save_model(config.output_dir)
    return _write_results(config, method, trainer, tokenizer, stats, metrics, parameters=parameters,
                          resumed_from=resume_from, continued=continued, started=started)


# -- the steps ---------------------------------------------------------------------------------

def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _say(message: str) -> None:
    if _is_main():
        print(f"kgc train: {message}", file=sys.stderr, flush=True)


def _checkpoints(path: Path) -> list[Path]:
    return sorted((p for p in path.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
                  key=lambda p: int(p.name[11:]))


def _complete(checkpoint: Path) -> bool:
    """Whether the Trainer finished saving ``checkpoint``: it writes ``trainer_state.json`` last."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == int(checkpoint.name[11:])


def _checkpoint_to_resume(config: TrainConfig) -> str | None:
    """The checkpoint to resume from (the last complete one); an error if ``output_dir`` holds a run that
    would be reused silently."""
    out = Path(config.output_dir)
    if not out.is_dir():
        return None
    checkpoints = _checkpoints(out)
    if config.resume and checkpoints:
        complete = [c for c in checkpoints if _complete(c)]
        if len(complete) < len(checkpoints):  # a kill while the Trainer was saving one
            cut = ", ".join(c.name for c in checkpoints if c not in complete)
            _say(f"passing over {cut}: incomplete (the run stopped while saving it, before trainer_state.json)"
                 + ("" if complete else "; no complete checkpoint: starting over"))
        return str(complete[-1]) if complete else None
    if config.overwrite_output_dir:
        return None
    if checkpoints or any((out / name).exists() for name in ("adapter_config.json", "config.json")):
        what = f"checkpoints ({checkpoints[-1].name} last)" if checkpoints else "a finished run without checkpoints"
        hint = "pass --resume to continue it or " if checkpoints else ""
        raise InputError(f"output_dir already holds {what}: {hint}--overwrite-output-dir to start over",
                         path=str(out), field="output_dir")
    if (out / LOG_FILE).exists() and not config.resume:
        raise InputError("output_dir holds a run that stopped before its first checkpoint: --resume restarts it, "
                         "--overwrite-output-dir too", path=str(out), field="output_dir")
    return None


def _load_data(config: TrainConfig) -> tuple[list[dict[str, str]], list[dict[str, str]], DataStats]:
    """Training and eval records (``dev_file``, or held out of the training records)."""
    stats = DataStats()
    train_records, stats.dropped_empty = read_records(config.train_file, role="train_file")
    eval_records: list[dict[str, str]] = []
    if config.dev_file:
        eval_records, dropped = read_records(config.dev_file, role="dev_file")
        stats.dropped_empty += dropped
    elif config.val_set_size > 0:
        train_records, eval_records = hold_out(train_records, config.val_set_size, config.seed)
    train_records = train_records[:config.max_train_samples or None]
    eval_records = eval_records[:config.max_eval_samples or None]
    stats.train_records, stats.eval_records = len(train_records), len(eval_records)
    return train_records, eval_records, stats


def _import_libraries() -> tuple[Any, Any]:
    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import torch
    import transformers

    return torch, transformers


def _load_tokenizer(config: TrainConfig, transformers: Any, host: PluginHost) -> tuple[Any, ModelFamily]:
    """The model's tokenizer (with a pad token) and family (``config.family``, else its ``model_type``'s)."""
    remote = config.trust_remote_code
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(config.model, trust_remote_code=remote)
        model_config = transformers.AutoConfig.from_pretrained(config.model, trust_remote_code=remote)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load '{config.model}': {exc}", field="model") from None
    family = resolve_family(config.family or getattr(model_config, "model_type", None), host.registry)
    if config.family and family.name == "generic" and config.family.lower() != "generic":
        warnings.warn(f"unknown model family '{config.family}': using the generic family (all-linear LoRA, the "
                      f"model's own template)", stacklevel=3)
    if family.loader == "seq2seq":
        raise InputError(f"family '{family.name}' is an encoder-decoder model; kgc train supports causal LMs "
                         f"(and ChatGLM's AutoModel)", field="family")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, family


def _resolved(config: TrainConfig, family: ModelFamily, *, has_dev_data: bool) -> TrainConfig:
    """``config`` with every default that depends on the model or the data filled in (as it is saved)."""
    lora = config.lora
    targets = lora.target_modules if lora.target_modules is not None else family.lora_target_modules
    return dataclasses.replace(
        config, family=family.name, template=config.template or family.default_template,
        max_target_length=config.resolved_max_target_length,
        eval_strategy=config.eval_strategy or ("epoch" if has_dev_data else "no"),
        lora=dataclasses.replace(lora, alpha=lora.resolved_alpha,
                                 target_modules="all" if targets in ("all", ALL_LINEAR) else list(targets)))


def _training_arguments(config: TrainConfig, method: TrainingMethod, has_eval: bool, torch: Any,
                        transformers: Any) -> Any:
    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    # activation checkpointing is named so from transformers 5.18 on, gradient checkpointing before
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return transformers.TrainingArguments(
        output_dir=config.output_dir, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, num_train_epochs=config.epochs,
        max_steps=config.max_steps, learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        optim=config.optim, bf16=config.bf16, fp16=config.fp16, seed=config.seed, data_seed=config.seed,
        logging_steps=config.logging_steps, logging_first_step=True,
        eval_strategy=config.eval_strategy if has_eval else "no", eval_steps=config.eval_steps,
        eval_on_start=config.eval_on_start and has_eval,
        save_strategy=config.save_strategy, save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        **{checkpointing: config.gradient_checkpointing,
           f"{checkpointing}_kwargs": {"use_reentrant": False} if config.gradient_checkpointing else None},
        neftune_noise_alpha=config.neftune_alpha, include_num_input_tokens_seen="non_padding", report_to="none",
        remove_unused_columns=False, label_names=["labels"],
        deepspeed=_deepspeed_config(config, method, torch) if config.deepspeed else None,
        dataloader_num_workers=config.dataloader_num_workers, dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False if method.uses_peft else None, disable_tqdm=False,
        use_cpu=not torch.cuda.is_available())


def _deepspeed_config(config: TrainConfig, method: TrainingMethod, torch: Any) -> Any:
    """The method's DeepSpeed config; without CUDA, its Adam is torch's (``torch_adam``) unless the config
    says: DeepSpeed's own CPU Adam is a C++ op it compiles on first use (minutes on a small machine)."""
    value = method.deepspeed_config(config.deepspeed)
    if torch.cuda.is_available():
        return value
    from .deepspeed import load_config as load_deepspeed_config

    data = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else load_deepspeed_config(value)
    optimizer = data.get("optimizer")
    if isinstance(optimizer, dict) and str(optimizer.get("type", "")).lower() in ("adam", "adamw"):
        optimizer.setdefault("params", {}).setdefault("torch_adam", True)
    return data


def _absolute(config: TrainConfig) -> TrainConfig:
    """Paths that exist made absolute, so the saved config repeats the run from any directory."""
    def fix(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value and Path(value).exists() else value

    template_file = config.template and config.template.endswith((".yaml", ".yml"))
    return dataclasses.replace(
        config, model=fix(config.model), train_file=fix(config.train_file), dev_file=fix(config.dev_file),
        output_dir=str(Path(config.output_dir).resolve()), adapters=[fix(a) for a in config.adapters],
        template=fix(config.template) if template_file else config.template, deepspeed=fix(config.deepspeed))


def _prepare_output_dir(config: TrainConfig, resume_from: str | None, note: str) -> None:
    """Create ``output_dir`` (clearing an overwritten run), save the resolved config, start or trim the log."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.overwrite_output_dir and not resume_from:
        for checkpoint in _checkpoints(out):
            shutil.rmtree(checkpoint)
        for name in (LOG_FILE, PLOT_FILE, META_FILE):
            (out / name).unlink(missing_ok=True)
    if resume_from and (out / CONFIG_FILE).is_file():
        _warn_changes(out / CONFIG_FILE, config)
    save_config(_absolute(config), out / CONFIG_FILE, note=note)
    step = int(Path(resume_from).name[11:]) if resume_from else 0
    if config.resume:  # checkpoints past the resumed one were cut while saving; their steps run again
        for checkpoint in _checkpoints(out):
            if int(checkpoint.name[11:]) > step:
                shutil.rmtree(checkpoint)
    log_path = out / LOG_FILE
    if resume_from:  # so do the steps of log lines past the checkpoint: their lines go
        kept = [r for r in read_log(log_path) if r.get("step", 0) <= step]
        log_path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    else:
        log_path.write_text("", encoding="utf-8")


def _warn_changes(path: Path, config: TrainConfig) -> None:
    try:
        old = load_config(path).to_dict()
    except KGCError:
        return
    new = _absolute(config).to_dict()
    changed = sorted(k for k in new if k not in _RESUME_FREE and old.get(k) != new.get(k))
    if changed:
        warnings.warn(f"resuming with settings that differ from the interrupted run's ({', '.join(changed)}); "
                      f"the checkpoint may not fit them", stacklevel=4)


def _load_model(config: TrainConfig, family: ModelFamily, method: TrainingMethod, torch: Any,
                transformers: Any) -> tuple[Any, bool]:
    """The model ready to train, and whether the last of ``config.adapters`` keeps training."""
    transformers.set_seed(config.seed)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code,
                              "dtype": getattr(torch, config.concrete_dtype(config.dtype))}
    quantization = method.quantization_config(config, torch, transformers)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs["device_map"] = {"": f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"}
    _say(f"loading {config.model} ({family.name} family, template {config.template}, method {config.method})")
    try:
        model = family.auto_class().from_pretrained(config.model, **kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load model '{config.model}': {exc}", field="model") from None
    if getattr(model.config, "use_cache", None) is not None:
        model.config.use_cache = False
    ctx = TrainContext(family)
    model = method.prepare_base(model, config, ctx)
    model, ctx.continued = apply_adapters(model, config, method, quantized=quantization is not None)
    return method.prepare(model, config, ctx), ctx.continued


def apply_adapters(model: Any, config: TrainConfig, method: TrainingMethod, *,
                   quantized: bool = False) -> tuple[Any, bool]:
    """Merge ``config.adapters`` into the model, keeping the last one trainable when the method
    continues adapters of its type. Returns ``(model, continued)``."""
    if not config.adapters:
        return model, False
    from kgc_backends.loading import MERGEABLE_PEFT_TYPES, peft_type
    from peft import PeftModel

    types = [peft_type(a) for a in config.adapters]
    continued = config.continue_last_adapter and types[-1] in method.continues
    to_merge = config.adapters[:-1] if continued else list(config.adapters)
    if to_merge and quantized:
        raise InputError(f"{config.method} cannot merge adapters into quantized weights: continue from one "
                         f"adapter only (or merge them into the base model first)", field="adapters")
    for adapter, kind in zip(to_merge, types):
        if kind not in MERGEABLE_PEFT_TYPES:
            raise InputError(f"adapter '{adapter}' ({kind}) cannot be merged into the weights; only the last "
                             f"adapter may be a {kind} one, continued by the matching method", field="adapters")
        _say(f"merging adapter {adapter}")
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    if continued:
        _say(f"continuing adapter {config.adapters[-1]} (its own settings replace the config's {config.method} ones)")
        model = PeftModel.from_pretrained(model, config.adapters[-1], is_trainable=True)
    return model, continued


def _build_trainer(transformers: Any, model: Any, args: Any, tokenizer: Any, train_examples: list, eval_examples: list,
                   log_path: Path) -> Any:
    return transformers.Trainer(
        model=model, args=args, data_collator=PadCollator(tokenizer.pad_token_id),
        train_dataset=Examples(train_examples), eval_dataset=Examples(eval_examples) if eval_examples else None,
        processing_class=tokenizer, callbacks=[log_callback(log_path)])


def _final_metrics(trainer: Any, metrics: Mapping[str, Any], has_eval: bool) -> dict[str, Any]:
    """The Trainer's metrics plus the eval loss of the final weights (evaluated unless it just was)."""
    metrics = dict(metrics)
    if has_eval:
        evaluated = [h for h in trainer.state.log_history if "eval_loss" in h]
        if evaluated and evaluated[-1].get("step") == trainer.state.global_step:
            metrics["eval_loss"] = evaluated[-1]["eval_loss"]
        else:
            metrics.update(trainer.evaluate())
    return metrics


def _write_results(config: TrainConfig, method: TrainingMethod, trainer: Any, tokenizer: Any, stats: DataStats,
                   metrics: dict[str, Any], *, parameters: tuple[int, int], resumed_from: str | None,
                   continued: bool, started: float) -> tuple[TrainResult, dict[str, Any] | None]:
    """The result, and on the main process the loss plot and ``kgc_train_meta.json`` (whose content it returns)."""
    out = Path(config.output_dir)
    main = _is_main()
    rows = read_log(out / LOG_FILE) if main else []
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    eval_losses = [r["eval_loss"] for r in rows if r.get("eval_loss") is not None]
    plot = None
    if main and config.plot_loss:
        plot = plot_loss(out / LOG_FILE, out / PLOT_FILE, title=f"{config.method} · {Path(config.model).name}")
    predict_adapters: list[str] = []
    if method.produces == "adapter":
        earlier = config.adapters[:-1] if continued else config.adapters
        predict_adapters = [str(Path(a).resolve()) for a in earlier] + [str(out.resolve())]
    result = TrainResult(
        output_dir=str(out.resolve()), produces=method.produces, method=config.method, family=config.family,
        template=config.template, predict_adapters=predict_adapters, mergeable=method.mergeable, metrics=metrics,
        stats=stats, log_path=str(out / LOG_FILE), plot_path=plot, resumed_from=resumed_from,
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        first_eval_loss=eval_losses[0] if eval_losses else None,
        last_eval_loss=eval_losses[-1] if eval_losses else None, model=trainer.model, tokenizer=tokenizer)
    if not main:
        return result, None
    meta = {"config": config.to_dict(), "family": config.family, "template": config.template, "method": config.method,
            "produces": method.produces, "predict_adapters": predict_adapters,
            "predict_command": result.predict_command, "resumed_from": resumed_from,
            "continued_adapter": config.adapters[-1] if continued else None, "data": dataclasses.asdict(stats),
            "trainable_parameters": parameters[0], "parameters": parameters[1], "metrics": metrics,
            "first_loss": result.first_loss, "last_loss": result.last_loss,
            "first_eval_loss": result.first_eval_loss, "last_eval_loss": result.last_eval_loss,
            "started": started, "seconds": round(time.time() - started, 3),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")), "host": platform.node(),
            "versions": package_versions(_PACKAGES)}
    (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return result, meta
