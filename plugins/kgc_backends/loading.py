"""Loading transformers models, shared by the ``hf`` backend and training: bitsandbytes quantization
and PEFT adapters (which ones fold into the weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kgcore import InputError

#: PEFT types whose adapters ``merge_and_unload`` folds into the weights; prompt-learning ones
#: (P-tuning, prefix tuning, ...) add virtual tokens instead and stay attached.
MERGEABLE_PEFT_TYPES = ("LORA", "ADALORA", "LOHA", "LOKR", "IA3")


def peft_type(adapter_dir: str | Path) -> str:
    """The ``peft_type`` of a PEFT adapter folder; an error naming the folder if it is none."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise InputError(f"'{adapter_dir}' is not a PEFT adapter folder (no adapter_config.json)")
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("peft_type", "LORA")).upper()
    except json.JSONDecodeError as exc:
        raise InputError(f"adapter_config.json is not valid JSON: {exc.msg}", path=str(path)) from None


def is_mergeable(adapter_dir: str | Path) -> bool:
    return peft_type(adapter_dir) in MERGEABLE_PEFT_TYPES


def bitsandbytes_config(transformers: Any, torch: Any, bits: int, quant_type: str = "nf4",
                        double_quant: bool = True, compute_dtype: str = "float32") -> Any:
    """A ``BitsAndBytesConfig`` loading weights in 4 or 8 bits (``quant_type``, ``double_quant`` and the
    4-bit matmuls' ``compute_dtype`` apply to 4 bits)."""
    if bits == 8:
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                           bnb_4bit_use_double_quant=double_quant,
                                           bnb_4bit_compute_dtype=getattr(torch, compute_dtype))
