"""Property tests: split_by_num, negative_sample, the F1 scorer and converter determinism."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kgcore
from kgcore.sampling import negative_sample, split_by_num

# -- split_by_num ---------------------------------------------------------------------------

_items = st.lists(st.integers(), max_size=60)
_split = st.integers(min_value=1, max_value=12)


def reference_split(items: list, split_num: int) -> list[list]:
    """iepile-format.md §1.7, transcribed: n_full = max(len // s, 1) * s, leftover rule."""
    if not items:
        return [[]]
    if split_num == -1:
        return [list(items)]
    n_full = max(len(items) // split_num, 1) * split_num
    chunks = [list(items[i:i + split_num]) for i in range(0, n_full, split_num)]
    leftover = list(items[n_full:])
    if len(items) - n_full >= max(1, split_num // 2):
        chunks.append(leftover)
    else:
        chunks[-1].extend(leftover)
    return chunks


@settings(max_examples=200, deadline=None)
@given(_items, _split)
def test_split_concatenates_in_order(items, split_num):
    chunks = split_by_num(items, split_num)
    assert [x for chunk in chunks for x in chunk] == items


@settings(max_examples=200, deadline=None)
@given(_items, _split)
def test_split_chunk_sizes(items, split_num):
    chunks = split_by_num(items, split_num)
    assert all(len(c) == split_num for c in chunks[:-1])
    # the leftover joins the last chunk only while it is under half a chunk
    assert len(chunks[-1]) < split_num + math.ceil(split_num / 2)
    if len(chunks) > 1:
        assert len(chunks[-1]) >= max(1, split_num // 2)
    if items:
        assert all(chunks)  # no empty chunk unless the input is empty
    assert len(chunks) == max(1, len(items) // split_num + (len(items) % split_num >= max(1, split_num // 2)))


@settings(max_examples=200, deadline=None)
@given(_items, _split)
def test_split_matches_reference_rule(items, split_num):
    assert split_by_num(items, split_num) == reference_split(items, split_num)


@given(_items)
def test_split_minus_one_keeps_one_chunk(items):
    assert split_by_num(items, -1) == [items]


@pytest.mark.parametrize("split_num", [-1, 1, 4, 6])
def test_split_empty_gives_one_empty_chunk(split_num):
    assert split_by_num([], split_num) == [[]]


def test_split_examples():
    # 49 RE relations, split 4: 12 full chunks, leftover 1 < 4 // 2 joins the last (11 x 4 + 1 x 5)
    chunks = split_by_num(list(range(49)), 4)
    assert [len(c) for c in chunks] == [4] * 11 + [5]
    # 65 event types, split 4: leftover 1 -> 15 x 4 + 1 x 5 (16 records per text)
    assert [len(c) for c in split_by_num(list(range(65)), 4)] == [4] * 15 + [5]
    # leftover 2 == 4 // 2 becomes its own chunk
    assert [len(c) for c in split_by_num(list(range(10)), 4)] == [4, 4, 2]
    # split 1: every item alone
    assert split_by_num([1, 2, 3], 1) == [[1], [2], [3]]


# -- negative_sample ------------------------------------------------------------------------

_labels = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=3), unique=True, max_size=20)


@st.composite
def _sampling_case(draw):
    labels = draw(_labels)
    inside = draw(st.lists(st.sampled_from(labels), unique=True)) if labels else []
    outside = draw(st.lists(st.text(alphabet="xyz", min_size=1, max_size=2), max_size=2))  # not in the schema
    positives = draw(st.permutations(inside + outside))
    ratio = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]) | st.floats(0, 1))
    seed = draw(st.integers(0, 2 ** 32))
    return labels, positives, ratio, seed


def _is_subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@settings(max_examples=120, deadline=None)
@given(_sampling_case())
def test_negative_sample_properties(case):
    labels, positives, ratio, seed = case
    result = negative_sample(labels, positives, ratio, random.Random(seed))
    assert set(result) <= set(labels)
    assert len(result) == len(set(result))
    assert {p for p in positives if p in labels} <= set(result)
    assert _is_subsequence(result, labels)  # order follows the schema
    # same seed, same answer
    assert negative_sample(labels, positives, ratio, random.Random(seed)) == result
    in_schema = [l for l in labels if l in set(positives)]
    if ratio > 0 and not in_schema and labels:
        assert len(result) >= 1  # a text without positives still gets one negative


