"""Model families: what kgc needs to know about an architecture to train and prompt it.

Families are plugins' data (``kgc_register_model_families``): the default chat template, the
LoRA target modules, which ``transformers`` Auto class loads it, and the HF config
``model_type`` values it covers. :func:`resolve_family` finds one by name, alias or
``model_type`` and never fails: anything unknown gets :data:`GENERIC`, whose LoRA targets are
``"all-linear"`` (the reference raised ``KeyError: 'other'`` there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Loader = Literal["causal", "auto", "seq2seq"]

#: ``lora_target_modules`` value meaning every linear layer except the output head(s).
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class ModelFamily:
    """One model family."""

    name: str
    aliases: tuple[str, ...] = ()
    #: A registered chat template name, or ``auto`` for the model's own template.
    default_template: str = "auto"
    #: Module names for LoRA, or :data:`ALL_LINEAR`.
    lora_target_modules: tuple[str, ...] | str = ALL_LINEAR
    #: ``causal`` = AutoModelForCausalLM, ``auto`` = AutoModel (ChatGLM), ``seq2seq`` = AutoModelForSeq2SeqLM.
    loader: Loader = "causal"
    supports_ptuning: bool = False
    #: HF ``config.model_type`` values of this family.
    model_types: tuple[str, ...] = ()
    #: Linear modules never targeted by ``all-linear`` LoRA (output heads).
    lora_exclude_modules: tuple[str, ...] = ("lm_head",)
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("aliases", "model_types", "lora_exclude_modules"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.lora_target_modules, str):
            object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
        if self.loader not in ("causal", "auto", "seq2seq"):
            raise ValueError(f"model family '{self.name}': loader must be causal, auto or seq2seq, not '{self.loader}'")

    @property
    def summary(self) -> str:
        return self.description or f"model family {self.name}"

    @property
    def trainer(self) -> str:
        """The reference's trainer class for this family: ``Seq2SeqTrainer`` for ChatGLM/OpenBA."""
        return "seq2seq" if self.loader in ("auto", "seq2seq") else "causal"


#: The family of every model kgc does not know: LoRA on all linear layers, the model's own template.
GENERIC = ModelFamily("generic", description="any other model: all-linear LoRA, the model's own template")


def _key(text: str) -> str:
    return text.strip().lower().replace("_", "-")


def resolve_family(name_or_model_type: str | None, registry: Any = None) -> ModelFamily:
    """The family named ``name_or_model_type`` (a family name, an alias or an HF ``model_type``,
    case-insensitive, ``_`` = ``-``), else :data:`GENERIC`. Never raises for an unknown name."""
    if not name_or_model_type:
        return GENERIC
    if registry is None:
        from .plugins import get_registry

        registry = get_registry()
    families = [c.load() for c in registry.components("model_family")]
    families = [f for f in families if isinstance(f, ModelFamily)]
    key = _key(name_or_model_type)
    for attr in ("name", "aliases", "model_types"):  # names win over aliases, aliases over model types
        for family in families:
            values = getattr(family, attr)
            values = (values,) if isinstance(values, str) else values
            if key in {_key(v) for v in values}:
                return family
    return GENERIC


__all__ = ["ALL_LINEAR", "GENERIC", "ModelFamily", "resolve_family"]
