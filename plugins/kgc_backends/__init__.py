"""Built-in inference backends; each imports its library only when constructed."""

from kgcore import hookimpl

BACKENDS = {
    "hf": ("kgc_backends.hf:HFBackend", "transformers causal LM (+PEFT adapters, 4/8-bit), batched"),
    "llamacpp": ("kgc_backends.llamacpp:LlamaCppBackend", "llama-cpp-python on a GGUF file, JSON-schema grammars"),
    "openai": ("kgc_backends.openai_compat:OpenAIBackend", "any OpenAI-compatible endpoint (chat or completion)"),
    "vllm": ("kgc_backends.vllm:VLLMBackend", "offline vLLM with LoRA, structured outputs, prefix caching"),
}


@hookimpl
def kgc_register_backends(register):
    for name, (target, summary) in BACKENDS.items():
        register(name, target, summary=summary)


@hookimpl
def kgc_default_backend():
    """llama.cpp: it runs the default model (SmolLM2-135M plus kgc's IE adapter) on any CPU."""
    return "llamacpp"
