"""Built-in model families: DeepKE's ``--model_name`` table (default LoRA targets, loader classes)
plus modern architectures. Each family names its default chat template (``auto`` = the model's
own) and the HF ``model_type`` values it covers."""

from __future__ import annotations

from kgcore import hookimpl
from kgcore.families import ModelFamily

#: LoRA targets of LLaMA-style blocks (the reference's llama/custom/qwen2/moss/mistral entry).
LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GLM_FALCON = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")

FAMILIES = (
    # -- the reference's families (DeepKE src/utils/general_utils.py) ------------------------
    ModelFamily("llama", aliases=("llama2", "llama3", "alpaca", "vicuna", "zhixi", "smollm", "smollm2"),
                default_template="auto", lora_target_modules=LLAMA_LIKE, model_types=("llama",),
                description="LLaMA 1/2/3 and derivatives (Alpaca, Vicuna, ZhiXi, OneKE, SmolLM2)"),
    ModelFamily("custom", default_template="auto", lora_target_modules=LLAMA_LIKE,
                description="a user's own LLaMA-like model"),
    ModelFamily("qwen", default_template="qwen", lora_target_modules=("c_attn", "attn.c_proj", "w1", "w2", "mlp.c_proj"),
                model_types=("qwen",), description="Qwen (v1, remote code)"),
    ModelFamily("qwen2", aliases=("qwen1.5", "qwen2.5"), default_template="auto", lora_target_modules=LLAMA_LIKE,
                model_types=("qwen2", "qwen2_moe"), description="Qwen1.5 / Qwen2 / Qwen2.5"),
    ModelFamily("baichuan", aliases=("baichuan2",), default_template="baichuan2",
                lora_target_modules=("W_pack", "o_proj", "gate_proj", "down_proj", "up_proj"),
                model_types=("baichuan",), description="Baichuan and Baichuan2 (remote code)"),
    ModelFamily("chatglm", aliases=("chatglm2", "chatglm3"), default_template="chatglm3",
                lora_target_modules=GLM_FALCON, loader="auto", supports_ptuning=True, model_types=("chatglm",),
                lora_exclude_modules=("lm_head", "output_layer"), description="ChatGLM2/3 (AutoModel, P-tuning v2)"),
    ModelFamily("falcon", default_template="falcon", lora_target_modules=GLM_FALCON,
                model_types=("falcon", "RefinedWeb", "RefinedWebModel"), description="Falcon"),
    ModelFamily("moss", default_template="vanilla", lora_target_modules=LLAMA_LIKE, model_types=("moss",),
                description="MOSS (no registered chat template: vanilla)"),
    ModelFamily("mistral", default_template="auto", lora_target_modules=LLAMA_LIKE, model_types=("mistral",),
                description="Mistral"),
    ModelFamily("cpm-bee", aliases=("cpmbee",), default_template="vanilla",
                lora_target_modules=("project_q", "project_v"), model_types=("cpmbee",), description="CPM-Bee"),
    ModelFamily("openba", default_template="openba", lora_target_modules=("q", "kv", "qkv", "o", "fc_in", "fc_out"),
                loader="seq2seq", model_types=("openba",), description="OpenBA (encoder-decoder)"),
    # -- modern families ----------------------------------------------------------------------
    ModelFamily("qwen3", default_template="auto", lora_target_modules=LLAMA_LIKE, model_types=("qwen3", "qwen3_moe"),
                description="Qwen3"),
    ModelFamily("gemma", aliases=("gemma2",), default_template="auto", lora_target_modules=LLAMA_LIKE,
                model_types=("gemma", "gemma2"), description="Gemma and Gemma 2"),
    ModelFamily("gemma3", default_template="auto", lora_target_modules=LLAMA_LIKE,
                model_types=("gemma3", "gemma3_text"), description="Gemma 3"),
    ModelFamily("phi3", aliases=("phi-3", "phi4", "phi-4"), default_template="auto",
                lora_target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), model_types=("phi3",),
                description="Phi-3 / Phi-4 (fused qkv and gate_up projections)"),
)


@hookimpl
def kgc_register_model_families(register):
    for family in FAMILIES:
        register(family.name, family, summary=family.summary)
