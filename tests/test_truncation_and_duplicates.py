"""Answers that cannot be right are not hidden: an answer the token limit cut is reported as truncated
(counted, its raw text kept) instead of being repaired into items, repeated items are dropped (and
spotted while an answer streams in, for the decoder to end the list), and extracting with no labels is
an error before any model runs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kgc_backends.repeats import ListRepeats

import kgcore
from kgcore import Extractor, InputError
from kgcore.backend import Backend, Generation
from kgcore.extraction import distinct
from kgcore.parsing import read_answer
from kgcore.plugins import get_host

TORN = '{"person": ["Ada Lovelace", "Charles Babb'  # cut mid-string by the token limit


@dataclass(frozen=True)
class ScriptOptions:
    model: str = ""


class Script(Backend):
    """Answers the n-th request with the n-th ``(text, finish_reason)`` of ``answers``."""

    name = "script"
    Options = ScriptOptions
    answers: list[tuple[str, str]] = []

    def generate(self, requests, params):
        out = [Generation(text, 10, 5, finish) for text, finish in Script.answers[:len(requests)]]
        del Script.answers[:len(requests)]
        return out


def test_a_cut_answer_is_truncated_not_repaired():
    host = get_host()
    assert read_answer(TORN, "NER", {}, host).status == "repaired"  # without the backend's word: damage
    cut = read_answer(TORN, "NER", {}, host, truncated=True)
    assert (cut.ok, cut.status, cut.value) == (False, "truncated", None) and "--max-new-tokens" in cut.error
    whole = read_answer('{"person": []}', "NER", {}, host, truncated=True)  # closed just at the limit
    assert (whole.status, whole.value) == ("ok", {"person": []})


def test_extract_counts_truncated_answers_and_keeps_their_text():
    Script.answers = [(TORN, "length"), ('{"person": ["Ada", "Ada", "Bob"]}', "stop")]
    with Extractor("NER", labels=["person"], backend=Script(ScriptOptions())) as extract:
        cut, fine = list(extract.extract(["Ada Lovelace met Charles Babbage.", "Ada met Bob. Ada left."]))
    assert (cut.result, cut.triples, cut.parse_failures, cut.truncated, cut.raw) == ({}, [], 1, 1, [TORN])
    assert cut.as_dict()["truncated"] == 1
    assert fine.result == {"person": ["Ada", "Bob"]} and (fine.parse_failures, fine.truncated) == (0, 0)
    assert fine.triples == [("Ada", "type", "person"), ("Bob", "type", "person")]


def test_predict_marks_cut_answers_and_evaluate_counts_them(tmp_path):
    sample = tmp_path / "sample.json"
    sample.write_text("".join(json.dumps({"text": text, "entity": [{"entity": "Ada", "entity_type": "person"}]})
                              + "\n" for text in ("Ada wrote.", "Ada read.")), encoding="utf-8")
    records = tmp_path / "test.json"
    schema = tmp_path / "schema.json"
    schema.write_text('["person"]', encoding="utf-8")
    kgcore.convert(sample, records, task="NER", schema=schema,
                   options=kgcore.ConvertOptions(split="test", language="en"), progress=False)
    Script.answers = [(TORN, "length"), ('{"person": ["Ada"]}', "length")]
    kgcore.predict(records, tmp_path / "pred.json", Script(ScriptOptions()), progress=False)
    lines = [json.loads(line) for line in (tmp_path / "pred.json").read_text(encoding="utf-8").splitlines()]
    assert [line.get("truncated") for line in lines] == [True, True] and lines[0]["output"] == TORN
    report = kgcore.evaluate(tmp_path / "pred.json", progress=False)
    assert (report["parse_failures"], report["truncated"], report["repaired"]) == (1, 1, 0)
    assert report["failures"][0]["output"] == TORN and "token limit" in report["failures"][0]["error"]
    assert report["metrics"]["entity"]["tp"] == 1  # the whole answer still counts
    assert "(1 cut by the token limit)" in kgcore.evaluation.format_report(report)


def test_distinct_drops_repeats_at_any_depth_and_keeps_order():
    event = {"trigger": "attacked", "arguments": {"attacker": "Rebels"}}
    value = {"attack": [event, dict(event), {"trigger": "attack", "arguments": {}}, event],
             "person": ["b", "a", "b"], "n": 3}
    assert distinct(value) == {"attack": [event, {"trigger": "attack", "arguments": {}}], "person": ["b", "a"], "n": 3}
    assert distinct([[1, 1], [1, 2], [1]]) == [[1], [1, 2]]  # inner lists first, then the outer one


@pytest.mark.parametrize("labels", ["", " , "])
def test_extract_without_labels_is_an_error_before_a_model_runs(labels):
    with pytest.raises(InputError, match="no labels to extract"):
        Extractor("NER", labels=labels.split(","), backend=Script(ScriptOptions()))
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "extract", "-t", "NER", "-l", labels,
                           "-m", "/nonexistent.gguf", "Ada met Bob."], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert "no labels to extract" in done.stderr and "nonexistent" not in done.stderr


def _first_repeat_cut(text: str, chunk: int) -> str | None:
    """``text`` fed to :class:`ListRepeats` ``chunk`` bytes at a time; the cut answer with ``]`` if one repeats."""
    data, repeats = text.encode(), ListRepeats()
    for start in range(0, len(data), chunk):
        end = repeats.feed(data[start:start + chunk])
        if end is not None:
            return (data[:end] + b"]").decode()
    return None


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=4),
                       st.lists(st.text(alphabet='ab", ]\\[{}中', max_size=3), max_size=5), max_size=4),
       st.integers(1, 7))
def test_the_first_repeated_list_item_is_spotted_wherever_the_bytes_split(answer, chunk):
    """The cut keeps every key before the first list with a repeat, and that list up to the item before
    the repeat, byte for byte as the answer wrote them; an answer without repeats is never cut."""
    text = json.dumps(answer, ensure_ascii=False)
    expected = None
    for k, (key, items) in enumerate(answer.items()):
        first = next((j for j, item in enumerate(items) if item in items[:j]), None)
        if first is not None:
            expected = json.dumps({**dict(list(answer.items())[:k]), key: items[:first]}, ensure_ascii=False)[:-1]
            break
    assert _first_repeat_cut(text, chunk) == expected


def test_repeats_are_spotted_in_nested_lists_and_among_objects():
    events = '{"attack": [{"trigger": "hit", "arguments": {"target": ["base", "base"]}}]}'
    assert _first_repeat_cut(events, 3) == '{"attack": [{"trigger": "hit", "arguments": {"target": ["base"]'
    same = '{"attack": [{"trigger": "hit", "arguments": {}}, {"trigger": "hit", "arguments": {}}], "x": []}'
    assert _first_repeat_cut(same, 5) == '{"attack": [{"trigger": "hit", "arguments": {}}]'
    assert _first_repeat_cut('{"a": ["x"], "b": ["x"], "c": [["x"], ["y"]]}', 1) is None  # other lists


def test_reading_goes_on_past_a_repeat_the_answer_keeps():
    """A grammar may refuse to end a list (a triple ``[head, relation, tail]`` needs three items): the
    answer keeps the repeat, and the next one is still spotted."""
    repeats = ListRepeats()
    assert repeats.feed(b'[["Ada", "knows", "Ada"], ') == 16  # after "knows"
    assert repeats.feed(b'["Bob", "knows", "Cy"], ["Bob", "knows", "Cy"]]') == 48
