"""The hf backend on real models: SmolLM2-135M-Instruct (de-quantized from the shipped GGUF) and a tiny
random Llama built here, with PEFT LoRA adapters and bitsandbytes 4-bit loading. No mocks."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
import subprocess
import sys
from pathlib import Path

import pytest

from kgcore.backend import GenerationParams, Request
from kgcore.errors import InputError
from kgcore.backend import load_backend

pytestmark = pytest.mark.slow

PROMPTS = ["What is the capital of France?", "Say hi.", "Name three colours, please.",
           "Write one short sentence about the sea and the wind over it."]


# One torch thread: on 2 busy cores two threads fight over them (SmolLM2 was 3x slower that way).
THREADS = "1"


def chat(text: str) -> Request:
    return Request(({"role": "user", "content": text},))


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smol(smollm2_hf):
    backend = load_backend("hf", {"model": str(smollm2_hf), "num_threads": THREADS})
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def singles(smol):
    """Greedy answers generated one request at a time."""
    params = GenerationParams(max_new_tokens=12)
    return [smol.generate([chat(p)], params)[0] for p in PROMPTS]


def test_greedy_is_deterministic_and_counts_tokens(smol, singles):
    again = smol.generate([chat(p) for p in PROMPTS[:2]], GenerationParams(max_new_tokens=12))
    assert [g.text for g in again] == [g.text for g in singles[:2]]
    assert "Paris" in singles[0].text  # the real model, really answering
    for g in singles:
        assert g.text.strip()
        assert g.prompt_tokens > 10 and 0 < g.completion_tokens <= 12
        assert g.finish_reason in {"stop", "length"}
    assert singles[0].finish_reason == "stop" and singles[0].completion_tokens < 12
    assert singles[3].finish_reason == "length" and singles[3].completion_tokens == 12


def test_batched_left_padded_equals_one_by_one(smol, singles):
    assert len({g.prompt_tokens for g in singles}) > 1  # different lengths: the batch really pads
    batched = smol.generate([chat(p) for p in PROMPTS], GenerationParams(max_new_tokens=12))
    assert [g.text for g in batched] == [g.text for g in singles]
    assert [(g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in batched] == [
        (g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in singles]


def test_sampling_is_seeded(smol):
    params = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=7)
    first = smol.generate([chat(PROMPTS[3])], params)[0]
    assert first.text.strip() and first.completion_tokens > 0
    assert smol.generate([chat(PROMPTS[3])], params)[0].text == first.text


def test_sub_batches_keep_request_order(smol, singles):
    options = smol.options
    # Two rows at most, and at most 100 tokens (prompt + new) per sub-batch: 3-4 sub-batches.
    smol.options = dataclasses.replace(options, batch_size=2, max_batch_tokens=100)
    try:
        lengths = [g.prompt_tokens for g in singles]
        assert len(smol._chunks(sorted(range(4), key=lambda i: lengths[i]), lengths, 12)) >= 3
        out = smol.generate([chat(p) for p in reversed(PROMPTS)], GenerationParams(max_new_tokens=12))
    finally:
        smol.options = options
    assert [g.text for g in out] == [g.text for g in reversed(singles)]


def test_stop_strings_trim_the_text(smol, singles):
    full = singles[3].text  # 12 tokens of prose
    words = full.split()
    stop = words[len(words) // 2]
    out = smol.generate([chat(PROMPTS[3])], GenerationParams(max_new_tokens=12, stop=(stop,)))[0]
    assert out.text == full[:full.index(stop)]
    assert out.finish_reason == "stop"
    assert 0 < out.completion_tokens < singles[3].completion_tokens


def test_prompt_text_is_tokenized_as_given(smol, singles):
    rendered = smol.tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[0]}],
                                                  add_generation_prompt=True, tokenize=False)
    out = smol.generate([Request(({"role": "user", "content": "ignored"},), prompt=rendered)],
                        GenerationParams(max_new_tokens=12))[0]
    assert out.text == singles[0].text and out.prompt_tokens == singles[0].prompt_tokens
    # A different prompt text gives a different prompt.
    other = smol.generate([Request(({"role": "user", "content": PROMPTS[0]},), prompt="Paris is")],
                          GenerationParams(max_new_tokens=4))[0]
    assert other.prompt_tokens == len(smol.tokenizer("Paris is")["input_ids"])


def test_json_schema_is_enforced(smol):
    import jsonschema

    assert smol.supports_json_schema, "llguidance is not installed: pip install llguidance"
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]},
                                               "city": {"type": "string", "maxLength": 12}},
              "required": ["answer", "city"], "additionalProperties": False}
    request = Request(({"role": "user", "content": "Is Paris in France? Answer in JSON."},), json_schema=schema)
    out = smol.generate([request, chat(PROMPTS[1])], GenerationParams(max_new_tokens=24))
    value = json.loads(out[0].text)
    jsonschema.validate(value, schema)
    assert out[0].finish_reason == "stop"
    # The unconstrained neighbour in the same batch is left alone; --no-constrained turns it off.
    assert not out[1].text.lstrip().startswith("{")
    free = smol.generate([request], GenerationParams(max_new_tokens=16, constrained=False))[0]
    assert free.text != out[0].text


def _convert_conll(tmp_path: Path, datasets: Path, n: int) -> Path:
    sample = tmp_path / "conll.json"
    lines = (datasets / "conll2003" / "test.json").read_text(encoding="utf-8").splitlines()[:n]
    sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    converted = tmp_path / "test.json"
    subprocess.run([sys.executable, "-m", "kgcore.cli", "convert", "-i", str(sample), "-s",
                    str(datasets / "conll2003" / "schema.json"), "-t", "NER", "--language", "en", "--split", "test",
                    "-o", str(converted), "-q"], check=True, capture_output=True, text=True)
    return converted


def test_kgc_predict_and_evaluate_on_conll(smollm2_hf, datasets, tmp_path):
    """With kgc's IE adapter the model finds entities, so the report's counts can be checked against the
    answers themselves (zero-shot it answers empty lists, which any scorer scores alike)."""
    from kgc_backends.default_model import ADAPTER_DIR

    converted = _convert_conll(tmp_path, datasets, 6)
    records = [json.loads(line) for line in converted.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 6
    predictions = tmp_path / "pred.json"
    run = subprocess.run([sys.executable, "-m", "kgcore.cli", "predict", "--backend", "hf", "-m", str(smollm2_hf),
                          "-i", str(converted), "-o", str(predictions), "--max-new-tokens", "64", "-O",
                          f"num_threads={THREADS}", "-O", f"adapter={ADAPTER_DIR}", "-q"], check=False,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    answered = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in answered) == sorted(r["id"] for r in records)
    meta = json.loads(Path(f"{predictions}.meta.json").read_text(encoding="utf-8"))
    assert meta["backend"] == "hf" and meta["records"] == 6 and meta["prompt_tokens"] > 0
    assert meta["completion_tokens"] > 0 and sum(meta["finish_reasons"].values()) == 6
    assert meta["json_schema"].startswith("llguidance")

    report_path = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "kgcore.cli", "evaluate", str(predictions), "-o", str(report_path),
                          "-q"], check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["task"] == "NER" and report["records"] == 6 and report["outputs"] == 6
    assert report["parse_failures"] == 0
    # recount from the answers: (type, mention) pairs, predicted against gold, as multisets
    tp = pred = gold = 0
    for record in answered:
        found = Counter((t, m) for t, ms in json.loads(record["output"]).items() for m in ms)
        truth = Counter((e["entity_type"], e["entity"]) for e in json.loads(record["label"]))
        tp, pred, gold = tp + sum((found & truth).values()), pred + found.total(), gold + truth.total()
    entity = report["metrics"]["entity"]
    assert (entity["tp"], entity["pred"], entity["gold"]) == (tp, pred, gold)
    assert tp >= 3 and entity["F1"] == pytest.approx(200 * tp / (pred + gold), abs=0.01)


# -- a tiny random Llama with the SmolLM2 tokenizer, LoRA adapters ------------------------------

TINY_PROMPTS = ["Hello there", "The quick brown fox jumps", "1 2 3"]


@pytest.fixture(scope="module")
def tiny(smollm2_hf, tmp_path_factory):
    """``(model_dir, adapter_a, adapter_b, merged_dir)``: a random 2-layer Llama and two LoRA adapters."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_hf)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapters = []
    for name, seed in (("lora_a", 1), ("lora_b", 2)):
        torch.manual_seed(seed)
        fresh = LlamaForCausalLM.from_pretrained(base)
        # init_lora_weights=False: random A and B, so the adapter really changes the model.
        peft_model = get_peft_model(fresh, LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False, task_type="CAUSAL_LM"))
        peft_model.save_pretrained(root / name)
        adapters.append(root / name)
    merged = LlamaForCausalLM.from_pretrained(base)
    for path in adapters:
        merged = PeftModel.from_pretrained(merged, path).merge_and_unload()
    merged.save_pretrained(root / "merged")
    tokenizer.save_pretrained(root / "merged")
    return base, adapters[0], adapters[1], root / "merged"


