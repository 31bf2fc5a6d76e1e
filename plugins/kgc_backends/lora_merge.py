"""A GGUF LoRA adapter merged into its GGUF base model once, and cached (llamacpp ``-O merge=q8_0``).

llama.cpp applies a LoRA at run time as two extra small matrix products per weight, which costs
10–30 % of its speed; the merged model costs nothing extra. The merged weights are written as Q8_0
(or F16): Q4_1, the default model's type, is too coarse to hold the adapter's small changes
(re-quantized to Q4_1, the default model's CoNLL-2003 F1 fell from 79 to 15).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from kgcore.backend import BackendError

from .default_model import cache_root

#: Types a merged model can be written as (``-O merge=...``).
MERGE_TYPES = ("q8_0", "f16")
#: Bumped when the merge changes, so that older cached files are not reused.
_VERSION = 1


def merged_gguf(base: str | Path, lora: str | Path, scale: float = 1.0, qtype: str = "q8_0") -> Path:
    """The merged model of ``base`` and ``lora`` in the cache, merged now if it is not there yet.

    The cache key covers both files (path, size, modification time), the scale and the type.
    """
    base, lora = Path(base).resolve(), Path(lora).resolve()
    key = hashlib.sha256(repr((_VERSION, _stamp(base), _stamp(lora), float(scale), qtype)).encode()).hexdigest()[:16]
    out = cache_root() / "merged" / f"{base.stem}+{lora.stem}-{qtype}-{key}.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=out.stem, suffix=".partial", delete=False) as tmp:
            partial = Path(tmp.name)
        try:
            merge_lora(base, lora, partial, scale=scale, qtype=qtype)
            partial.chmod(0o644)
            os.replace(partial, out)  # atomic: another process merging the same pair writes the same bytes
        finally:
            partial.unlink(missing_ok=True)
    return out


def merge_lora(base: Path, lora: Path, out: Path, scale: float = 1.0, qtype: str = "q8_0") -> None:
    """Write ``base`` with ``W + scale * alpha / rank * B @ A`` for every weight the LoRA adapts."""
    import numpy as np
    from tqdm import tqdm

    try:
        from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
        from gguf.quants import dequantize, quantize
    except ImportError as exc:
        raise BackendError("llamacpp: merging a LoRA needs the gguf package: pip install 'kgcore[llamacpp]' "
                           "(or apply it at run time: -O merge=off)") from exc

    if qtype not in MERGE_TYPES:
        raise BackendError(f"llamacpp: merge={qtype!r}: expected one of {', '.join(MERGE_TYPES)} or off")
    base_reader, lora_reader = GGUFReader(base), GGUFReader(lora)
    if "adapter.lora.alpha" not in lora_reader.fields:
        raise BackendError(f"llamacpp: {lora} is not a GGUF LoRA adapter (no adapter.lora.alpha)")
    alpha = float(lora_reader.fields["adapter.lora.alpha"].contents())
    pairs: dict[str, dict[str, object]] = {}
    for tensor in lora_reader.tensors:
        name, _, part = tensor.name.rpartition(".")
        pairs.setdefault(name, {})[part] = tensor
    unknown = sorted(set(pairs) - {t.name for t in base_reader.tensors})
    if unknown:
        raise BackendError(f"llamacpp: the LoRA {lora} adapts weights that {base} does not have "
                           f"({', '.join(unknown[:3])}): it was trained for another model")

    writer = GGUFWriter(out, arch=base_reader.fields["general.architecture"].contents())
    for field in base_reader.fields.values():
        if field.name != "general.architecture" and not field.name.startswith("GGUF."):
            kind = field.types[0]
            writer.add_key_value(field.name, field.contents(), kind,
                                 sub_type=field.types[-1] if kind == GGUFValueType.ARRAY else None)
    target = GGMLQuantizationType.Q8_0 if qtype == "q8_0" else GGMLQuantizationType.F16
    tensors = []
    for tensor in tqdm(base_reader.tensors, desc=f"merging the LoRA into {base.name} (once)", unit=" tensors",
                       disable=None):
        data, kind = tensor.data, tensor.tensor_type
        if tensor.name in pairs:
            a, b = (dequantize(pairs[tensor.name][p].data, pairs[tensor.name][p].tensor_type).astype(np.float32)
                    for p in ("lora_a", "lora_b"))
            weight = dequantize(data, kind).astype(np.float32)
            if b.shape[1] != a.shape[0] or (b.shape[0], a.shape[1]) != weight.shape:
                raise BackendError(f"llamacpp: the LoRA {lora} does not fit {tensor.name} of {base} "
                                   f"(A {a.shape}, B {b.shape}, weight {weight.shape})")
            weight += (b @ a) * (scale * alpha / a.shape[0])
            data, kind = quantize(weight, target), target
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, kind)
        tensors.append(data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for data in tensors:
        writer.write_tensor_data(data)
    writer.close()


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns
