"""The LoRA merged into its base model once (llamacpp ``-O merge=q8_0`` or ``f16``) against llama.cpp
applying it at run time (``-O merge=off``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from kgcore.backend import BackendError, load_backend  # noqa: E402
from kgc_backends.default_model import base_gguf, lora_gguf  # noqa: E402
from kgc_backends.lora_merge import merged_gguf  # noqa: E402

PROMPT = ("<|im_start|>user\nList the people and the places: Angela Merkel met Emmanuel Macron in Paris.<|im_end|>\n"
          "<|im_start|>assistant\n{\"person\": [\"")


def last_logits(options: dict[str, str]) -> np.ndarray:
    backend = load_backend("llamacpp", {**options, "n_ctx": "512"})
    try:
        llm = backend.llm
        llm.eval(llm.tokenize(PROMPT.encode(), special=True))
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
    finally:
        backend.close()


def test_merged_model_computes_what_the_lora_at_run_time_computes(tmp_path, monkeypatch):
    monkeypatch.setenv("KGC_CACHE", str(tmp_path))  # merged now, by this code
    at_run_time = last_logits({})
    without = last_logits({"lora": "none"})
    rms = lambda logits: float(np.sqrt(((logits - at_run_time) ** 2).mean()))  # noqa: E731
    assert rms(without) > 5  # the adapter changes the model a lot: the check below can fail
    for merge in ("q8_0", "f16"):
        merged = last_logits({"merge": merge})
        assert rms(merged) < 0.1 * rms(without), merge
        assert merged.argmax() == at_run_time.argmax()


def test_a_merge_is_made_once_and_keyed_by_its_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("KGC_CACHE", str(tmp_path))
    first = merged_gguf(base_gguf(), lora_gguf())
    stamp = first.stat().st_mtime_ns
    assert merged_gguf(base_gguf(), lora_gguf()) == first and first.stat().st_mtime_ns == stamp
    half = merged_gguf(base_gguf(), lora_gguf(), scale=0.5)
    assert half != first and half.read_bytes() != first.read_bytes()
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == sorted([first.name, half.name])  # no partials
    reader = gguf.GGUFReader(first)
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"


def _lora(path, tensors: dict[str, np.ndarray], alpha: float | None = 32.0):
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_string("general.type", "adapter")
    if alpha is not None:
        writer.add_float32("adapter.lora.alpha", alpha)
    for name, value in tensors.items():
        writer.add_tensor(name, value.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("case, message", [
    ("other model", "adapts weights that .* does not have .*blk.99.attn_q.weight.*another model"),
    ("wrong shape", r"does not fit blk.0.attn_q.weight"),
    ("not a LoRA", "is not a GGUF LoRA adapter"),
])
def test_a_lora_that_does_not_fit_is_a_clear_error(tmp_path, monkeypatch, case, message):
    monkeypatch.setenv("KGC_CACHE", str(tmp_path / "cache"))
    a, b = np.zeros((8, 576)), np.zeros((100, 8))  # numpy order: A is rank x in, B is out x rank
    prefix = "blk.99" if case == "other model" else "blk.0"
    lora = _lora(tmp_path / "lora.gguf", {f"{prefix}.attn_q.weight.lora_a": a, f"{prefix}.attn_q.weight.lora_b": b},
                 alpha=None if case == "not a LoRA" else 16.0)
    with pytest.raises(BackendError, match=message) as caught:
        load_backend("llamacpp", {"model": str(base_gguf()), "lora": str(lora), "merge": "q8_0", "n_ctx": "512"})
    assert str(lora) in str(caught.value)
    assert not list((tmp_path / "cache" / "merged").iterdir())  # nothing half-written is left


def test_an_unknown_merge_type_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KGC_CACHE", str(tmp_path))
    with pytest.raises(BackendError, match="merge='q4'.*auto, off, q8_0 or f16"):
        load_backend("llamacpp", {"merge": "q4", "n_ctx": "512"})
