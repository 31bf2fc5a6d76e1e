"""``kgc train``: supervised fine-tuning on converted instruction records.

A run is described by one :class:`TrainConfig` (a YAML or JSON file, validated with jsonschema;
``kgc train`` flags override its values) and goes through ``transformers``' ``Trainer`` with the
training method named by ``method`` — a plugin registered with ``kgc_register_trainers``
(built in: ``lora``, ``qlora``, ``full``, ``freeze``, ``ptuning``, ``prefix``).

Data and prompts follow the reference (DeepKE/IEPile ``finetune.py``) with its bugs fixed:

* records are converted ``train.json``/``dev.json`` lines (``instruction``, ``output``); rows with an
  empty instruction or answer are dropped; a dev file without ``output`` is an error naming it;
* the prompt is **exactly the token ids ``kgc predict --backend hf`` sends** for that instruction
  (the model's own chat template for ``auto``; a named template's rendered text otherwise), then the
  answer and eos; the loss covers the answer tokens (and eos) only;
* sequences longer than ``cutoff_len`` are cut with the reference's allocation rule
  (:func:`infer_max_len`), tails truncated.

Nothing here imports torch, transformers or peft at module level.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .chat import AUTO, IGNORE_INDEX
from .errors import InputError, KGCError

#: Files a finished or running training leaves in ``output_dir``.
CONFIG_FILE = "kgc_train_config.yaml"
LOG_FILE = "train_log.jsonl"
META_FILE = "kgc_train_meta.json"
PLOT_FILE = "loss_curve.png"

_DTYPES = ("auto", "float32", "bfloat16", "float16")


# -- the configuration -------------------------------------------------------------------------

def _f(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None, cli: str | None = None) -> Any:
    metadata = {"help": help, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class QuantizationConfig:
    """bitsandbytes quantization of the base model (method ``qlora``)."""

    bits: int = _f(4, "4 or 8 bits.")
    quant_type: str = _f("nf4", "4-bit data type: nf4 or fp4.")
    double_quant: bool = _f(True, "Quantize the 4-bit quantization constants too.")
    compute_dtype: str = _f("auto", "Dtype of 4-bit matmuls: auto (bfloat16 with bf16, float16 with fp16, else "
                                    "float32), float32, bfloat16 or float16.")


@dataclass
class TrainConfig:
    """Everything needed to repeat a training run (written to ``output_dir/kgc_train_config.yaml``)."""

    # -- model
    model: str = _f("", "Base model: a local transformers checkpoint directory or a hub name.")
    family: str | None = _f(None, "Model family (see kgcore.families); default: from the checkpoint's model_type. "
                                  "Unknown names fall back to the generic family (all-linear LoRA).")
    template: str | None = _f(None, "Chat template: 'auto' (the model's own) or a name/YAML file; default: the "
                                    "family's. Predict with the same --template.")
    system: str | None = _f(None, "System prompt (the same one must be given to kgc predict --system).")
    trust_remote_code: bool = _f(False, "Run model code shipped with the checkpoint.")
    dtype: str = _f("auto", "Dtype the weights load in: auto (bfloat16 with bf16, float16 with fp16, else "
                            "float32), float32, bfloat16 or float16.")
    # -- data
    train_file: str = _f("", "Converted training records (JSON lines or a JSON list): instruction, output.")
    dev_file: str | None = _f(None, "Converted dev records with output, for the eval loss.")
    val_set_size: float = _f(0, "Without dev_file: hold out this many training records (a number < 1 is a "
                                "share) for the eval loss.")
    max_train_samples: int | None = _f(None, "Use only the first N training records.")
    max_eval_samples: int | None = _f(None, "Use only the first N eval records.")
    cutoff_len: int = _f(1024, "Longest sequence (prompt + answer) in tokens; longer ones are cut by the "
                               "reference's allocation rule.")
    max_source_length: int | None = _f(None, "Optional cap on prompt tokens (the reference declared it but never "
                                             "applied it).")
    max_target_length: int | None = _f(None, "Answer tokens reserved when a sequence is cut (the allocation "
                                             "rule); default min(256, cutoff_len // 2).")
    train_on_prompt: bool = _f(False, "Also learn the prompt tokens (default: loss on the answer only).")
    # -- method
    method: str = _f("lora", "Training method: lora, qlora, full, freeze, ptuning, prefix (or a plugin's).")
    lora_r: int = _f(8, "LoRA rank.")
    lora_alpha: float | None = _f(None, "LoRA alpha (default 2 * lora_r).")
    lora_dropout: float = _f(0.1, "LoRA dropout.")
    lora_target_modules: Any = _f(None, "Module names for LoRA (a list), 'all' for every linear layer but the "
                                        "output head, default: the family's.")
    lora_modules_to_save: list[str] | None = _f(None, "Modules trained fully and saved with the adapter "
                                                      "(the reference's additional_target).")
    quantization: QuantizationConfig = _f(help="qlora: bits, quant_type, double_quant, compute_dtype.",
                                          factory=QuantizationConfig)
    freeze_trainable_layers: int = _f(3, "freeze: train the last N layers (a negative N: the first -N).")
    freeze_modules: list[str] = _f(help="freeze: modules trained inside those layers ('all' = whole layers).",
                                   factory=lambda: ["mlp"])
    num_virtual_tokens: int = _f(16, "ptuning/prefix: number of virtual tokens (the reference's pre_seq_len).")
    prefix_projection: bool = _f(False, "prefix: reparameterize the prefix with an MLP (P-tuning v2's option).")
    encoder_hidden_size: int | None = _f(None, "ptuning/prefix: hidden size of the prompt encoder / projection "
                                               "(default: the model's hidden size).")
    adapters: list[str] = _f(help="PEFT adapters to continue from, in order (the reference's checkpoint_dir): "
                                  "all but the last are merged, the last keeps training.", factory=list)
    continue_last_adapter: bool = _f(True, "Keep training the last of adapters (false: merge them all and start a "
                                           "new adapter).")
    # -- optimisation
    epochs: float = _f(3.0, "Training epochs.")
    max_steps: int = _f(-1, "Optimizer steps (overrides epochs when > 0).")
    learning_rate: float = _f(5e-5, "Peak learning rate.")
    batch_size: int = _f(2, "Sequences per device per step.")
    eval_batch_size: int | None = _f(None, "Sequences per device per eval step (default: batch_size).")
    gradient_accumulation_steps: int = _f(1, "Batches per optimizer step.")
    warmup_steps: float = _f(0, "Linear warmup steps (a number < 1 is a share of all steps).")
    lr_scheduler: str = _f("linear", "Learning-rate schedule (transformers' SchedulerType: linear, cosine, "
                                     "constant, ...).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    optim: str = _f("adamw_torch", "Optimizer (transformers' OptimizerNames).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass (saves memory, ~20% "
                                             "slower; the reference always turned it on).")
    neftune_alpha: float | None = _f(None, "NEFTune noise on input embeddings (typical 5-15).")
    bf16: bool = _f(False, "bfloat16 mixed precision.")
    fp16: bool = _f(False, "float16 mixed precision (CUDA only).")
    seed: int = _f(42, "Seed of initialisation, data order, dropout and the dev split.")
    # -- output
    output_dir: str = _f("", "Where the adapter (or model), checkpoints, log, plot and config go.")
    overwrite_output_dir: bool = _f(False, "Start over in an output_dir that already holds a run (its "
                                           "checkpoints and log are deleted).")
    resume: bool = _f(False, "Continue from the last checkpoint-* in output_dir (starts fresh if there is none).")
    logging_steps: int = _f(2, "Log every N optimizer steps (step 1 is always logged).")
    eval_strategy: str | None = _f(None, "no, steps or epoch (default: epoch with dev data, else no).")
    eval_steps: int | None = _f(None, "Evaluate every N steps (eval_strategy steps; default logging_steps).")
    eval_on_start: bool = _f(True, "Evaluate once before training (the eval loss to compare with).")
    save_strategy: str = _f("epoch", "Checkpoints: no, steps or epoch.")
    save_steps: int = _f(500, "Save a checkpoint every N steps (save_strategy steps).")
    save_total_limit: int | None = _f(None, "Keep at most N checkpoints.")
    plot_loss: bool = _f(True, "Draw loss_curve.png at the end (needs matplotlib).")
    deepspeed: str | None = _f(None, "DeepSpeed config: a JSON file or a name shipped with kgc (e.g. zero2).")
    dataloader_num_workers: int = _f(0, "Data loader worker processes.")

    # -- conversion ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        values = dict(data)
        if isinstance(values.get("quantization"), Mapping):
            values["quantization"] = QuantizationConfig(**values["quantization"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_max_target_length(self) -> int:
        return self.max_target_length if self.max_target_length is not None else min(256, self.cutoff_len // 2)

    @property
    def resolved_lora_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r


_REQUIRED = ("model", "train_file", "output_dir")
_LISTS = ("lora_modules_to_save", "freeze_modules", "adapters")
_NULL_STR = {"type": ["string", "null"]}
_NULL_POS_INT = {"type": ["integer", "null"], "minimum": 1}

#: JSON Schema of a training config file (unknown keys are errors, reported with a suggestion).
CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "family": _NULL_STR,
        "template": {"type": ["string", "null"], "minLength": 1},
        "system": _NULL_STR,
        "trust_remote_code": {"type": "boolean"},
        "dtype": {"enum": list(_DTYPES)},
        "train_file": {"type": "string", "minLength": 1},
        "dev_file": _NULL_STR,
        "val_set_size": {"type": "number", "minimum": 0},
        "max_train_samples": _NULL_POS_INT,
        "max_eval_samples": _NULL_POS_INT,
        "cutoff_len": {"type": "integer", "minimum": 8},
        "max_source_length": _NULL_POS_INT,
        "max_target_length": _NULL_POS_INT,
        "train_on_prompt": {"type": "boolean"},
        "method": {"type": "string", "minLength": 1},
        "lora_r": {"type": "integer", "minimum": 1},
        "lora_alpha": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "lora_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "lora_target_modules": {"anyOf": [
            {"type": "null"}, {"enum": ["all", "all-linear"]},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}]},
        "lora_modules_to_save": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
        "quantization": {
            "type": "object", "additionalProperties": False,
            "properties": {"bits": {"enum": [4, 8]}, "quant_type": {"enum": ["nf4", "fp4"]},
                           "double_quant": {"type": "boolean"}, "compute_dtype": {"enum": list(_DTYPES)}}},
        "freeze_trainable_layers": {"type": "integer", "not": {"const": 0}},
        "freeze_modules": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        "num_virtual_tokens": {"type": "integer", "minimum": 1},
        "prefix_projection": {"type": "boolean"},
        "encoder_hidden_size": _NULL_POS_INT,
        "adapters": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "continue_last_adapter": {"type": "boolean"},
        "epochs": {"type": "number", "exclusiveMinimum": 0},
        "max_steps": {"type": "integer", "minimum": -1, "not": {"const": 0}},
        "learning_rate": {"type": "number", "minimum": 0},
        "batch_size": {"type": "integer", "minimum": 1},
        "eval_batch_size": _NULL_POS_INT,
        "gradient_accumulation_steps": {"type": "integer", "minimum": 1},
        "warmup_steps": {"type": "number", "minimum": 0},
        "lr_scheduler": {"type": "string", "minLength": 1},
        "weight_decay": {"type": "number", "minimum": 0},
        "max_grad_norm": {"type": "number", "minimum": 0},
        "optim": {"type": "string", "minLength": 1},
        "gradient_checkpointing": {"type": "boolean"},
        "neftune_alpha": {"type": ["number", "null"], "minimum": 0},
        "bf16": {"type": "boolean"},
        "fp16": {"type": "boolean"},
        "seed": {"type": "integer"},
        "output_dir": {"type": "string", "minLength": 1},
        "overwrite_output_dir": {"type": "boolean"},
        "resume": {"type": "boolean"},
        "logging_steps": {"type": "integer", "minimum": 1},
        "eval_strategy": {"enum": [None, "no", "steps", "epoch"]},
        "eval_steps": _NULL_POS_INT,
        "eval_on_start": {"type": "boolean"},
        "save_strategy": {"enum": ["no", "steps", "epoch"]},
        "save_steps": {"type": "integer", "minimum": 1},
        "save_total_limit": _NULL_POS_INT,
        "plot_loss": {"type": "boolean"},
        "deepspeed": _NULL_STR,
        "dataloader_num_workers": {"type": "integer", "minimum": 0},
    },
}
assert set(CONFIG_SCHEMA["properties"]) == {f.name for f in fields(TrainConfig)}


class ConfigError(InputError):
    """An invalid training config: every problem, each with its source (file or flag) and field."""

    def __init__(self, problems: Sequence[tuple[str, str, str]]):
        self.problems = list(problems)
        source, fld, message = self.problems[0]
        if len(self.problems) == 1:
            super().__init__(f"field '{fld}': {message}", path=source)
        else:
            lines = "\n".join(f"  {src}: field '{f}': {m}" for src, f, m in self.problems)
            super().__init__(f"{len(self.problems)} problems in the training config:\n{lines}")
        self.field = fld


CLI_SOURCE = "command line"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-").replace(".", "-")


def _schema_problems(data: Mapping[str, Any], source: str, *, flags: bool = False) -> list[tuple[str, str, str]]:
    """Schema problems of ``data`` as ``(source, field, message)``; unknown keys get a suggestion."""
    import jsonschema

    def name(path: Sequence[Any]) -> str:
        text = ".".join(str(p) for p in path) or "(top level)"
        return _flag(text) if flags and path else text

    problems = []
    known = list(CONFIG_SCHEMA["properties"])
    for key in data:
        if key not in CONFIG_SCHEMA["properties"]:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; valid fields: {', '.join(known)}"
            problems.append((source, str(key), f"unknown field{hint}"))
    quant = data.get("quantization")
    if isinstance(quant, Mapping):
        for key in quant:
            if key not in CONFIG_SCHEMA["properties"]["quantization"]["properties"]:
                problems.append((source, f"quantization.{key}",
                                 "unknown field; valid: bits, quant_type, double_quant, compute_dtype"))
    checked = {k: v for k, v in data.items() if k in CONFIG_SCHEMA["properties"]}
    if isinstance(quant, Mapping):
        checked["quantization"] = {k: v for k, v in quant.items()
                                   if k in CONFIG_SCHEMA["properties"]["quantization"]["properties"]}
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    for error in sorted(validator.iter_errors(checked), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(error.absolute_path)
        message = error.message
        if error.validator == "anyOf" and path == ["lora_target_modules"]:
            message = f"{error.instance!r} is not a list of module names, 'all' or null"
        elif error.validator == "not":
            message = f"{error.instance!r} is not allowed here (0 means nothing)"
        problems.append((source, name(path), message))
    return problems


def _read_config_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read training config: {exc.strerror or exc}", path=str(path)) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"training config is not valid JSON: {exc.msg} at line {exc.lineno}", path=str(path)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"training config is not valid YAML: {exc}", path=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"a training config must be a mapping of fields, got {type(data).__name__}", path=str(path))
    return data


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if key == "quantization" and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None, *,
                overrides_source: str = CLI_SOURCE) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML/JSON file (optional) with ``overrides`` on top
    (``kgc train`` flags; ``overrides_source`` names them in errors). Errors name the file or flag
    and the field. Relative paths are relative to the current directory."""
    overrides = dict(overrides or {})
    file_data: dict[str, Any] = {}
    flags = overrides_source == CLI_SOURCE
    source = overrides_source
    if path is not None:
        source = str(path)
        file_data = _read_config_file(Path(path))
    problems = _schema_problems(file_data, source)
    problems += _schema_problems(overrides, overrides_source, flags=flags)
    if problems:
        raise ConfigError(problems)
    data = _merge(file_data, overrides)
    origin = {key: (overrides_source if key in overrides else source) for key in CONFIG_SCHEMA["properties"]}
    missing = [key for key in _REQUIRED if not data.get(key)]
    if missing:
        where = f"set it in {path} or pass" if path is not None else "pass" if flags else "give"
        raise ConfigError([(source, key, f"required; {where} {_flag(key) if flags else repr(key)}")
                           for key in missing])
    config = TrainConfig.from_dict(data)
    check_config(config, origin)
    return config


