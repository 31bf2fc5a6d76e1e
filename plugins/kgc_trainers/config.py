"""The training configuration: :class:`TrainConfig`, from a YAML/JSON file and ``kgc train`` flags.

The settings of each method family live in a section of their own (``lora``, ``quantization``,
``freeze``, ``prompt_learning``). A section's option also has a flat name, the section's prefix plus
the option's name (``lora_r``, ``freeze_trainable_layers``, ``bits``): it is the option's flag
(``--lora-r``) and, in files, an alias of the nested key (``lora: {r: 16}`` = ``lora_r: 16``).

Files and flags are checked with a JSON Schema derived from the dataclasses (types from their
annotations, constraints such as ``minimum`` or ``enum`` from field metadata); every problem is
reported at once, with its file or flag and field.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from kgcore.prompt import AUTO, load_chat_template
from kgcore.errors import InputError, KGCError

#: The resolved config a run leaves in its ``output_dir``.
CONFIG_FILE = "kgc_train_config.yaml"
#: How errors name values given as flags.
CLI_SOURCE = "command line"
#: JSON Schema constraint of a count where 0 would mean nothing.
NONZERO = {"not": {"const": 0}}

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
_REQUIRED = ("model", "train_file", "output_dir")


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = None, **constraints: Any) -> Any:
    """A config field: default, help text, and JSON Schema ``constraints`` beyond its type."""
    metadata = {"help": help, "schema": constraints}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def section(options: type, flat_prefix: str) -> Any:
    """A config field holding a method family's options; ``flat_prefix`` starts their flat names."""
    return field(default_factory=options, metadata={"flat_prefix": flat_prefix})


# -- the configuration -------------------------------------------------------------------------

@dataclass
class LoraOptions:
    """LoRA adapters (methods ``lora`` and ``qlora``)."""

    r: int = setting(8, "LoRA rank.", minimum=1)
    alpha: float | None = setting(None, "LoRA alpha (default 2 * r).", exclusiveMinimum=0)
    dropout: float = setting(0.1, "LoRA dropout.", minimum=0, exclusiveMaximum=1)
    target_modules: list[str] | Literal["all", "all-linear"] | None = setting(
        None, "Module names for LoRA (a list), 'all' for every linear layer but the output head; default: the "
              "family's.", minItems=1, items={"minLength": 1})
    modules_to_save: list[str] | None = setting(
        None, "Modules trained fully and saved with the adapter (the reference's additional_target).",
        items={"minLength": 1})

    @property
    def resolved_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2 * self.r


@dataclass
class QuantizationOptions:
    """bitsandbytes quantization of the base model (method ``qlora``)."""

    bits: Literal[4, 8] = setting(4, "4 or 8 bits.")
    quant_type: Literal["nf4", "fp4"] = setting("nf4", "4-bit data type: nf4 or fp4.")
    double_quant: bool = setting(True, "Quantize the 4-bit quantization constants too.")
    compute_dtype: Dtype = setting("auto", "Dtype of 4-bit matmuls: auto (bfloat16 with bf16, float16 with fp16, "
                                           "else float32), float32, bfloat16 or float16.")


@dataclass
class FreezeOptions:
    """Which parameters train (method ``freeze``)."""

    trainable_layers: int = setting(3, "freeze: train the last N layers (a negative N: the first -N).", **NONZERO)
    modules: list[str] = setting(help="freeze: modules trained inside those layers ('all' = whole layers).",
                                 factory=lambda: ["mlp"], minItems=1, items={"minLength": 1})


@dataclass
class PromptLearningOptions:
    """Virtual tokens (methods ``ptuning`` and ``prefix``)."""

    num_virtual_tokens: int = setting(16, "ptuning/prefix: number of virtual tokens (the reference's pre_seq_len).",
                                      minimum=1)
    prefix_projection: bool = setting(False, "prefix: reparameterize the prefix with an MLP (P-tuning v2's option).")
    encoder_hidden_size: int | None = setting(None, "ptuning/prefix: hidden size of the prompt encoder / projection "
                                                    "(default: the model's hidden size).", minimum=1)


