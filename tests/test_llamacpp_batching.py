"""Batched greedy decoding on llama.cpp (kgc_backends.llamacpp_batch), with the real default model:
answers against the one-request-at-a-time path, the shared prefix, continuous batching in a small KV
cache, token limits, stop strings, requests without a schema, and lists that end at a repeated item."""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import DATASETS
from kgc_backends.repeats import ListRepeats

import kgcore
from kgcore.backend import BackendError, GenerationParams, Request, load_backend

LABELS = ["person", "location", "organization", "miscellaneous"]
PERSONS = {"type": "object", "properties": {"person": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
           "required": ["person"], "additionalProperties": False}


@pytest.fixture(scope="module")
def batched(smollm2_gguf):
    backend = load_backend("llamacpp", {"n_ctx": "2048"})
    yield backend
    backend.close()


def _ask(text: str, schema=PERSONS) -> Request:
    return Request(messages=({"role": "user", "content": f"List the people in: {text}\nAnswer in JSON."},),
                   json_schema=schema)


def _entity_f1(extractions, golds) -> float:
    tp = pred = gold = 0
    for extraction, entities in zip(extractions, golds):
        p = {(label, name) for label, names in extraction.result.items() for name in names}
        g = {(e["entity_type"], e["entity"]) for e in entities}
        tp, pred, gold = tp + len(p & g), pred + len(p), gold + len(g)
    return 200 * tp / (pred + gold)


def test_batched_answers_match_one_at_a_time_answers(batched):
    """24 CoNLL-2003 sentences through both paths. Batched arithmetic (other matrix kernels, the prefix
    evaluated apart from the rest of the prompt) may flip a near-tie token; few answers may differ,
    and F1 may not drop."""
    rows = [json.loads(line) for line in (DATASETS / "conll2003" / "test.json").read_text(
        encoding="utf-8").splitlines()[:24]]
    texts, golds = [r["text"] for r in rows], [r["entity"] for r in rows]
    sequential = load_backend("llamacpp", {"n_ctx": "2048", "parallel": "0"})
    try:
        with kgcore.Extractor("NER", labels=LABELS, backend=sequential, language="en") as extract:
            one_at_a_time = list(extract.extract(texts))
    finally:
        sequential.close()
    with kgcore.Extractor("NER", labels=LABELS, backend=batched, language="en", batch_size=8) as extract:
        together = list(extract.extract(texts))
    differ = [(a.raw, b.raw) for a, b in zip(one_at_a_time, together) if a.result != b.result]
    print(f"{len(differ)} of {len(texts)} answers differ:", *differ, sep="\n")
    assert len(differ) <= len(texts) // 4
    assert sum(e.parse_failures for e in together) == 0
    assert _entity_f1(together, golds) >= _entity_f1(one_at_a_time, golds) - 3.0
    assert _entity_f1(together, golds) > 40  # the adapter finds entities


def test_the_shared_prompt_prefix_is_evaluated_once_across_calls(batched):
    params = GenerationParams(max_new_tokens=24)
    batched.generate([_ask("Ada Lovelace met Charles Babbage in London."), _ask("Bob ran.")], params)
    decoder = batched._decoder
    shared = list(decoder.prefix)
    prefix = len(shared)
    assert prefix > 10  # the chat template and the instruction before the text
    before = decoder.evaluated
    [answer] = batched.generate([_ask("Marie Curie worked in Paris.")], params)
    second = decoder.evaluated - before
    own = answer.prompt_tokens - prefix
    assert decoder.prefix[:prefix] == shared  # kept: only the rest of the prompt and the answer were evaluated
    assert second <= own + answer.completion_tokens
    assert json.loads(answer.text)["person"]


def test_more_requests_than_slots_and_cells_all_get_their_answers(smollm2_gguf):
    """Four slots, a KV cache too small to hold all nine requests at once: requests wait for cells, each
    answer is valid and belongs to its own prompt."""
    names = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Marie Curie", "Niels Bohr", "Rosalind Franklin",
             "Carl Gauss", "Emmy Noether", "Srinivasa Ramanujan"]
    backend = load_backend("llamacpp", {"n_ctx": "512", "parallel": "4"})
    try:
        answers = backend.generate([_ask(f"Yesterday {name} gave a talk.") for name in names],
                                   GenerationParams(max_new_tokens=48))
    finally:
        backend.close()
    for name, answer in zip(names, answers):
        jsonschema.validate(json.loads(answer.text), PERSONS)
        assert answer.finish_reason == "stop"
    found = sum(name in json.loads(answer.text)["person"] for name, answer in zip(names, answers))
    assert found >= 6