@settings(max_examples=120, deadline=None)
@given(_sampling_case())
def test_negative_sample_ratio_one_keeps_all(case):
    labels, positives, _, seed = case
    assert negative_sample(labels, positives, 1.0, random.Random(seed)) == labels


@settings(max_examples=120, deadline=None)
@given(_sampling_case())
def test_negative_sample_ratio_zero_keeps_positives(case):
    labels, positives, _, seed = case
    assert negative_sample(labels, positives, 0.0, random.Random(seed)) == [l for l in labels if l in positives]


# -- the F1 scorer --------------------------------------------------------------------------

def _scorer(**kwargs):
    return kgcore.get_host().registry.load("scorer", "f1")(**kwargs)


_tuples = st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("XY")), max_size=12)
_records = st.lists(st.tuples(_tuples, _tuples), min_size=1, max_size=5)


def _multiset_tp(gold: list, pred: list) -> int:
    """Each prediction consumes one equal gold tuple (the reference's 'normal' mode)."""
    left, tp = list(gold), 0
    for p in pred:
        if p in left:
            left.remove(p)
            tp += 1
    return tp


@settings(max_examples=120, deadline=None)
@given(_records, st.sampled_from(["multiset", "set"]), st.booleans())
def test_scorer_bounds_and_counts(records, match, rounding):
    scorer = _scorer(match=match, reference_rounding=rounding)
    tp = n_gold = n_pred = 0
    for gold, pred in records:
        scorer.update(gold, pred)
        if match == "set":
            gold, pred = list(set(gold)), list(set(pred))
        tp, n_gold, n_pred = tp + _multiset_tp(gold, pred), n_gold + len(gold), n_pred + len(pred)
    r = scorer.result()
    assert (r["tp"], r["gold"], r["pred"]) == (tp, n_gold, n_pred)
    assert 0 <= r["tp"] <= min(r["gold"], r["pred"])
    for key in ("P", "R", "F1"):
        assert 0 <= r[key] <= 100
    assert min(r["P"], r["R"]) - 0.01 <= r["F1"] <= max(r["P"], r["R"]) + 0.01  # a harmonic mean
    if not rounding:
        assert r["P"] == pytest.approx(100 * tp / n_pred if n_pred else 0)
        assert r["R"] == pytest.approx(100 * tp / n_gold if n_gold else 0)
        assert r["F1"] == pytest.approx(200 * tp / (n_gold + n_pred) if tp else 0)
    else:
        assert r["P"] == round(r["P"], 2) and r["R"] == round(r["R"], 2) and r["F1"] == round(r["F1"], 2)


@settings(max_examples=120, deadline=None)
@given(_records)
def test_scorer_set_mode_counts_no_more_than_multiset(records):
    multi, single = _scorer(match="multiset"), _scorer(match="set")
    for gold, pred in records:
        multi.update(gold, pred)
        single.update(gold, pred)
    m, s = multi.result(), single.result()
    assert s["tp"] <= m["tp"] and s["gold"] <= m["gold"] and s["pred"] <= m["pred"]
    if all(len(set(g)) == len(g) and len(set(p)) == len(p) for g, p in records):
        assert s == m  # without duplicates the modes agree


@settings(max_examples=100, deadline=None)
@given(_records.filter(lambda rs: any(g for g, _ in rs)), st.sampled_from(["multiset", "set"]), st.booleans())
def test_scorer_perfect_predictions_score_100(records, match, rounding):
    scorer = _scorer(match=match, reference_rounding=rounding)
    for gold, _ in records:
        scorer.update(gold, list(reversed(gold)))  # order does not matter
    r = scorer.result()
    assert (r["P"], r["R"], r["F1"]) == (100, 100, 100)


@settings(max_examples=100, deadline=None)
@given(_records, st.sampled_from(["multiset", "set"]), st.booleans())
def test_scorer_empty_predictions_score_0(records, match, rounding):
    scorer = _scorer(match=match, reference_rounding=rounding)
    for gold, _ in records:
        scorer.update(gold, [])
    r = scorer.result()
    assert (r["P"], r["R"], r["F1"], r["tp"], r["pred"]) == (0, 0, 0, 0, 0)