def check_config(config: TrainConfig, origin: Mapping[str, str] | None = None, registry: Any = None) -> None:
    """Cross-field checks after the schema: files exist, lengths fit, the method is registered."""
    origin = origin or {}
    problems: list[tuple[str, str, str]] = []

    def bad(fld: str, message: str) -> None:
        problems.append((origin.get(fld.split(".")[0], CLI_SOURCE), fld, message))

    if config.resolved_max_target_length >= config.cutoff_len:
        bad("max_target_length", f"{config.resolved_max_target_length} leaves no room for the prompt within cutoff_len "
                                  f"{config.cutoff_len}")
    if config.bf16 and config.fp16:
        bad("fp16", "bf16 and fp16 exclude each other")
    if config.val_set_size >= 1 and config.val_set_size != int(config.val_set_size):
        bad("val_set_size", f"{config.val_set_size} is neither a share (< 1) nor a whole number of records")
    if config.warmup_steps >= 1 and config.warmup_steps != int(config.warmup_steps):
        bad("warmup_steps", f"{config.warmup_steps} is neither a share (< 1) nor a whole number of steps")
    has_dev = bool(config.dev_file) or config.val_set_size > 0
    if config.eval_strategy not in (None, "no") and not has_dev:
        bad("eval_strategy", f"'{config.eval_strategy}' needs dev data: set dev_file or val_set_size")
    if not Path(config.train_file).is_file():
        bad("train_file", f"no such file: {config.train_file}")
    if config.dev_file and not Path(config.dev_file).is_file():
        bad("dev_file", f"no such file: {config.dev_file}")
    for adapter in config.adapters:
        if not (Path(adapter) / "adapter_config.json").is_file():
            bad("adapters", f"'{adapter}' is not a PEFT adapter directory (no adapter_config.json)")
    if config.template not in (None, AUTO):
        text = config.template
        if text.endswith((".yaml", ".yml")) or os.sep in text:
            if not Path(text).is_file():
                bad("template", f"chat template file not found: {text}")
        else:
            reg = registry or _registry()
            if text not in reg.names("chat_template"):
                close = difflib.get_close_matches(text, reg.names("chat_template"), n=3)
                bad("template", f"unknown chat template '{text}'"
                                + (f" (did you mean {', '.join(close)}?)" if close else "; see kgc templates"))
    reg = registry or _registry()
    method = None
    if config.method not in reg.names("trainer"):
        close = difflib.get_close_matches(config.method, reg.names("trainer"), n=3)
        bad("method", f"unknown training method '{config.method}'; available: {', '.join(reg.names('trainer'))}"
                      + (f" (did you mean {', '.join(close)}?)" if close else ""))
    else:
        method = load_method(config.method, reg)
        for fld, message in method.check(config):
            bad(fld, message)
    if config.deepspeed:
        try:
            resolve_deepspeed(config.deepspeed, method)
        except KGCError as exc:
            bad("deepspeed", str(exc))
    if problems:
        raise ConfigError(problems)