def test_token_limit_stop_strings_and_free_requests(batched):
    long = _ask("Ada, Bob, Carl, Dora, Emil, Fred, Gina, Hugo, Ida, Jan, Kurt and Lena met.")
    free = Request(messages=({"role": "user", "content": "Say hello in one word."},))
    cut, unconstrained = batched.generate([long, free], GenerationParams(max_new_tokens=6))
    assert cut.finish_reason == "length" and cut.completion_tokens == 6
    assert cut.text.startswith('{"person": [')
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.text)
    assert unconstrained.completion_tokens <= 6 and unconstrained.text.strip()
    [stopped] = batched.generate([long], GenerationParams(max_new_tokens=64, stop=('",',)))
    assert stopped.finish_reason == "stop" and '",' not in stopped.text
    assert stopped.text.startswith('{"person": ["')


def test_labels_llama_cpp_grammars_cannot_hold_work_in_greedy_answers(batched):
    # llguidance escapes them as JSON does. llama-cpp-python's GBNF converter, which sampled answers use, breaks
    # on them: a quote (llama.cpp then segfaults), a backslash (read as an escape), a control character
    # (llama.cpp aborts while sampling), a character beyond U+FFFF (dropped); there they are a clear error.
    odd = ['say "hi"', "a\\b", "a\x1db", "x\x00y", "fun \U0001F600"]
    with kgcore.Extractor("NER", labels=[*odd, "x²", "état", "人物"], backend=batched) as extract:
        assert set(extract("Ada met Bob.").result) == {*odd, "x²", "état", "人物"}
    sampled = GenerationParams(temperature=0.7)
    for label in odd:
        with kgcore.Extractor("RE", labels=[label], backend=batched, params=sampled) as extract:
            with pytest.raises(kgcore.InputError, match="cannot constrain answers to the label"):
                extract("Ada met Bob.")


def test_a_prompt_longer_than_the_context_is_a_clear_error(batched):
    with pytest.raises(BackendError, match="exceeds n_ctx=2048"):
        batched.generate([_ask("word " * 3000)], GenerationParams(max_new_tokens=8))


def test_a_repeated_list_item_ends_the_list(smollm2_gguf):
    """Without the adapter the base model loops (``["中国", "中国", ...]``). With ``end_repeats`` (the
    default) the first repeat ends its list: an answer is the unguarded answer up to the item before its
    first repeat, then ``]``, and goes on without repeats; answers that never repeat are unchanged. One
    sequence at a time, so both runs do the same arithmetic."""
    rows = [json.loads(line) for line in (DATASETS / "msra_ner" / "test.json").read_text(
        encoding="utf-8").splitlines()[:8]]
    labels, params = ["人物", "地理位置", "组织机构"], GenerationParams(max_new_tokens=96)
    raw = {}
    for end_repeats in (False, True):
        backend = load_backend("llamacpp", {"lora": "none", "parallel": "1", "n_ctx": "1024",
                                            "end_repeats": str(end_repeats)})
        try:
            with kgcore.Extractor("NER", labels=labels, backend=backend, language="zh", params=params) as extract:
                raw[end_repeats] = [answer for e in extract.extract([r["text"] for r in rows]) for answer in e.raw]
        finally:
            backend.close()
    looped = 0
    for free, guarded in zip(raw[False], raw[True]):
        cut = ListRepeats().feed(free.encode())
        if cut is None:
            assert guarded == free
            continue
        looped += 1
        assert guarded.encode().startswith(free.encode()[:cut] + b"]")
        assert ListRepeats().feed(guarded.encode()) is None
    assert looped >= 3

    def closed(answers):
        return sum(_parses(a) for a in answers)

    print(f"answers that close: {closed(raw[False])} -> {closed(raw[True])} of {len(raw[True])}")
    assert closed(raw[True]) >= closed(raw[False]) + 2  # loops that hit the token limit now end


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
