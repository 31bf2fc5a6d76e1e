"""Built-in training methods for ``kgc train`` (LoRA, QLoRA, full, freeze, P-tuning, prefix tuning).

Registered lazily: torch, transformers and peft load only when a method is used.
"""

from kgcore import hookimpl

TRAINERS = {
    "lora": ("kgc_trainers.methods:LoraMethod", "LoRA adapters (peft) on the family's target modules"),
    "qlora": ("kgc_trainers.methods:QLoraMethod", "LoRA on a 4/8-bit bitsandbytes-quantized model"),
    "full": ("kgc_trainers.methods:FullMethod", "full fine-tuning of every weight (fp32 master weights)"),
    "freeze": ("kgc_trainers.methods:FreezeMethod", "train only some modules of the first/last N layers"),
    "ptuning": ("kgc_trainers.methods:PTuningMethod", "P-tuning: virtual tokens from a prompt encoder (peft)"),
    "prefix": ("kgc_trainers.methods:PrefixMethod", "prefix tuning / P-tuning v2: trained key-value prefixes (peft)"),
}


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
def kgc_register_commands(cli):
    from .commands import merge

    cli.add_command(merge)