def _registry() -> Any:
    from .plugins import get_registry

    return get_registry()


def resolve_deepspeed(value: str, method: TrainingMethod | None = None) -> Any:
    """The DeepSpeed config for ``TrainingArguments(deepspeed=...)``: an existing file passes through;
    a name is resolved by the training method (the built-in ones know kgc's shipped ZeRO configs)."""
    if method is not None:
        return method.deepspeed_config(value)
    return TrainingMethod.deepspeed_config(TrainingMethod(), value)


def save_config(config: TrainConfig, path: str | os.PathLike[str], note: str = "") -> None:
    """Write ``config`` as YAML that ``kgc train --config`` reads back unchanged."""
    import yaml

    from . import __version__

    header = (f"# kgc {__version__} training config, resolved ({time.strftime('%Y-%m-%d %H:%M:%S')}).\n"
              f"# Repeat the run with: kgc train --config {path}\n")
    if note:
        header += "".join(f"# {line}\n" for line in note.splitlines())
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    Path(path).write_text(header + text, encoding="utf-8")


# -- command-line options ------------------------------------------------------------------------

def _cli_fields() -> list[tuple[str, Any, str]]:
    """``(dest, field type, help)`` of every config field, quantization's fields flattened."""
    out = []
    for f in fields(TrainConfig):
        if f.name == "quantization":
            for q in fields(QuantizationConfig):
                out.append((f"quantization.{q.name}", q.type, q.metadata.get("help", "")))
        else:
            out.append((f.name, f.type, f.metadata.get("help", "")))
    return out


