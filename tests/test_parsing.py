"""kgcore.parsing.parse_answer: clean, fenced, prose-wrapped, damaged and hopeless model answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgcore.parsing import balanced, parse_answer


# -- examples -------------------------------------------------------------------------------

def test_clean_json_is_ok():
    parsed = parse_answer('{"人物": ["张三"], "地理位置": []}')
    assert parsed.ok and parsed.status == "ok" and parsed.error == ""
    assert parsed.value == {"人物": ["张三"], "地理位置": []}


def test_surrounding_whitespace_is_still_ok():
    parsed = parse_answer('\n  {"a": 1}  \n')
    assert (parsed.status, parsed.value) == ("ok", {"a": 1})


def test_dict_passes_through():
    parsed = parse_answer({"a": ["b"]})
    assert (parsed.status, parsed.value) == ("ok", {"a": ["b"]})


@pytest.mark.parametrize("text", [
    '```json\n{"人物": ["张三"]}\n```',
    '```\n{"人物": ["张三"]}\n```',
    '```JSON {"人物": ["张三"]}```',
    'Here is the answer:\n```json\n{"人物": ["张三"]}\n```\nHope this helps.',
    # a brace in the prose before the fence must not be taken for the answer
    'Format {type: [mentions]}:\n```json\n{"人物": ["张三"]}\n```',
])
def test_code_fences_are_stripped(text):
    parsed = parse_answer(text)
    assert parsed.status == "extracted"
    assert parsed.value == {"人物": ["张三"]}


def test_unclosed_fence_is_read_to_the_end():
    parsed = parse_answer('```json\n{"人物": ["张三"]}')
    assert parsed.value == {"人物": ["张三"]}


@pytest.mark.parametrize("text", [
    'The entities are {"人物": ["张三"]} as requested.',
    '答案：{"人物": ["张三"]}\n以上。',
    '{"人物": ["张三"]}\n\n{"人物": ["李四"]}',  # several objects: the first wins
])
def test_prose_around_json(text):
    parsed = parse_answer(text)
    assert parsed.status == "extracted"
    assert parsed.value == {"人物": ["张三"]}


def test_braces_inside_strings_do_not_end_the_object():
    text = 'Answer: {"a": "x}y{", "b": {"c": "}}"}} trailing } text'
    parsed = parse_answer(text)
    assert parsed.status == "extracted"
    assert parsed.value == {"a": "x}y{", "b": {"c": "}}"}}


def test_escaped_quotes_inside_strings():
    text = r'Answer: {"a": "say \"hi\" }", "b": "back\\"} done'
    parsed = parse_answer(text)
    assert parsed.status == "extracted"
    assert parsed.value == {"a": 'say "hi" }', "b": "back\\"}


def test_backticks_inside_strings_are_not_a_fence():
    # a ``` inside a JSON string cut the fenced body short (and, without a real fence,
    # was taken for one): the whole object must still come back
    value = {"a": "x```y", "b": ["```json"]}
    assert parse_answer("```json\n" + json.dumps(value) + "\n```").value == value
    assert parse_answer("Sure:\n" + json.dumps(value) + "\nDone").value == value
    # the text after an inner ``` holds a complete object of its own: still not a fence
    assert parse_answer(' {"```": {}} 0').value == {"```": {}}
    assert parse_answer('Answer: {"a": "```", "b": {"c": 1}} done').value == {"a": "```", "b": {"c": 1}}


@pytest.mark.parametrize("text, expected", [
    ('{"人物": ["张三", "李四"', {"人物": ["张三", "李四"]}),  # truncated generation
    ('{"人物": ["张三",],}', {"人物": ["张三"]}),  # trailing commas
    ("{'人物': ['张三']}", {"人物": ["张三"]}),  # Python quotes
    ('```json\n{"人物": ["张三"\n```', {"人物": ["张三"]}),  # truncated inside a fence
    ('prefix {"作者": [{"head": "A书", "tail": "李白"}', {"作者": [{"head": "A书", "tail": "李白"}]}),
])
def test_damaged_json_is_repaired(text, expected):
    parsed = parse_answer(text)
    assert parsed.status == "repaired"
    assert parsed.ok
    assert parsed.value == expected


@pytest.mark.parametrize("text", ["I cannot find any entities.", "", "   ", "作者: 李白", "NAN"])
def test_no_json_fails_with_error(text):
    parsed = parse_answer(text)
    assert not parsed.ok
    assert parsed.status == "failed" and parsed.value is None
    assert parsed.error  # a reason is given


@pytest.mark.parametrize("text", ["[1, 2]", '"just a string"', "42", "null", "true", '["a", "b"]'])
def test_non_object_json_fails(text):
    parsed = parse_answer(text)
    assert (parsed.status, parsed.value) == ("failed", None)
    assert parsed.error


def test_object_inside_a_list_is_extracted():
    parsed = parse_answer('[{"人物": ["张三"]}, {"人物": ["李四"]}]')
    assert parsed.ok and parsed.value == {"人物": ["张三"]}


@pytest.mark.parametrize("text", [None, 3, 1.5, ["a"], b'{"a": 1}'])
def test_non_text_fails(text):
    parsed = parse_answer(text)
    assert parsed.status == "failed"
    assert "not text" in parsed.error


@pytest.mark.parametrize("text", ["[" * 100_000, "{" * 3000, '{"a":' * 5000, "[" * 5000 + "{}",
                                  '{"a":' * 3000 + "1" + "}" * 3000],
                         ids=["brackets", "braces", "open-objects", "brackets-then-object", "valid-but-too-deep"])
def test_deeply_nested_garbage_does_not_crash(text):
    # json.loads raises RecursionError (not JSONDecodeError) here; a degenerate model answer
    # must be a parse failure or a recovered object, never an exception that stops the run
    parsed = parse_answer(text)
    assert parsed.status in {"failed", "extracted", "repaired"}
    assert parsed.ok == (parsed.value is not None)


def test_balanced_helper():
    text = 'x {"a": "}", "b": {"c": [1, "]"]}} y'
    start = text.index("{")
    assert balanced(text, start) == '{"a": "}", "b": {"c": [1, "]"]}}'
    assert balanced('{"a": [1, 2', 0) is None
    assert balanced('{"a": [1, 2}', 0) is None  # brackets that do not pair up
    assert balanced("[{'E': 'x]'}] tail", 0, quotes="'\"") == "[{'E': 'x]'}]"  # Python literals (ICL answers)


# -- properties -----------------------------------------------------------------------------

# plain text, plus the strings that confuse a naive extractor: fences, braces, quotes, escapes
_tricky = st.sampled_from(["```", "x```json\n", "{", "}", "}{", '"', '\\"', "\\", "NAN", ""])
_keys = st.text(max_size=8) | _tricky
_values = st.recursive(
    st.text(max_size=12) | _tricky,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=12,
)
_dicts = st.dictionaries(_keys, _values, max_size=5)
# prose without braces, quotes or backticks (those would be JSON-looking text themselves)
_prose = st.text(st.characters(blacklist_characters='{}[]"`\'\\', blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(_dicts, st.booleans())
def test_property_clean_json_roundtrips(d, ascii_only):
    parsed = parse_answer(json.dumps(d, ensure_ascii=ascii_only))
    assert parsed.status == "ok"
    assert parsed.value == d


@settings(max_examples=100, deadline=None)
@given(_dicts, st.sampled_from(["json", "JSON", ""]), _prose, _prose, st.booleans())
def test_property_fenced_json_roundtrips(d, lang, before, after, ascii_only):
    text = f"{before}\n```{lang}\n{json.dumps(d, ensure_ascii=ascii_only)}\n```\n{after}"
    parsed = parse_answer(text)
    assert parsed.status == "extracted"
    assert parsed.value == d


@settings(max_examples=100, deadline=None)
@given(_dicts, _prose, _prose, st.booleans())
def test_property_prose_wrapped_json_roundtrips(d, before, after, ascii_only):
    text = f"{before} {json.dumps(d, ensure_ascii=ascii_only)} {after}"
    parsed = parse_answer(text)
    assert parsed.ok
    assert parsed.value == d
    # with nothing but whitespace around it, it is plain clean JSON
    assert parsed.status == ("ok" if not (before.strip() or after.strip()) else "extracted")


def test_huge_garbage_fails_fast():
    import time

    start = time.perf_counter()
    parsed = parse_answer("{" * 200_000)
    assert not parsed.ok and "longer than" in parsed.error
    assert time.perf_counter() - start < 2
