"""The hooks this plugin adds to kgc: training methods and model families are components of their own kinds."""

from __future__ import annotations

from kgcore.hookspecs import Register, hookspec


@hookspec
def kgc_register_trainers(register: Register) -> None:
    """Register training methods (``kgc_trainers.TrainingMethod`` subclasses) for ``kgc train --method``."""


@hookspec
def kgc_register_model_families(register: Register) -> None:
    """Register model families (``kgc_trainers.ModelFamily``): default chat template, LoRA targets, loader."""