_CLI_NAMES = {"quantization.bits": "bits", "quantization.quant_type": "quant-type",
              "quantization.double_quant": "double-quant", "quantization.compute_dtype": "compute-dtype"}


def click_options() -> list[Any]:
    """``click`` options for every config field (``--lora-r``, ``--max-steps``, ``--bf16/--no-bf16``, ...);
    all default to ``None`` = "not given", so only flags the user typed override the config file."""
    import click

    options = []
    for dest, ftype, help_text in _cli_fields():
        name = _CLI_NAMES.get(dest, dest.replace("_", "-"))
        param = dest.replace(".", "__")
        ftype = str(ftype)
        decls = [f"--{name}"]
        if "_" in dest and "." not in dest:
            decls.append(f"--{dest}")  # the reference's spelling, e.g. --max_steps
        if ftype.startswith("bool"):
            flag = f"--{name}/--no-{name}"
            options.append(click.option(flag, param, default=None, help=help_text))
            continue
        if ftype.startswith("int"):
            kind: Any = int
        elif ftype.startswith("float"):
            kind = float
        else:
            kind = str
        metavar = "A,B,..." if dest in _LISTS or dest == "lora_target_modules" else None
        options.append(click.option(*decls, param, type=kind, default=None, metavar=metavar, help=help_text))
    return options


def overrides_from_cli(params: Mapping[str, Any]) -> dict[str, Any]:
    """Config overrides from the values of :func:`click_options` (``None`` = not given)."""
    out: dict[str, Any] = {}
    for param, value in params.items():
        if value is None:
            continue
        dest = param.replace("__", ".")
        if dest in _LISTS or dest == "lora_target_modules":
            items = [v.strip() for v in str(value).split(",") if v.strip()]
            value = items[0] if dest == "lora_target_modules" and items in (["all"], ["all-linear"]) else items
        elif dest in ("val_set_size", "warmup_steps", "lora_alpha") and float(value).is_integer():
            value = int(value)
        if dest.startswith("quantization."):
            out.setdefault("quantization", {})[dest.split(".", 1)[1]] = value
        else:
            out[dest] = value
    return out


# -- data --------------------------------------------------------------------------------------

def read_records(path: str | os.PathLike[str], *, role: str = "train_file") -> tuple[list[dict[str, str]], int]:
    """``(records, dropped)``: ``{"instruction", "output"}`` of a converted file (JSON lines or a
    JSON list); rows with an empty instruction or output are dropped and counted. A record without
    ``output`` is an error naming the file and line (a test split cannot be learned or evaluated)."""
    from .jsonl import read_jsonl

    path = Path(path)
    with path.open(encoding="utf-8-sig") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith("["):
        try:
            values = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg} at line {exc.lineno}", path=str(path)) from None
        items = list(enumerate(values, 1))
    else:
        items = list(read_jsonl(path))
    records, dropped = [], 0
    for line, record in items:
        if not isinstance(record, dict):
            raise InputError("expected a JSON object", path=str(path), line=line)
        if "output" not in record:
            what = "dev records need the expected answer" if role == "dev_file" else "training records need the answer"
            raise InputError(f"record has no 'output': {what}. This looks like a test split; convert the "
                             f"{'dev' if role == 'dev_file' else 'training'} data with `kgc convert --split train`",
                             path=str(path), line=line, field="output")
        instruction, output = record.get("instruction"), record["output"]
        if instruction is not None and not isinstance(instruction, str):
            raise InputError("'instruction' must be a string", path=str(path), line=line, field="instruction")
        if output is not None and not isinstance(output, str):
            output = json.dumps(output, ensure_ascii=False)
        if not instruction or not instruction.strip() or not output or not output.strip():
            dropped += 1
            continue
        records.append({"instruction": instruction, "output": output})
    if not records:
        raise InputError(f"no usable records ({dropped} empty rows dropped)", path=str(path))
    return records, dropped


def infer_max_len(source_len: int, target_len: int, cutoff_len: int, max_target_length: int) -> tuple[int, int]:
    """The reference's allocation rule: ``(max_source, max_target)`` for a sequence of
    ``source_len + target_len`` tokens: ``max_target = max(int(cutoff * tgt / (src + tgt)),
    max_target_length)``, ``max_source = cutoff - max_target``."""
    total = source_len + target_len
    max_target = max(int(cutoff_len * (target_len / total)) if total else 0, max_target_length)
    return cutoff_len - max_target, max_target


def fit_lengths(source_len: int, target_len: int, cutoff_len: int, max_target_length: int,
                max_source_length: int | None = None) -> tuple[int, int]:
    """How many prompt and answer tokens to keep (tails are cut).

    A sequence that fits in ``cutoff_len`` is kept whole. A longer one is cut with
    :func:`infer_max_len`; answer tokens the rule reserved but the answer does not use go back to
    the prompt (the reference left them unused). ``max_source_length`` caps the prompt first.
    """
    if max_source_length:
        source_len = min(source_len, max_source_length)
    if source_len + target_len <= cutoff_len:
        return source_len, target_len
    _, max_target = infer_max_len(source_len, target_len, cutoff_len, max_target_length)
    keep_target = min(target_len, max_target)
    return min(source_len, cutoff_len - keep_target), keep_target


