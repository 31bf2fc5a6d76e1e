"""Model families: what kgc needs to know about an architecture to train and export it.

A family names its default chat template, its LoRA target modules, which ``transformers`` Auto
class loads it, and the HF ``model_type`` values it covers. Families are components
(``kgc_register_model_families``); :data:`FAMILIES` are the built-in ones: the reference's
``--model_name`` table plus modern architectures. :func:`resolve_family` finds one by name, alias
or ``model_type`` and never fails: anything unknown gets :data:`GENERIC`, whose LoRA targets are
``"all-linear"`` (the reference raised ``KeyError: 'other'`` there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Loader = Literal["causal", "auto", "seq2seq"]

#: ``lora_target_modules`` value meaning every linear layer except the output head(s).
ALL_LINEAR = "all-linear"

_AUTO_CLASSES = {"causal": "AutoModelForCausalLM", "auto": "AutoModel", "seq2seq": "AutoModelForSeq2SeqLM"}


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
        if self.loader not in _AUTO_CLASSES:
            raise ValueError(f"model family '{self.name}': loader must be causal, auto or seq2seq, not '{self.loader}'")

    @property
    def summary(self) -> str:
        return self.description or f"model family {self.name}"

    def auto_class(self) -> Any:
        """The ``transformers`` Auto class that loads models of this family."""
        import transformers

        return getattr(transformers, _AUTO_CLASSES[self.loader])


#: The family of every model kgc does not know: LoRA on all linear layers, the model's own template.
GENERIC = ModelFamily("generic", description="any other model: all-linear LoRA, the model's own template")

#: LoRA targets of LLaMA-style blocks (the reference's llama/custom/qwen2/moss/mistral entry).
LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GLM_FALCON = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")

FAMILIES = (
    # -- the reference's families (DeepKE src/utils/general_utils.py) ------------------------
    ModelFamily("llama", aliases=("llama2", "llama3", "alpaca", "vicuna", "zhixi", "smollm", "smollm2"),
                lora_target_modules=LLAMA_LIKE, model_types=("llama",),
                description="LLaMA 1/2/3 and derivatives (Alpaca, Vicuna, ZhiXi, OneKE, SmolLM2)"),
    ModelFamily("custom", lora_target_modules=LLAMA_LIKE, description="a user's own LLaMA-like model"),
    ModelFamily("qwen", default_template="qwen",
                lora_target_modules=("c_attn", "attn.c_proj", "w1", "w2", "mlp.c_proj"), model_types=("qwen",),
                description="Qwen (v1, remote code)"),
    ModelFamily("qwen2", aliases=("qwen1.5", "qwen2.5"), lora_target_modules=LLAMA_LIKE,
                model_types=("qwen2", "qwen2_moe"), description="Qwen1.5 / Qwen2 / Qwen2.5"),
    ModelFamily("baichuan", aliases=("baichuan2",), default_template="baichuan2",
                lora_target_modules=("W_pack", "o_proj", "gate_proj", "down_proj", "up_proj"),
                model_types=("baichuan",), description="Baichuan and Baichuan2 (remote code)"),
    ModelFamily("chatglm", aliases=("chatglm2", "chatglm3"), default_template="chatglm3",
                lora_target_modules=GLM_FALCON, loader="auto", model_types=("chatglm",),
                lora_exclude_modules=("lm_head", "output_layer"), description="ChatGLM2/3 (AutoModel)"),
    ModelFamily("falcon", default_template="falcon", lora_target_modules=GLM_FALCON,
                model_types=("falcon", "RefinedWeb", "RefinedWebModel"), description="Falcon"),
    ModelFamily("moss", default_template="vanilla", lora_target_modules=LLAMA_LIKE, model_types=("moss",),
                description="MOSS (no registered chat template: vanilla)"),
    ModelFamily("mistral", lora_target_modules=LLAMA_LIKE, model_types=("mistral",), description="Mistral"),
    ModelFamily("cpm-bee", aliases=("cpmbee",), default_template="vanilla",
                lora_target_modules=("project_q", "project_v"), model_types=("cpmbee",), description="CPM-Bee"),
    ModelFamily("openba", default_template="openba", lora_target_modules=("q", "kv", "qkv", "o", "fc_in", "fc_out"),
                loader="seq2seq", model_types=("openba",), description="OpenBA (encoder-decoder)"),
    # -- modern families ----------------------------------------------------------------------
    ModelFamily("qwen3", lora_target_modules=LLAMA_LIKE, model_types=("qwen3", "qwen3_moe"), description="Qwen3"),
    ModelFamily("gemma", aliases=("gemma2",), lora_target_modules=LLAMA_LIKE, model_types=("gemma", "gemma2"),
                description="Gemma and Gemma 2"),
    ModelFamily("gemma3", lora_target_modules=LLAMA_LIKE, model_types=("gemma3", "gemma3_text"),
                description="Gemma 3"),
    ModelFamily("phi3", aliases=("phi-3", "phi4", "phi-4"),
                lora_target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), model_types=("phi3",),
                description="Phi-3 / Phi-4 (fused qkv and gate_up projections)"),
)


def _key(text: str) -> str:
    return text.strip().lower().replace("_", "-")


def resolve_family(name_or_model_type: str | None, registry: Any = None) -> ModelFamily:
    """The family named ``name_or_model_type`` (a family name, an alias or an HF ``model_type``,
    case-insensitive, ``_`` = ``-``), else :data:`GENERIC`. Never raises for an unknown name."""
    if not name_or_model_type:
        return GENERIC
    if registry is None:
        from kgcore.plugins import get_host

        registry = get_host().registry
    families = [c.load() for c in registry.components("model_family")]
    key = _key(name_or_model_type)
    for attr in ("name", "aliases", "model_types"):  # names win over aliases, aliases over model types
        for family in families:
            values = getattr(family, attr)
            values = (values,) if isinstance(values, str) else values
            if key in {_key(v) for v in values}:
                return family
    return GENERIC
