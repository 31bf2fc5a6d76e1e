"""De-quantize a GGUF model into a transformers checkpoint (safetensors + tokenizer)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path


def dequantize_gguf(gguf_path: str | Path, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Load ``gguf_path`` with transformers (de-quantized) and save it as safetensors in ``out_dir``.

    Reuses ``out_dir`` when it already holds a converted model. What the libraries print on the way
    (DeepSpeed's accelerator warning, for one) goes to stderr: ``$(...)`` may capture stdout.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if (out_dir / "config.json").exists() and any(out_dir.glob("*.safetensors")):
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".partial")
    with contextlib.redirect_stdout(sys.stderr):
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     dtype=getattr(torch, dtype))
        # A GGUF-loaded model refuses to save while it still looks quantized.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    tmp.rename(out_dir)
    return out_dir
