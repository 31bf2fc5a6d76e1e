"""Fine-tuning for kgc: the ``kgc train`` and ``kgc merge`` commands, training methods and model families.

Training methods (LoRA, QLoRA, full, freeze, P-tuning, prefix tuning) and model families are
components of two kinds this plugin adds (``trainer`` and ``model_family``); other plugins register
more with ``kgc_register_trainers`` (subclasses of ``kgc_trainers.TrainingMethod``) and
``kgc_register_model_families`` (``kgc_trainers.ModelFamily`` objects). The Python API::

    import kgc_trainers
    result = kgc_trainers.train("run.yaml")   # a file, a mapping or a TrainConfig
    config = kgc_trainers.load_config("run.yaml", {"max_steps": 10})

Importing this package is cheap: torch, transformers and peft load only when training or merging.
"""

from typing import Any

from kgcore import hookimpl

TRAINERS = {
    "lora": ("kgc_trainers.methods:LoraMethod", "LoRA adapters (peft) on the family's target modules"),
    "qlora": ("kgc_trainers.methods:QLoraMethod", "LoRA on a 4/8-bit bitsandbytes-quantized model"),
    "full": ("kgc_trainers.methods:FullMethod", "full fine-tuning of every weight (fp32 master weights)"),
    "freeze": ("kgc_trainers.methods:FreezeMethod", "train only some modules of the first/last N layers"),
    "ptuning": ("kgc_trainers.methods:PTuningMethod", "P-tuning: virtual tokens from a prompt encoder (peft)"),
    "prefix": ("kgc_trainers.methods:PrefixMethod", "prefix tuning / P-tuning v2: trained key-value prefixes (peft)"),
}
_API = {"train": "run", "TrainConfig": "config", "load_config": "config", "TrainingMethod": "method",
        "ModelFamily": "families"}


def __getattr__(name: str) -> Any:
    """The names of the Python API, imported on first use."""
    if name not in _API:
        raise AttributeError(f"module 'kgc_trainers' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)


@hookimpl
def kgc_add_kinds(add):
    from . import hookspecs

    add("trainer", hookspecs.kgc_register_trainers, "kgc_trainers.method:TrainingMethod")
    add("model_family", hookspecs.kgc_register_model_families, "kgc_trainers.families:ModelFamily", "instance")


@hookimpl
def kgc_register_trainers(register):
    for name, (target, summary) in TRAINERS.items():
        register(name, target, summary=summary)


@hookimpl
def kgc_register_model_families(register):
    from .families import FAMILIES

    for family in FAMILIES:
        register(family.name, family, summary=family.summary)


@hookimpl
def kgc_register_commands(cli):
    from .commands import merge, train

    cli.add_command(train)
    cli.add_command(merge)
