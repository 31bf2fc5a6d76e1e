"""Model families: lookup by name, alias and HF model_type; unknown models fall back to all-linear
LoRA instead of the reference's ``KeyError: 'other'``; LoRA targets equal the reference table."""

from __future__ import annotations

import dataclasses

import pytest

import kgc_trainers
from kgc_trainers.families import ALL_LINEAR, GENERIC, ModelFamily, resolve_family
from kgcore.prompt import load_chat_template
from kgcore.plugins import PluginHost, Registry, get_host

LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GLM_FALCON = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
# iepile-format.md §4.3, "default LoRA target modules"
REFERENCE_LORA = {
    "llama": LLAMA_LIKE, "custom": LLAMA_LIKE, "qwen2": LLAMA_LIKE, "moss": LLAMA_LIKE, "mistral": LLAMA_LIKE,
    "falcon": GLM_FALCON, "chatglm": GLM_FALCON,
    "baichuan": ("W_pack", "o_proj", "gate_proj", "down_proj", "up_proj"),
    "qwen": ("c_attn", "attn.c_proj", "w1", "w2", "mlp.c_proj"),
    "cpm-bee": ("project_q", "project_v"),
    "openba": ("q", "kv", "qkv", "o", "fc_in", "fc_out"),
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return get_host().registry


@pytest.mark.parametrize("family", sorted(REFERENCE_LORA))
def test_lora_targets_equal_the_reference_table(registry, family):
    assert resolve_family(family, registry).lora_target_modules == REFERENCE_LORA[family]


@pytest.mark.parametrize("name, family", [
    # the reference's get_model_name mapping (lower-cased)
    ("LLaMA", "llama"), ("llama2", "llama"), ("llama3", "llama"), ("alpaca", "llama"), ("vicuna", "llama"),
    ("zhixi", "llama"), ("baichuan2", "baichuan"), ("Baichuan", "baichuan"), ("qwen", "qwen"), ("qwen2", "qwen2"),
    ("chatglm", "chatglm"), ("moss", "moss"), ("cpm-bee", "cpm-bee"), ("openba", "openba"), ("mistral", "mistral"),
    ("falcon", "falcon"),
    # aliases and HF config model_type values
    ("Qwen1.5", "qwen2"), ("qwen2_moe", "qwen2"), ("qwen3", "qwen3"), ("chatglm3", "chatglm"),
    ("gemma3_text", "gemma3"), ("gemma2", "gemma"), ("phi3", "phi3"), ("RefinedWebModel", "falcon"),
    ("cpmbee", "cpm-bee"), ("smollm2", "llama"),
])
def test_lookup_by_name_alias_and_model_type(registry, name, family):
    assert resolve_family(name, registry).name == family


def test_smollm2_model_type_is_llama_with_its_own_template(registry):
    family = resolve_family("llama", registry)  # SmolLM2's config.json says model_type "llama"
    assert family.model_types == ("llama",) and family.default_template == "auto"
    assert family.loader == "causal"


@pytest.mark.parametrize("name", ["other", "gpt2", "totally-unknown-model", "", None])
def test_unknown_family_falls_back_to_all_linear(registry, name):
    family = resolve_family(name, registry)
    assert family is GENERIC
    assert family.lora_target_modules == ALL_LINEAR == "all-linear"
    assert family.default_template == "auto" and family.loader == "causal"


def test_loaders_and_their_auto_classes(registry):
    import transformers

    assert resolve_family("chatglm", registry).auto_class() is transformers.AutoModel
    assert "output_layer" in resolve_family("chatglm", registry).lora_exclude_modules
    assert resolve_family("openba", registry).auto_class() is transformers.AutoModelForSeq2SeqLM
    assert resolve_family("qwen2", registry).auto_class() is transformers.AutoModelForCausalLM
    assert GENERIC.auto_class() is transformers.AutoModelForCausalLM


def test_default_templates_are_registered(registry):
    names = set(registry.names("chat_template"))
    for component in registry.components("model_family"):
        family = component.load()
        assert isinstance(family, ModelFamily)
        assert family.default_template in names, family.name
        load_chat_template(family.default_template)


def test_a_plugin_adds_families_and_families_are_frozen():
    import kgcore

    class Plugin:
        @kgcore.hookimpl
        def kgc_register_model_families(self, register):
            register("tiny", ModelFamily("tiny", aliases=("tinyllm",), lora_target_modules=("c_fc",),
                                         model_types=("tiny_arch",)))

    host = PluginHost()
    host.register(Plugin(), name="tiny-plugin")
    host.register(kgc_trainers, name="kgc.trainers")  # declares the model_family kind, with the built-in families
    assert resolve_family("TINY_ARCH", host.registry).lora_target_modules == ("c_fc",)
    assert resolve_family("tinyllm", host.registry).name == "tiny"
    assert resolve_family("llama", host.registry).lora_target_modules == LLAMA_LIKE
    with pytest.raises(dataclasses.FrozenInstanceError):
        GENERIC.lora_target_modules = ("x",)  # type: ignore[misc]
    with pytest.raises(ValueError, match="loader"):
        ModelFamily("bad", loader="encoder")  # type: ignore[arg-type]