@dataclass
class TrainConfig:
    """Everything needed to repeat a training run (written to ``output_dir/kgc_train_config.yaml``)."""

    # -- model
    model: str = setting("", "Base model: a local transformers checkpoint directory or a hub name.", minLength=1)
    family: str | None = setting(None, "Model family; default: from the checkpoint's model_type. Unknown names fall "
                                       "back to the generic family (all-linear LoRA).")
    template: str | None = setting(None, "Chat template: 'auto' (the model's own) or a name/YAML file; default: the "
                                         "family's. Predict with the same --template.", minLength=1)
    system: str | None = setting(None, "System prompt (the same one must be given to kgc predict --system).")
    trust_remote_code: bool = setting(False, "Run model code shipped with the checkpoint.")
    dtype: Dtype = setting("auto", "Dtype the weights load in: auto (bfloat16 with bf16, float16 with fp16, else "
                                   "float32), float32, bfloat16 or float16.")
    # -- data
    train_file: str = setting("", "Converted training records (JSON lines or a JSON list): instruction, output.",
                              minLength=1)
    dev_file: str | None = setting(None, "Converted dev records with output, for the eval loss.")
    val_set_size: float = setting(0, "Without dev_file: hold out this many training records (a number < 1 is a "
                                     "share) for the eval loss.", minimum=0)
    max_train_samples: int | None = setting(None, "Use only the first N training records.", minimum=1)
    max_eval_samples: int | None = setting(None, "Use only the first N eval records.", minimum=1)
    cutoff_len: int = setting(1024, "Longest sequence (prompt + answer) in tokens; longer ones are cut by the "
                                    "reference's allocation rule.", minimum=8)
    max_source_length: int | None = setting(None, "Optional cap on prompt tokens (the reference declared it but "
                                                  "never applied it).", minimum=1)
    max_target_length: int | None = setting(None, "Answer tokens reserved when a sequence is cut (the allocation "
                                                  "rule); default min(256, cutoff_len // 2).", minimum=1)
    train_on_prompt: bool = setting(False, "Also learn the prompt tokens (default: loss on the answer only).")
    # -- method
    method: str = setting("lora", "Training method: lora, qlora, full, freeze, ptuning, prefix (or a plugin's).",
                          minLength=1)
    lora: LoraOptions = section(LoraOptions, "lora_")
    quantization: QuantizationOptions = section(QuantizationOptions, "")
    freeze: FreezeOptions = section(FreezeOptions, "freeze_")
    prompt_learning: PromptLearningOptions = section(PromptLearningOptions, "")
    adapters: list[str] = setting(help="PEFT adapters to continue from, in order (the reference's checkpoint_dir): "
                                       "all but the last are merged, the last keeps training.", factory=list,
                                  items={"minLength": 1})
    continue_last_adapter: bool = setting(True, "Keep training the last of adapters (false: merge them all and start "
                                                "a new adapter).")
    # -- optimisation
    epochs: float = setting(3.0, "Training epochs.", exclusiveMinimum=0)
    max_steps: int = setting(-1, "Optimizer steps (overrides epochs when > 0).", minimum=-1, **NONZERO)
    learning_rate: float = setting(5e-5, "Peak learning rate.", minimum=0)
    batch_size: int = setting(2, "Sequences per device per step.", minimum=1)
    eval_batch_size: int | None = setting(None, "Sequences per device per eval step (default: batch_size).",
                                          minimum=1)
    gradient_accumulation_steps: int = setting(1, "Batches per optimizer step.", minimum=1)
    warmup_steps: float = setting(0, "Linear warmup steps (a number < 1 is a share of all steps).", minimum=0)
    lr_scheduler: str = setting("linear", "Learning-rate schedule (transformers' SchedulerType: linear, cosine, "
                                          "constant, ...).", minLength=1)
    weight_decay: float = setting(0.0, "AdamW weight decay.", minimum=0)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.", minimum=0)
    optim: str = setting("adamw_torch", "Optimizer (transformers' OptimizerNames).", minLength=1)
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass (saves memory, ~20% "
                                                  "slower; the reference always turned it on).")
    neftune_alpha: float | None = setting(None, "NEFTune noise on input embeddings (typical 5-15).", minimum=0)
    bf16: bool = setting(False, "bfloat16 mixed precision.")
    fp16: bool = setting(False, "float16 mixed precision (CUDA only).")
    seed: int = setting(42, "Seed of initialisation, data order, dropout and the dev split.")
    # -- output
    output_dir: str = setting("", "Where the adapter (or model), checkpoints, log, plot and config go.", minLength=1)
    overwrite_output_dir: bool = setting(False, "Start over in an output_dir that already holds a run (its "
                                                "checkpoints and log are deleted).")
    resume: bool = setting(False, "Continue from the last checkpoint-* in output_dir (starts fresh if there is none).")
    logging_steps: int = setting(2, "Log every N optimizer steps (step 1 is always logged).", minimum=1)
    eval_strategy: Literal["no", "steps", "epoch"] | None = setting(
        None, "no, steps or epoch (default: epoch with dev data, else no).")
    eval_steps: int | None = setting(None, "Evaluate every N steps (eval_strategy steps; default logging_steps).",
                                     minimum=1)
    eval_on_start: bool = setting(True, "Evaluate once before training (the eval loss to compare with).")
    save_strategy: Literal["no", "steps", "epoch"] = setting("epoch", "Checkpoints: no, steps or epoch.")
    save_steps: int = setting(500, "Save a checkpoint every N steps (save_strategy steps).", minimum=1)
    save_total_limit: int | None = setting(None, "Keep at most N checkpoints.", minimum=1)
    plot_loss: bool = setting(True, "Draw loss_curve.png at the end (needs matplotlib).")
    deepspeed: str | None = setting(None, "DeepSpeed config: a JSON file or a name shipped with kgc (e.g. zero2).")
    dataloader_num_workers: int = setting(0, "Data loader worker processes.", minimum=0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from nested data (sections as mappings), as :meth:`to_dict` gives it."""
        sections = _sections()
        return cls(**{key: sections[key][0](**value) if key in sections else value for key, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_max_target_length(self) -> int:
        return self.max_target_length if self.max_target_length is not None else min(256, self.cutoff_len // 2)

    def concrete_dtype(self, name: str) -> str:
        """``name``, with ``auto`` replaced by the dtype of the mixed precision in use."""
        if name != "auto":
            return name
        return "bfloat16" if self.bf16 else "float16" if self.fp16 else "float32"


# -- the JSON Schema, derived from the dataclasses ----------------------------------------------------

def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of a config dataclass: each field's type from its annotation, with the
    constraints of its metadata; unknown keys are not allowed."""
    hints = get_type_hints(cls)
    properties = {f.name: _merged(_type_schema(hints[f.name]), f.metadata.get("schema", {})) for f in fields(cls)}
    return {"type": "object", "additionalProperties": False, "properties": properties}


@cache
def config_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`TrainConfig` (nested form)."""
    return json_schema(TrainConfig)


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a type: bool, int, float, str, None, ``list[X]``, ``Literal[...]``, a dataclass
    or a union of them."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        parts = [_type_schema(arg) for arg in get_args(annotation)]
        if all(set(p) == {"enum"} or p == {"type": "null"} for p in parts):  # Literal[...] | None
            return {"enum": [v for p in parts for v in p.get("enum", [None])]}
        if all(set(p) <= {"type", "items"} for p in parts) and sum("items" in p for p in parts) <= 1:  # int | None
            return {"type": [p["type"] for p in parts], **{k: v for p in parts for k, v in p.items() if k != "type"}}
        return {"anyOf": parts}
    if origin is Literal:
        return {"enum": list(get_args(annotation))}
    if origin is list:
        return {"type": "array", "items": _type_schema(get_args(annotation)[0])}
    if dataclasses.is_dataclass(annotation):
        return json_schema(annotation)
    return {"type": _JSON_TYPES[annotation]}


def _merged(schema: dict[str, Any], constraints: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    for key, value in constraints.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


# -- flat names: flags and aliases of section options ---------------------------------------------

@dataclass(frozen=True)
class _Option:
    """One leaf of the config: its flat name (flag, alias), its path, type and help."""

    flat: str
    path: tuple[str, ...]
    annotation: Any
    help: str


@cache
def _sections() -> dict[str, tuple[type, str]]:
    hints = get_type_hints(TrainConfig)
    return {f.name: (hints[f.name], f.metadata["flat_prefix"]) for f in fields(TrainConfig)
            if "flat_prefix" in f.metadata}


@cache
def _options() -> tuple[_Option, ...]:
    hints, sections, out = get_type_hints(TrainConfig), _sections(), []
    for f in fields(TrainConfig):
        if f.name not in sections:
            out.append(_Option(f.name, (f.name,), hints[f.name], f.metadata["help"]))
            continue
        options, prefix = sections[f.name]
        option_hints = get_type_hints(options)
        out += [_Option(prefix + o.name, (f.name, o.name), option_hints[o.name], o.metadata["help"])
                for o in fields(options)]
    return tuple(out)


def _aliases() -> dict[str, tuple[str, ...]]:
    return {o.flat: o.path for o in _options() if len(o.path) == 2}


def _flag(path: Sequence[Any]) -> str:
    flat = next((o.flat for o in _options() if o.path == tuple(path[:len(o.path)])), str(path[0]))
    return "--" + flat.replace("_", "-")


# -- reading and checking ---------------------------------------------------------------------------

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


def _nest(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[tuple[str, str]]]:
    """Flat keys moved into their sections: ``(nested data, the key each aliased field was given as,
    (field, message) of fields given twice)``."""
    aliases = _aliases()
    nested = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items() if k not in aliases}
    spelled, twice = {}, []
    for key in (k for k in data if k in aliases):
        section_name, name = aliases[key]
        target = nested.setdefault(section_name, {})
        if not isinstance(target, dict):
            continue  # the section itself is reported
        if name in target:
            twice.append((key, f"given twice, also as '{section_name}.{name}'"))
        target[name] = data[key]
        spelled[(section_name, name)] = key
    return nested, spelled, twice


def _checked(data: Mapping[str, Any], source: str, *, flags: bool = False) -> tuple[dict[str, Any], list]:
    """``data`` in nested form, and its problems as ``(source, field, message)``."""
    import jsonschema

    nested, spelled, twice = _nest(data)

    def name(path: Sequence[Any]) -> str:
        if flags and path:
            return _flag(path)
        head = next((i for i in range(len(path), 0, -1) if tuple(path[:i]) in spelled), 0)
        parts = ([spelled[tuple(path[:head])]] if head else []) + [str(p) for p in path[head:]]
        return ".".join(parts) or "(top level)"

    problems = [(source, key, message) for key, message in twice]
    validator = jsonschema.Draft202012Validator(config_schema())
    for error in sorted(validator.iter_errors(nested), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties":
            known = list(error.schema["properties"]) + (list(_aliases()) if not path else [])
            for key in sorted(set(error.instance) - set(error.schema["properties"])):
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f"; valid fields: {', '.join(known)}"
                problems.append((source, name([*path, key]), f"unknown field{hint}"))
            continue
        message = error.message
        if error.validator == "anyOf":
            message = f"{error.instance!r} is not {' or '.join(_describe(s) for s in error.validator_value)}"
        elif error.validator == "not":
            message = f"{error.instance!r} is not allowed here (0 means nothing)"
        problems.append((source, name(path), message))
    return nested, problems


def _describe(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    return {"array": "a list", "null": "null", "object": "a mapping"}.get(schema.get("type"), str(schema.get("type")))


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


def _leaf_paths(data: Mapping[str, Any]) -> list[str]:
    """The fields set in nested ``data``, sections' options as ``section.option``."""
    out = []
    for key, value in data.items():
        if key in _sections() and isinstance(value, Mapping):
            out += [f"{key}.{option}" for option in value]
        else:
            out.append(key)
    return out


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``base``, section by section."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = {**out[key], **value} if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def load_config(path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None, *,
                overrides_source: str = CLI_SOURCE) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML/JSON file (optional) with ``overrides`` on top
    (``kgc train`` flags; ``overrides_source`` names them in errors). Both may use nested sections or
    flat keys. Errors name the file or flag and the field. Relative paths are relative to the current
    directory."""
    flags = overrides_source == CLI_SOURCE
    source, file_data = overrides_source, {}
    if path is not None:
        source, file_data = str(path), _read_config_file(Path(path))
    file_data, problems = _checked(file_data, source)
    override_data, more = _checked(overrides or {}, overrides_source, flags=flags)
    problems += more
    if problems:
        raise ConfigError(problems)
    data = _merge(file_data, override_data)
    missing = [key for key in _REQUIRED if not data.get(key)]
    if missing:
        where = f"set it in {path} or pass" if path is not None else "pass" if flags else "give"
        raise ConfigError([(source, key, f"required; {where} {_flag([key]) if flags else repr(key)}")
                           for key in missing])
    origin = {option: source for option in _leaf_paths(file_data)}
    origin.update((option, overrides_source) for option in _leaf_paths(override_data))
    config = TrainConfig.from_dict(data)
    check_config(config, origin, default_source=source)
    return config


def check_config(config: TrainConfig, origin: Mapping[str, str] | None = None, host: Any = None, *,
                 default_source: str = CLI_SOURCE) -> None:
    """Cross-field checks after the schema: files exist, lengths fit, the method and template are
    registered. ``origin`` maps fields (``lora.r``) to where they were set."""
    from .method import TrainingMethod

    origin = origin or {}
    problems: list[tuple[str, str, str]] = []

    def bad(fld: str, message: str) -> None:
        problems.append((origin.get(fld, origin.get(fld.split(".")[0], default_source)), fld, message))

    if config.resolved_max_target_length >= config.cutoff_len:
        bad("max_target_length", f"{config.resolved_max_target_length} leaves no room for the prompt within "
                                 f"cutoff_len {config.cutoff_len}")
    if config.bf16 and config.fp16:
        bad("fp16", "bf16 and fp16 exclude each other")
    if config.val_set_size >= 1 and config.val_set_size != int(config.val_set_size):
        bad("val_set_size", f"{config.val_set_size} is neither a share (< 1) nor a whole number of records")
    if config.warmup_steps >= 1 and config.warmup_steps != int(config.warmup_steps):
        bad("warmup_steps", f"{config.warmup_steps} is neither a share (< 1) nor a whole number of steps")
    if config.eval_strategy not in (None, "no") and not (config.dev_file or config.val_set_size > 0):
        bad("eval_strategy", f"'{config.eval_strategy}' needs dev data: set dev_file or val_set_size")
    if not Path(config.train_file).is_file():
        bad("train_file", f"no such file: {config.train_file}")
    if config.dev_file and not Path(config.dev_file).is_file():
        bad("dev_file", f"no such file: {config.dev_file}")
    for adapter in config.adapters:
        if not (Path(adapter) / "adapter_config.json").is_file():
            bad("adapters", f"'{adapter}' is not a PEFT adapter directory (no adapter_config.json)")
    if host is None:
        from kgcore.plugins import get_host

        host = get_host()
    registry = host.registry
    if config.template not in (None, AUTO):
        try:
            load_chat_template(config.template, host)
        except KGCError as exc:
            bad("template", str(exc))
    method = TrainingMethod()
    try:
        method = registry.load("trainer", config.method)()
    except KGCError as exc:
        bad("method", str(exc))
    else:
        for fld, message in method.check(config):
            bad(fld, message)
    if config.deepspeed:
        try:
            method.deepspeed_config(config.deepspeed)
        except KGCError as exc:
            bad("deepspeed", str(exc))
    if problems:
        raise ConfigError(problems)


def save_config(config: TrainConfig, path: str | os.PathLike[str], note: str = "") -> None:
    """Write ``config`` as YAML that ``kgc train --config`` reads back unchanged."""
    import yaml

    from kgcore import __version__

    header = (f"# kgc {__version__} training config, resolved ({time.strftime('%Y-%m-%d %H:%M:%S')}).\n"
              f"# Repeat the run with: kgc train --config {path}\n")
    header += "".join(f"# {line}\n" for line in note.splitlines())
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    Path(path).write_text(header + text, encoding="utf-8")


# -- command-line options --------------------------------------------------------------------------

def _value_types(annotation: Any) -> list[Any]:
    """The types a field takes besides ``None`` (a Literal counts as the type of its values)."""
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    out = []
    for arg in args:
        if get_origin(arg) is Literal:
            out.append(type(get_args(arg)[0]))
        elif arg is not type(None):
            out.append(get_origin(arg) or arg)
    return out


def click_options() -> list[Any]:
    """``click`` options for every config field (``--lora-r``, ``--max-steps``, ``--bf16/--no-bf16``, ...),
    named by their flat names (the reference's underscore spelling, e.g. ``--max_steps``, works too).
    All default to ``None`` = "not given", so only flags the user typed override the config file."""
    import click

    options = []
    for option in _options():
        name = option.flat.replace("_", "-")
        kinds = _value_types(option.annotation)
        if kinds == [bool]:
            options.append(click.option(f"--{name}/--no-{name}", option.flat, default=None, help=option.help))
            continue
        decls = [f"--{name}"] + ([f"--{option.flat}"] if "_" in option.flat else [])
        is_list = list in kinds
        kind = str if is_list else next(k for k in (int, float, str) if k in kinds)
        options.append(click.option(*decls, option.flat, type=kind, default=None,
                                    metavar="A,B,..." if is_list else None, help=option.help))
    return options


def overrides_from_cli(params: Mapping[str, Any]) -> dict[str, Any]:
    """Config overrides (flat names) from the values of :func:`click_options` (``None`` = not given)."""
    annotations = {o.flat: o.annotation for o in _options()}
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if list in _value_types(annotations[name]):
            items = [v.strip() for v in str(value).split(",") if v.strip()]
            literals = [v for arg in get_args(annotations[name]) if get_origin(arg) is Literal for v in get_args(arg)]
            value = items[0] if len(items) == 1 and items[0] in literals else items
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        out[name] = value
    return out