def _texts(options: dict, prompts=TINY_PROMPTS, max_new_tokens: int = 8) -> list[str]:
    backend = load_backend("hf", {"num_threads": THREADS, **options})
    try:
        out = backend.generate([chat(p) for p in prompts], GenerationParams(max_new_tokens=max_new_tokens))
    finally:
        backend.close()
    assert all(g.prompt_tokens > 0 and g.completion_tokens > 0 for g in out)
    return [g.text for g in out]


def test_tiny_random_llama_generates(tiny):
    base = tiny[0]
    texts = _texts({"model": str(base)})
    assert any(t for t in texts)
    assert texts == _texts({"model": str(base), "batch_size": "1"})


def test_lora_adapters_load_merge_and_stack(tiny):
    base, lora_a, lora_b, merged = tiny
    plain = _texts({"model": str(base)})
    stacked = _texts({"model": str(base), "adapter": f"{lora_a},{lora_b}"})
    assert stacked != plain  # the adapters change the model
    assert stacked == _texts({"model": str(merged)})  # ... exactly as merging them with peft does
    # Kept unmerged and both active: the same model.
    assert stacked == _texts({"model": str(base), "adapter": f"{lora_a},{lora_b}", "merge_adapters": "false"})
    assert _texts({"model": str(base), "adapter": str(lora_a)}) != stacked