class PromptEncoder:
    """Token ids of training examples whose prompts equal what ``kgc predict --backend hf`` sends.

    The prompt comes from :class:`kgcore.prediction.RequestBuilder` (the same code ``kgc predict``
    uses) and is tokenized like the hf backend: the model's own chat template
    (``apply_chat_template(..., add_generation_prompt=True)``) for ``auto``; for a named template its
    rendered text in one piece, with bos when the tokenizer adds one. The answer part comes from
    :meth:`ChatTemplate.encode_supervised` (answer + the template's eos, ``efficient_eos`` handled),
    or is the answer + the tokenizer's eos for ``auto``.
    """

    def __init__(self, tokenizer: Any, template: str = AUTO, system: str | None = None, registry: Any = None):
        from .prediction import PromptStyle, RequestBuilder

        self.tokenizer, self.system = tokenizer, system
        self.builder = RequestBuilder(PromptStyle(template, system), constrained=False,
                                      host=_HostShim(registry) if registry is not None else None)
        self.template = self.builder.template
        if self.template is None:
            if not getattr(tokenizer, "chat_template", None):
                raise InputError("template 'auto' needs a model with its own chat template; this tokenizer has "
                                 "none: pick a named template", field="template")
            if tokenizer.eos_token_id is None:
                raise InputError("the tokenizer has no eos token to end answers with", field="template")
        #: prompts whose per-segment encoding (the reference's) differs from the sent text's tokens
        self.segment_mismatches = 0

    def prompt_ids(self, instruction: str) -> list[int]:
        """Exactly the ids the hf backend feeds the model for ``instruction`` (``HFBackend._encode``)."""
        from .chat import request_token_ids

        return request_token_ids(self.tokenizer, self.builder(instruction))

    def encode(self, instruction: str, output: str) -> tuple[list[int], list[int], list[int]]:
        """``(prompt_ids, answer_ids, answer_labels)`` before any length cut."""
        from .chat import _encode_text

        prompt = self.prompt_ids(instruction)
        if self.template is None:
            answer = _encode_text(self.tokenizer, output) + [self.tokenizer.eos_token_id]
            return prompt, answer, list(answer)
        try:
            ids, labels = self.template.encode_supervised(self.tokenizer, instruction, output, system=self.system)
        except ValueError as exc:
            raise InputError(str(exc), field="template") from None
        start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
        if ids[:start] != prompt:
            self.segment_mismatches += 1
        return prompt, ids[start:], labels[start:]


class _HostShim:
    """Lets :class:`RequestBuilder` use a given registry."""

    def __init__(self, registry: Any):
        self.registry = registry


@dataclass
class DataStats:
    train_records: int = 0
    eval_records: int = 0
    dropped_empty: int = 0
    truncated: int = 0
    max_len: int = 0
    mean_len: float = 0.0
    segment_mismatches: int = 0


def encode_records(records: Sequence[Mapping[str, str]], encoder: PromptEncoder, config: TrainConfig,
                   stats: DataStats | None = None) -> list[dict[str, list[int]]]:
    """Training examples (``input_ids``, ``attention_mask``, ``labels``) cut to ``cutoff_len``."""
    examples = []
    for record in records:
        prompt, answer, answer_labels = encoder.encode(record["instruction"], record["output"])
        keep_src, keep_tgt = fit_lengths(len(prompt), len(answer), config.cutoff_len, config.resolved_max_target_length,
                                         config.max_source_length)
        if stats is not None and (keep_src, keep_tgt) != (len(prompt), len(answer)):
            stats.truncated += 1
        prompt, answer, answer_labels = prompt[:keep_src], answer[:keep_tgt], answer_labels[:keep_tgt]
        labels = (list(prompt) if config.train_on_prompt else [IGNORE_INDEX] * len(prompt)) + answer_labels
        ids = prompt + answer
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    if stats is not None and examples:
        lengths = [len(e["input_ids"]) for e in examples]
        stats.max_len = max(stats.max_len, max(lengths))
        stats.mean_len = round(sum(lengths) / len(lengths), 1)
        stats.segment_mismatches = encoder.segment_mismatches
    return examples


