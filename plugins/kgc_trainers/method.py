"""The base class of training methods (``kgc_register_trainers`` components) and what they are given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import TrainConfig
from .families import ModelFamily


@dataclass
class TrainContext:
    """What :meth:`TrainingMethod.prepare` gets besides the model and the config."""

    family: ModelFamily
    #: the last of ``config.adapters`` was loaded trainable (the model is already a PeftModel)
    continued: bool = False


class TrainingMethod:
    """A training method: how the base model loads and which parameters train.

    ``kgc_trainers.train`` does the rest (data, adapters to continue from, the Trainer, saving).
    """

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
        """The DeepSpeed config (a path or a dict) for ``config.deepspeed``: a JSON file, or the name
        of a config shipped in :mod:`kgc_trainers.deepspeed` (``zero2``, ``zero3_offload``, ...)."""
        from .deepspeed import deepspeed_config

        return str(deepspeed_config(value))

    def quantization_config(self, config: TrainConfig, torch: Any, transformers: Any) -> Any:
        """A ``BitsAndBytesConfig`` to load the base model with, or ``None``."""
        return None

    def prepare_base(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        """The freshly loaded base model, before ``config.adapters`` are applied (QLoRA's k-bit preparation)."""
        return model

    def prepare(self, model: Any, config: TrainConfig, ctx: TrainContext) -> Any:
        """The model ready to train (wrapped, or with ``requires_grad`` set); may be a new object."""
        raise NotImplementedError
