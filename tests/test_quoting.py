"""Answers that quote the text: with ``quote`` on (the default), every string of a constrained answer is a
span of the input (or a task's own value such as EE's ``NAN``), and its character offsets point at it."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import kgcore
from kgcore import Extractor
from kgcore.backend import GenerationParams
from kgcore.prediction import RecordRequests
from kgcore.prompt import LONGEST_QUOTE, RequestBuilder, quotes, quoting

WORDS = ["Ada", "Lovelace", "Kabul", "Paris", "Siemens", "Obama", "rebels", "attacked", "visited", "the", "base",
         "in", "met", "factory", "Monday", "United", "Nations", "John", "Smith", "London", "bank", "said", "and"]
PUNCT = [".", ",", " -", "'s", " (", ")"]
sentences = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(["", "", "", *PUNCT])), min_size=3,
                     max_size=14).map(lambda parts: " ".join(w + p for w, p in parts).replace("( ", "(") + ".")


def strings(value):
    """Every string in an answer value, at any depth (not the keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_every_quotable_string_is_a_span_of_the_text(text):
    allowed = quotes(text)
    assert len(allowed) == len(set(allowed))
    for span in allowed:
        assert span and span in text and span == span.strip()
        assert '"' not in span and "\\" not in span and all(" " <= c != "\x7f" and ord(c) <= 0xFFFF for c in span)


def test_quotable_spans_start_and_end_at_words_and_marks():
    allowed = quotes("Rebels attacked the base in Kabul.")
    assert {"Rebels", "the base", "Kabul", "Kabul.", "Rebels attacked the base in Kabul."} <= set(allowed)
    assert not {"ebels", "Rebels ", "base in Ka", "abul"} & set(allowed)
    assert len(allowed) == 28  # 7 pieces: 7 * 8 / 2 spans
    assert {"张三", "北京", "张三在北京工作。"} <= set(quotes("张三在北京工作。"))
    assert len(max(quotes(" ".join(["w"] * 40)), key=len).split()) == LONGEST_QUOTE  # pieces at most


def test_quoting_holds_every_free_string_and_leaves_labels_and_shapes():
    task = kgcore.load_task("EE")
    items = task.items_from_schema([{"event_type": "attack", "trigger": True, "arguments": ["attacker", "place"]}])
    free = task.answer_schema(items)
    held = quoting(free, ["Rebels", "Kabul", "NAN"])
    assert list(held["properties"]) == list(free["properties"])  # the labels are keys, untouched
    event = {"trigger": "Rebels", "arguments": {"attacker": "Rebels", "place": "NAN"}}
    jsonschema.validate({"attack": [event]}, held)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"attack": [{**event, "trigger": "Franklin"}]}, held)
    jsonschema.validate({"attack": [{**event, "trigger": "Franklin"}]}, free)


@pytest.mark.parametrize("quote", [True, False])
def test_requests_quote_the_records_input_unless_told_not_to(quote, tmp_path):
    record = {"task": "NER", "instruction": json.dumps({"instruction": "Extract.", "schema": ["person", "location"],
                                                         "input": "Ada Lovelace visited Paris."})}
    schema = RecordRequests(quote=quote)(record).json_schema
    items = schema["properties"]["person"]["items"]
    if quote:
        assert items["enum"] == quotes("Ada Lovelace visited Paris.") and "Ada Lovelace" in items["enum"]
    else:
        assert items["type"] == "string" and "enum" not in items
    assert schema["properties"]["person"]["maxItems"] == 4  # no more items than the text has words
    builder = RequestBuilder(constrained=True, quote=quote)
    task = kgcore.load_task("NER")
    assert builder("x", task, task.items_from_schema(["person"])).json_schema["properties"]["person"]["items"] == {
        "type": "string"}  # no text given: nothing to quote


@pytest.fixture(scope="module")
def default_model(smollm2_gguf):
    backend = kgcore.load_backend("llamacpp", {"n_ctx": "2048"})  # SmolLM2 + kgc's IE adapter
    yield backend
    backend.close()


def _check_quoted(text: str, extraction) -> None:
    assert extraction.parse_failures == extraction.truncated, extraction.raw  # only the token limit cuts one
    found = [s for s in strings(extraction.result) if s != "NAN"]
    assert all(s in text for s in found), (text, extraction.result)
    for span in extraction.spans:
        assert text[span.start:span.end] == span.text
    assert {s for s in found} <= {span.text for span in extraction.spans}  # every string has its offsets


# the model's tests: a fixed set of random texts (derandomize), no shrinking (each example is a model call)
MODEL_RUNS = dict(deadline=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=5, **MODEL_RUNS)
@given(text=sentences)
def test_the_default_model_only_quotes_the_text(default_model, text):
    with Extractor("NER", labels=["person", "location", "organization"], backend=default_model,
                   params=GenerationParams(max_new_tokens=96)) as extract:
        _check_quoted(text, extract(text))


@settings(max_examples=3, **MODEL_RUNS)
@given(text=sentences)
def test_events_quote_triggers_and_arguments(default_model, text):
    with Extractor("EE", labels=["attack:attacker/target/place"], backend=default_model,
                   params=GenerationParams(max_new_tokens=160)) as extract:
        _check_quoted(text, extract(text))


@pytest.mark.parametrize("text", [
    "AL-AIN , United Arab Emirates 1996-12-06",  # unquoted: 'Al-Ain'
    "But China saw their luck desert them in the second match of the group , crashing to a surprise 2-0 defeat "
    "to newcomers Uzbekistan .",  # unquoted: 'Uher'
])
def test_quoting_stops_names_the_model_would_make_up(default_model, text):
    """CoNLL-2003 test sentences where the default model, unquoted, answers a name the text does not hold."""
    answers = {}
    for quote in (False, True):
        with Extractor("NER", labels=["person", "location", "organization", "miscellaneous"], backend=default_model,
                       params=GenerationParams(max_new_tokens=128, quote=quote)) as extract:
            answers[quote] = extract(text)
    assert [s for s in strings(answers[False].result) if s not in text]
    _check_quoted(text, answers[True])
    assert answers[True].result["location"]  # still an answer, not an empty one