class _Examples:
    """A map-style dataset of encoded examples (what ``Trainer`` iterates)."""

    def __init__(self, examples: list[dict[str, list[int]]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]


class PadCollator:
    """Pads a batch on the right (positions then start at 0 as at prediction time); labels with -100."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id, self.multiple = pad_token_id, pad_to_multiple_of

    def __call__(self, batch: Sequence[Mapping[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        if self.multiple:
            width = math.ceil(width / self.multiple) * self.multiple

        def pad(key: str, value: int) -> Any:
            return torch.tensor([list(b[key]) + [value] * (width - len(b[key])) for b in batch], dtype=torch.long)

        return {"input_ids": pad("input_ids", self.pad_token_id), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", IGNORE_INDEX)}


# -- training methods ------------------------------------------------------------------------------

@dataclass
class TrainContext:
    """What a method's :meth:`TrainingMethod.prepare` gets besides the model and the config."""

    family: Any
    torch: Any
    transformers: Any
    #: the last of ``config.adapters`` was loaded trainable (the model is already a PeftModel)
    continued: bool = False
    #: the model was loaded quantized (bitsandbytes)
    quantized: bool = False
    notes: list[str] = field(default_factory=list)


class TrainingMethod:
    """A training method (plugin component). Subclasses say how the model loads and what trains."""

    name = ""
    summary = ""
    #: ``adapter``: the result is a PEFT adapter for the base model; ``model``: a full checkpoint.
    produces = "adapter"
    #: ``peft_type`` values of adapters this method keeps training (``config.adapters``).
    continues: tuple[str, ...] = ()
    #: the method trains a PEFT wrapper (DDP then needs ``find_unused_parameters=False``)
    uses_peft = True
    #: its adapters can be merged into the weights (prompt-learning ones cannot)
    mergeable = True

    def check(self, config: TrainConfig) -> list[tuple[str, str]]:
        """``(field, message)`` of config problems specific to this method."""
        return []

    def deepspeed_config(self, value: str) -> Any:
        """A DeepSpeed config (a path or a dict) from ``config.deepspeed``; this default takes files only."""
        path = Path(value).expanduser()
        if path.is_file():
            return str(path.resolve())
        raise InputError(f"DeepSpeed config file not found: {value}")

    def quantization_config(self, config: TrainConfig, torch: Any, transformers: Any) -> Any:
        """A ``BitsAndBytesConfig`` to load the base model with, or ``None``."""
        return None

    def prepare_base(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        """The freshly loaded base model, before ``config.adapters`` are applied (QLoRA's k-bit preparation)."""
        return model

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        """The model ready to train (wrapped, or with ``requires_grad`` set); may be a new object."""
        raise NotImplementedError


def load_method(name: str, registry: Any = None) -> TrainingMethod:
    target = (registry or _registry()).load("trainer", name)
    method = target() if isinstance(target, type) else target
    if not isinstance(method, TrainingMethod):
        raise KGCError(f"trainer '{name}' is a {type(method).__name__}, not a kgcore.training.TrainingMethod")
    return method


def linear_module_names(model: Any, exclude: Sequence[str] = ("lm_head",)) -> list[str]:
    """Last name components of every linear layer (bitsandbytes 4/8-bit ones included), minus ``exclude``."""
    import torch

    names = set()
    for full_name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear) or kind in ("Linear4bit", "Linear8bitLt"):
            last = full_name.rsplit(".", 1)[-1]
            if last not in exclude and full_name not in exclude:
                names.add(last)
    return sorted(names)


def resolve_lora_targets(model: Any, config: TrainConfig, family: Any) -> list[str]:
    """The config's LoRA target modules, else the family's; ``all`` = :func:`linear_module_names`.
    A name that matches no module is an error listing the model's linear layers."""
    from .families import ALL_LINEAR

    targets = config.lora_target_modules if config.lora_target_modules is not None else family.lora_target_modules
    available = linear_module_names(model, family.lora_exclude_modules)
    if isinstance(targets, str) and targets in ("all", ALL_LINEAR):
        return available
    targets = list(targets)
    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        origin = "lora_target_modules" if config.lora_target_modules is not None else f"family '{family.name}'"
        raise InputError(f"LoRA target module(s) {', '.join(missing)} (from {origin}) match no module of "
                         f"'{config.model}'; its linear layers: {', '.join(available)} (or use 'all')",
                         field="lora_target_modules")
    return targets


# -- the run -----------------------------------------------------------------------------------------

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


def _say(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"kgc train: {message}", file=sys.stderr, flush=True)


def _resolve_dtype(name: str, config: TrainConfig, torch: Any) -> Any:
    if name == "auto":
        name = "bfloat16" if config.bf16 else "float16" if config.fp16 else "float32"
    return getattr(torch, name)


def _checkpoints(path: Path) -> list[Path]:
    return sorted((p for p in path.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
                  key=lambda p: int(p.name[11:]))


def _peft_type(adapter: str) -> str:
    data = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    return str(data.get("peft_type", "")).upper()


def _apply_adapters(model: Any, config: TrainConfig, method: TrainingMethod, quantized: bool) -> tuple[Any, bool]:
    """Merge ``config.adapters`` into the model, keeping the last one trainable when the method can
    continue it. Returns ``(model, continued)``."""
    if not config.adapters:
        return model, False
    from peft import PeftModel

    types = [_peft_type(a) for a in config.adapters]
    continued = config.continue_last_adapter and types[-1] in method.continues
    to_merge = config.adapters[:-1] if continued else list(config.adapters)
    if to_merge and quantized:
        raise InputError(f"{config.method} cannot merge adapters into quantized weights: continue from one "
                         f"adapter only (or merge them into the base model first)", field="adapters")
    for adapter, peft_type in zip(to_merge, types):
        if peft_type not in ("LORA", "LOHA", "LOKR", "IA3", "ADALORA"):
            raise InputError(f"adapter '{adapter}' ({peft_type}) cannot be merged into the weights; only the last "
                             f"adapter may be a {peft_type} one, continued by the matching method", field="adapters")
        _say(f"merging adapter {adapter}")
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    if continued:
        _say(f"continuing adapter {config.adapters[-1]} (its own settings replace the config's {config.method} ones)")
        model = PeftModel.from_pretrained(model, config.adapters[-1], is_trainable=True)
    return model, continued


class _LogCallback:
    """Writes ``train_log.jsonl`` (step, epoch, loss, eval_loss, lr, grad_norm, tokens/s) on rank 0.

    tokens/s counts non-padding input tokens over the time spent in training steps since the
    previous log line (evaluation time excluded)."""

    def __init__(self, path: Path):
        self.path = path
        self.step_time = 0.0
        self.tokens_at_log = 0
        self._t: float | None = None

    def make(self) -> Any:
        from transformers import TrainerCallback

        outer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                outer.tokens_at_log = state.num_input_tokens_seen or 0

            def on_step_begin(self, args, state, control, **kwargs):
                outer._t = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                if outer._t is not None:
                    outer.step_time += time.perf_counter() - outer._t
                    outer._t = None

            def on_log(self, args, state, control, logs=None, **kwargs):
                if state.is_world_process_zero and logs:
                    outer.write(state, logs)

        return Callback()

    def write(self, state: Any, logs: Mapping[str, Any]) -> None:
        if "loss" not in logs and "eval_loss" not in logs:
            return
        tokens = logs.get("num_input_tokens_seen")
        speed = None
        if "loss" in logs and tokens is not None:
            if self.step_time > 0:
                speed = round((tokens - self.tokens_at_log) / self.step_time, 1)
            self.tokens_at_log, self.step_time = tokens, 0.0
        line = {"step": state.global_step, "epoch": round(state.epoch, 4) if state.epoch is not None else None,
                "loss": logs.get("loss"), "eval_loss": logs.get("eval_loss"), "lr": logs.get("learning_rate"),
                "grad_norm": logs.get("grad_norm"), "tokens_per_s": speed, "tokens_seen": tokens,
                "time": round(time.time(), 3)}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss(log_path: str | os.PathLike[str], png_path: str | os.PathLike[str], title: str = "") -> str | None:
    """Draw training (and eval) loss against steps; ``None`` (with a warning) without matplotlib."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        warnings.warn("loss_curve.png skipped: pip install matplotlib", stacklevel=2)
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if evals:
        ax.plot(*zip(*evals), "o--", label="eval loss", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return str(png_path)


def _split(records: list[dict[str, str]], size: float, seed: int) -> tuple[list, list]:
    import random

    n_eval = int(size) if size >= 1 else max(1, round(len(records) * size))
    if n_eval >= len(records):
        raise InputError(f"val_set_size {size} leaves no training records (only {len(records)})", field="val_set_size")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return ([r for i, r in enumerate(records) if i not in held], [records[i] for i in sorted(held)])


def _versions() -> dict[str, str]:
    from .prediction import package_versions

    from importlib import metadata

    versions = package_versions()
    for name in ("accelerate", "deepspeed", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _absolute(config: TrainConfig) -> TrainConfig:
    """Paths that exist made absolute, so the saved config repeats the run from any directory."""
    def fix(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value and Path(value).exists() else value

    return dataclasses.replace(
        config, model=fix(config.model), train_file=fix(config.train_file), dev_file=fix(config.dev_file),
        output_dir=str(Path(config.output_dir).resolve()), adapters=[fix(a) for a in config.adapters],
        template=fix(config.template) if config.template and config.template.endswith((".yaml", ".yml")) else config.template,
        deepspeed=fix(config.deepspeed))


_RESUME_FREE = {"epochs", "max_steps", "resume", "overwrite_output_dir", "logging_steps", "eval_strategy", "eval_steps",
                "eval_on_start", "save_strategy", "save_steps", "save_total_limit", "plot_loss",
                "dataloader_num_workers", "max_eval_samples", "dev_file", "eval_batch_size"}


def _checkpointing_arguments(transformers, enabled: bool) -> dict[str, Any]:
    """Activation checkpointing for TrainingArguments, under its old name (transformers < 5.18) or new one."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


def train(config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str]) -> TrainResult:
    """Run one training (the Python API of ``kgc train``).

    ``config`` is a :class:`TrainConfig`, a mapping of its fields or a config file path.
    """
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = load_config(None, config, overrides_source="config")
    else:
        check_config(config)
    registry = _registry()
    method = load_method(config.method, registry)
    out = Path(config.output_dir)
    rank = int(os.environ.get("RANK", "0"))
    main = rank == 0

    # -- output directory: fresh, resumed or overwritten -----------------------------------------
    checkpoints = _checkpoints(out) if out.is_dir() else []
    finished = out.is_dir() and any((out / name).exists() for name in ("adapter_config.json", "config.json"))
    started = out.is_dir() and (out / LOG_FILE).exists()
    resume_from = None
    if config.resume and checkpoints:
        resume_from = str(checkpoints[-1])
    elif config.overwrite_output_dir:
        pass
    elif checkpoints or finished:
        what = f"checkpoints ({checkpoints[-1].name} last)" if checkpoints else "a finished run without checkpoints"
        hint = "pass --resume to continue it or " if checkpoints else ""
        raise InputError(f"output_dir already holds {what}: {hint}--overwrite-output-dir to start over",
                         path=str(out), field="output_dir")
    elif started and not config.resume:
        raise InputError("output_dir holds a run that stopped before its first checkpoint: --resume restarts it, "
                         "--overwrite-output-dir too", path=str(out), field="output_dir")

    # -- data (before any model loads: data errors come fast) -------------------------------------
    stats = DataStats()
    train_records, dropped = read_records(config.train_file, role="train_file")
    stats.dropped_empty += dropped
    eval_records: list[dict[str, str]] = []
    if config.dev_file:
        eval_records, dropped = read_records(config.dev_file, role="dev_file")
        stats.dropped_empty += dropped
    elif config.val_set_size > 0:
        train_records, eval_records = _split(train_records, config.val_set_size, config.seed)
    if config.max_train_samples:
        train_records = train_records[:config.max_train_samples]
    if config.max_eval_samples:
        eval_records = eval_records[:config.max_eval_samples]
    stats.train_records, stats.eval_records = len(train_records), len(eval_records)

    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import torch
    import transformers

    from .families import resolve_family

    # -- tokenizer, family, template ----------------------------------------------------------------
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
        model_config = transformers.AutoConfig.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load '{config.model}': {exc}", field="model") from None
    family = resolve_family(config.family or getattr(model_config, "model_type", None), registry)
    if config.family and family.name == "generic" and config.family.lower() != "generic":
        warnings.warn(f"unknown model family '{config.family}': using the generic family (all-linear LoRA, the "
                      f"model's own template)", stacklevel=2)
    if family.loader == "seq2seq":
        raise InputError(f"family '{family.name}' is an encoder-decoder model; kgc train supports causal LMs "
                         f"(and ChatGLM's AutoModel)", field="family")
    template = config.template or family.default_template
    config = dataclasses.replace(
        config, family=family.name, template=template, lora_alpha=config.resolved_lora_alpha,
        max_target_length=config.resolved_max_target_length,
        eval_strategy=config.eval_strategy or ("epoch" if eval_records else "no"),
        lora_target_modules=(config.lora_target_modules if config.lora_target_modules is not None
                             else family.lora_target_modules if isinstance(family.lora_target_modules, str)
                             else list(family.lora_target_modules)))
    if config.lora_target_modules == "all-linear":
        config = dataclasses.replace(config, lora_target_modules="all")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoder = PromptEncoder(tokenizer, template, config.system, registry)
    train_examples = encode_records(train_records, encoder, config, stats)
    eval_examples = encode_records(eval_records, encoder, config, None) if eval_records else []
    if stats.truncated:
        _say(f"{stats.truncated} of {len(train_examples)} training sequences were longer than cutoff_len "
             f"{config.cutoff_len} and were cut")
    if stats.segment_mismatches:
        _say(f"{stats.segment_mismatches} prompts tokenize differently as one text than segment by segment (the "
             f"reference's way); training uses the text's tokens, which kgc predict sends")

    # -- the trainer's arguments (this also sets up torch.distributed under torchrun) ---------------
    deepspeed = resolve_deepspeed(config.deepspeed, method) if config.deepspeed else None
    has_eval = bool(eval_examples) and config.eval_strategy != "no"
    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size or config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, num_train_epochs=config.epochs,
        max_steps=config.max_steps, learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        optim=config.optim, bf16=config.bf16, fp16=config.fp16, seed=config.seed, data_seed=config.seed,
        logging_steps=config.logging_steps, logging_first_step=True,
        eval_strategy=config.eval_strategy if has_eval else "no", eval_steps=config.eval_steps,
        eval_on_start=bool(config.eval_on_start and has_eval),
        save_strategy=config.save_strategy, save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        **_checkpointing_arguments(transformers, config.gradient_checkpointing),
        neftune_noise_alpha=config.neftune_alpha, include_num_input_tokens_seen="non_padding", report_to="none",
        remove_unused_columns=False, label_names=["labels"], deepspeed=deepspeed,
        dataloader_num_workers=config.dataloader_num_workers, dataloader_pin_memory=torch.cuda.is_available(),
        ddp_find_unused_parameters=False if method.uses_peft else None, disable_tqdm=False,
        use_cpu=not torch.cuda.is_available())

    with args.main_process_first(desc="output directory"):
        if main:
            out.mkdir(parents=True, exist_ok=True)
            if config.overwrite_output_dir and not resume_from:
                for checkpoint in checkpoints:
                    shutil.rmtree(checkpoint)
                for name in (LOG_FILE, PLOT_FILE, META_FILE):
                    (out / name).unlink(missing_ok=True)
            if resume_from and (out / CONFIG_FILE).is_file():
                _warn_changes(out / CONFIG_FILE, config)
            save_config(_absolute(config), out / CONFIG_FILE,
                        note=f"family {family.name}; {len(train_examples)} training / {len(eval_examples)} eval "
                             f"sequences")
            log_path = out / LOG_FILE
            if resume_from:
                step = int(Path(resume_from).name[11:])
                kept = [r for r in read_log(log_path) if r.get("step", 0) <= step]
                log_path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
            else:
                log_path.write_text("", encoding="utf-8")

    # -- the model --------------------------------------------------------------------------------
    transformers.set_seed(config.seed)
    loader = transformers.AutoModel if family.loader == "auto" else transformers.AutoModelForCausalLM
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code,
                              "dtype": _resolve_dtype(config.dtype, config, torch)}
    quant = method.quantization_config(config, torch, transformers)
    if quant is not None:
        kwargs["quantization_config"] = quant
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs["device_map"] = {"": f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"}
    _say(f"loading {config.model} ({family.name} family, template {template}, method {config.method})")
    try:
        model = loader.from_pretrained(config.model, **kwargs)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load model '{config.model}': {exc}", field="model") from None
    if getattr(model.config, "use_cache", None) is not None:
        model.config.use_cache = False
    ctx = TrainContext(family=family, torch=torch, transformers=transformers, quantized=quant is not None)
    model = method.prepare_base(model, config, ctx)
    model, ctx.continued = _apply_adapters(model, config, method, quant is not None)
    continued = ctx.continued
    model = method.prepare(model, config, ctx)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    _say(f"{len(train_examples)} training / {len(eval_examples)} eval sequences (mean {stats.mean_len}, max "
         f"{stats.max_len} tokens); trainable parameters {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")

    # -- train ------------------------------------------------------------------------------------
    log_callback = _LogCallback(out / LOG_FILE)
    trainer = transformers.Trainer(
        model=model, args=args, data_collator=PadCollator(tokenizer.pad_token_id),
        train_dataset=_Examples(train_examples), eval_dataset=_Examples(eval_examples) if has_eval else None,
        processing_class=tokenizer, callbacks=[log_callback.make()])
    if main:
        _registry_host().call("kgc_run_start", command="train", options=config.to_dict())
    started = time.time()
    if resume_from:
        _say(f"resuming from {resume_from}")
    output = trainer.train(resume_from_checkpoint=resume_from)
    metrics = dict(output.metrics)
    if has_eval:
        evaluated = [h for h in trainer.state.log_history if "eval_loss" in h]
        if not evaluated or evaluated[-1].get("step") != trainer.state.global_step:
            metrics.update(trainer.evaluate())
        else:
            metrics["eval_loss"] = evaluated[-1]["eval_loss"]
    trainer.save_model(str(out))
    if ctx.notes:
        for note in ctx.notes:
            _say(note)

    # -- log, plot, metadata ----------------------------------------------------------------------------
    rows = read_log(out / LOG_FILE) if main else []
    losses = [r["loss"] for r in rows if r.get("loss") is not None]
    eval_losses = [r["eval_loss"] for r in rows if r.get("eval_loss") is not None]
    plot = None
    if main and config.plot_loss:
        plot = plot_loss(out / LOG_FILE, out / PLOT_FILE, title=f"{config.method} · {Path(config.model).name}")
    predict_adapters: list[str] = []
    if method.produces == "adapter":
        earlier = config.adapters[:-1] if continued else list(config.adapters)
        predict_adapters = [str(Path(a).resolve()) for a in earlier] + [str(out.resolve())]
    result = TrainResult(
        output_dir=str(out.resolve()), produces=method.produces, method=config.method, family=family.name,
        template=template, predict_adapters=predict_adapters, mergeable=method.mergeable, metrics=metrics, stats=stats,
        log_path=str(out / LOG_FILE), plot_path=plot, resumed_from=resume_from,
        first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
        first_eval_loss=eval_losses[0] if eval_losses else None,
        last_eval_loss=eval_losses[-1] if eval_losses else None, model=trainer.model, tokenizer=tokenizer)
    if main:
        meta = {"config": config.to_dict(), "family": family.name, "template": template, "method": config.method,
                "produces": method.produces, "predict_adapters": predict_adapters,
                "predict_command": result.predict_command, "resumed_from": resume_from,
                "continued_adapter": config.adapters[-1] if continued else None,
                "data": dataclasses.asdict(stats), "trainable_parameters": trainable, "parameters": total,
                "metrics": metrics, "first_loss": result.first_loss, "last_loss": result.last_loss,
                "first_eval_loss": result.first_eval_loss, "last_eval_loss": result.last_eval_loss,
                "started": started, "seconds": round(time.time() - started, 3),
                "world_size": int(os.environ.get("WORLD_SIZE", "1")), "host": platform.node(),
                "versions": _versions()}
        (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str) + "\n",
                                     encoding="utf-8")
        _registry_host().call("kgc_run_end", command="train", options=config.to_dict(), result=meta)
    return result


def _registry_host() -> Any:
    from .plugins import get_host

    return get_host()


def _warn_changes(path: Path, config: TrainConfig) -> None:
    try:
        old = load_config(path).to_dict()
    except KGCError:
        return
    new = _absolute(config).to_dict()
    changed = sorted(k for k in new if k not in _RESUME_FREE and old.get(k) != new.get(k))
    if changed:
        warnings.warn(f"resuming with settings that differ from the interrupted run's ({', '.join(changed)}); "
                      f"the checkpoint may not fit them", stacklevel=3)


__all__ = [
    "CONFIG_SCHEMA", "ConfigError", "DataStats", "PadCollator", "PromptEncoder", "QuantizationConfig", "TrainConfig",
    "TrainContext", "TrainResult", "TrainingMethod", "check_config", "click_options", "encode_records",
    "fit_lengths", "infer_max_len", "linear_module_names", "load_config", "load_method", "overrides_from_cli",
    "plot_loss", "read_log", "read_records", "resolve_deepspeed", "resolve_lora_targets", "save_config", "train",
]