def test_scorer_rejects_unknown_match():
    with pytest.raises(ValueError, match="multiset"):
        _scorer(match="normal")


# -- converter determinism ------------------------------------------------------------------

_TYPES = ["人物", "地点", "组织", "时间", "作品", "事件", "职位", "产品", "学科"]


@st.composite
def _ner_samples(draw):
    samples = []
    for _ in range(draw(st.integers(1, 6))):
        text = draw(st.text(alphabet="甲乙丙丁戊己庚辛abc ", min_size=1, max_size=20))
        entities = []
        for _ in range(draw(st.integers(0, 4))):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            entities.append({"entity": text[start:end], "entity_type": draw(st.sampled_from(_TYPES))})
        samples.append({"text": text, "entity": entities})
    return samples


def _write_ner(folder: Path, samples: list[dict]) -> tuple[Path, Path]:
    src, schema = folder / "sample.json", folder / "schema.json"
    src.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
    schema.write_text(json.dumps(_TYPES, ensure_ascii=False) + "\n[]\n{}\n", encoding="utf-8")
    return src, schema


_OPTIONS = [dict(split="train"), dict(split="test"), dict(split="train", neg_schema=0.4, order="random", split_num=2),
            dict(split="train", neg_schema=0.0, mention_order="position")]


def _convert_bytes(src: Path, schema: Path, out: Path, mention_order: str = "annotation", **options) -> bytes:
    task = kgcore.load_task("NER", {"mention_order": mention_order})
    kgcore.convert(src, out, task=task, schema=schema, options=kgcore.ConvertOptions(**options), progress=False)
    return out.read_bytes()


@settings(max_examples=20, deadline=None)
@given(_ner_samples(), st.sampled_from(_OPTIONS))
def test_converter_is_deterministic_in_process(samples, options):
    with tempfile.TemporaryDirectory() as tmp:
        src, schema = _write_ner(Path(tmp), samples)
        first = _convert_bytes(src, schema, Path(tmp) / "a.json", **options)
        second = _convert_bytes(src, schema, Path(tmp) / "b.json", **options)
        assert first == second


_SUBPROCESS = """
import hashlib, json, sys
from pathlib import Path
import kgcore
src, schema, out = (Path(a) for a in sys.argv[1:4])
for i, options in enumerate(json.loads(sys.argv[4])):
    target = out / f"{i}.json"
    task = kgcore.load_task("NER", {"mention_order": options.pop("mention_order", "annotation")})
    kgcore.convert(src, target, task=task, schema=schema, options=kgcore.ConvertOptions(**options), progress=False)
    print(hashlib.sha256(target.read_bytes()).hexdigest())
"""


def test_converter_bytes_do_not_depend_on_pythonhashseed(tmp_path):
    rng = random.Random(20240607)
    samples = []
    for _ in range(40):
        text = "".join(rng.choice("甲乙丙丁戊己庚辛壬癸子丑") for _ in range(rng.randint(3, 25)))
        entities = []
        for _ in range(rng.randint(0, 5)):
            start = rng.randrange(len(text))
            entities.append({"entity": text[start:rng.randint(start + 1, len(text))], "entity_type": rng.choice(_TYPES)})
        samples.append({"text": text, "entity": entities})
    src, schema = _write_ner(tmp_path, samples)
    here = []
    for i, options in enumerate(_OPTIONS):
        here.append(hashlib.sha256(_convert_bytes(src, schema, tmp_path / f"here-{i}.json", **options)).hexdigest())
    for hash_seed in ("0", "4242"):
        out = tmp_path / f"seed-{hash_seed}"
        out.mkdir()
        done = subprocess.run([sys.executable, "-c", _SUBPROCESS, str(src), str(schema), str(out), json.dumps(_OPTIONS)],
                              env={**os.environ, "PYTHONHASHSEED": hash_seed}, capture_output=True, text=True,
                              check=True)
        assert done.stdout.split() == here, f"PYTHONHASHSEED={hash_seed} changed the output"
    # the sampled run really samples (otherwise the check above proves little)
    assert (tmp_path / "here-0.json").read_bytes() != (tmp_path / "here-2.json").read_bytes()