def test_adapter_errors_are_clear(tiny, tmp_path):
    from kgcore.backend import BackendError

    with pytest.raises(BackendError, match="not a PEFT adapter"):
        load_backend("hf", {"model": str(tiny[0]), "adapter": str(tmp_path)})
    with pytest.raises(BackendError, match="does not exist"):
        load_backend("hf", {"model": str(tmp_path / "missing")})


@pytest.mark.parametrize("bits", [4, 8])
def test_bitsandbytes_quantized_loading_generates(smollm2_hf, bits):
    import bitsandbytes  # noqa: F401  (installed by .ci/setup through kgcore[quant])
    import bitsandbytes as bnb

    layer = bnb.nn.Linear4bit if bits == 4 else bnb.nn.Linear8bitLt
    backend = load_backend("hf", {"model": str(smollm2_hf), f"load_in_{bits}bit": "true", "num_threads": THREADS})
    try:
        assert any(isinstance(m, layer) for m in backend.model.modules())
        out = backend.generate([chat(PROMPTS[0])], GenerationParams(max_new_tokens=8))[0]
    finally:
        backend.close()
    assert "Paris" in out.text and out.completion_tokens > 0


def test_backend_options_name_what_is_missing_or_unknown():
    with pytest.raises(InputError, match=r"backend 'hf' needs option\(s\) model \(-m MODEL\)"):
        load_backend("hf", {})
    with pytest.raises(InputError, match="unknown option.*colour.*valid: adapter"):
        load_backend("hf", {"model": "x", "colour": "red"})
    with pytest.raises(InputError, match="option 'batch_size' of backend 'hf' expects int, got 'many'"):
        load_backend("hf", {"model": "x", "batch_size": "many"})
