"""Conversion behaviour beyond the golden files: options, data forms, determinism, streaming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import pytest
from conftest import DATASETS, DEEPKE

import kgcore
from kgcore import ConvertOptions
from kgcore.errors import InputError
from kgcore.jsonl import read_jsonl
from kgcore.schema import load_schema

TASKS = ["NER", "RE", "SPO", "EE", "EET", "EEA", "KG"]


def _lines(path):
    return [r for _, r in read_jsonl(path)]


def _convert(tmp_path, task, split="train", schema=None, src=None, quiet=True, task_options=None, **options):
    out = tmp_path / f"{task}-{split}.json"
    kgcore.convert(src or DEEPKE / task / "sample.json", out, task=kgcore.load_task(task, task_options),
                   schema=schema or DEEPKE / task / "schema.json",
                   options=ConvertOptions(split=split, **options), progress=not quiet)
    return _lines(out)


_CONVERT_ALL = """
import hashlib, sys
from pathlib import Path
import kgcore
root, out = Path(sys.argv[1]), Path(sys.argv[2])
for task in %r:
    for split in ("train", "test"):
        target = out / f"{task}-{split}.json"
        kgcore.convert(root / task / "sample.json", target, task=task, schema=root / task / "schema.json",
                       options=kgcore.ConvertOptions(split=split, order="random", neg_schema=0.5), progress=False)
        print(target.name, hashlib.sha256(target.read_bytes()).hexdigest())
""" % (TASKS,)


def test_same_bytes_whatever_pythonhashseed(tmp_path):
    """Random order and negative sampling are seeded, never taken from set or hash order."""
    digests = []
    for seed in ("1", "2", "random"):
        (tmp_path / seed).mkdir()
        done = subprocess.run([sys.executable, "-c", _CONVERT_ALL, str(DEEPKE), str(tmp_path / seed)], check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True)
        digests.append(done.stdout)
    assert len(digests[0].splitlines()) == 14 and digests[0] == digests[1] == digests[2]


def test_seed_changes_random_order(tmp_path):
    a = _convert(tmp_path, "RE", order="random", seed=1)
    b = _convert(tmp_path, "RE", order="random", seed=2)
    assert len(a) == len(b) and a != b


def test_negative_ratio_zero_keeps_positives_only(tmp_path):
    records = _convert(tmp_path, "RE", neg_schema=0.0)
    for record in records:
        schema = json.loads(record["instruction"])["schema"]
        assert all(json.loads(record["output"])[label] for label in schema)
    assert len(records) == 6  # one positive relation per text, one chunk each


def test_split_num_minus_one_gives_one_chunk(tmp_path):
    records = _convert(tmp_path, "EE", split_num=-1)
    assert len(records) == 6
    assert all(len(json.loads(r["instruction"])["schema"]) == 65 for r in records)


def test_hard_negatives_for_spo_match_iepile_cluster_count(tmp_path):
    hard = json.loads((DEEPKE / "hard_negative" / "SPO_DuIE2.0.json").read_text(encoding="utf-8"))
    records = _convert(tmp_path, "SPO", hard_negatives=hard)
    assert len(records) == len(_lines(DEEPKE / "iepile_variants" / "SPO" / "train.json")) == 23
    by_text: dict[str, set] = {}
    for record in records:
        instruction = json.loads(record["instruction"])
        keys = {f"{i['subject_type']}_{i['predicate']}_{i['object_type']}" for i in instruction["schema"]}
        by_text.setdefault(instruction["input"], set()).update(keys)
    for _, sample in read_jsonl(DEEPKE / "SPO" / "sample.json"):
        positives = {f"{r['head_type']}_{r['relation']}_{r['tail_type']}" for r in sample["relation"]}
        known = {f"{l.subject_type}_{l.name}_{l.object_type}" for l in load_schema(DEEPKE / "SPO" / "schema.json", kgcore.load_task("SPO")).labels}
        expected = positives | {h for p in positives for h in hard.get(p, []) if h in known}
        assert expected <= by_text[sample["text"]]
        assert len(by_text[sample["text"]]) == len(expected) + 4  # plus split_num random labels


@pytest.mark.parametrize("task,section", [("EE", "EE/DuEE1.0"), ("EET", "EE/DuEE1.0"), ("EEA", "EE/DuEE1.0"),
                                          ("NER", None), ("RE", None), ("KG", None)])
def test_hard_negatives_work_for_every_task(tmp_path, task, section):
    from kgcore.conversion import load_hard_negatives

    if section:
        hard = load_hard_negatives(DEEPKE / "hard_negative" / "hard_dict.json", section)
    else:  # a small hand-made dictionary over the sample's own labels
        hard = {"人物": ["组织机构"], "目": ["科"], "父母": ["配偶"]}
    records = _convert(tmp_path, task, hard_negatives=hard)
    normal = _convert(tmp_path, task)
    assert 0 < len(records) <= len(normal)


def test_nested_hard_negative_file_needs_a_section():
    from kgcore.conversion import load_hard_negatives

    with pytest.raises(InputError, match="EE/DuEE1.0"):
        load_hard_negatives(DEEPKE / "hard_negative" / "hard_dict.json")
    with pytest.raises(InputError, match="no section 'XX'"):
        load_hard_negatives(DEEPKE / "hard_negative" / "hard_dict.json", "EE/XX")


def test_english_instruction_and_datasets_form(tmp_path):
    records = _convert(tmp_path, "NER", split="test", src=DATASETS / "conll2003" / "test.json",
                       schema=DATASETS / "conll2003" / "schema.json", language="en")
    first = json.loads(records[0]["instruction"])
    assert first["instruction"].startswith("You are an expert in named entity recognition.")
    assert first["schema"] == ["location", "miscellaneous", "organization", "person"]
    assert len(records) == 300 and records[0]["source"] == "conll2003"


def test_event_schema_from_datasets_dict(tmp_path):
    records = _convert(tmp_path, "EE", src=DATASETS / "phee" / "dev.json", schema=DATASETS / "phee" / "schema.json",
                       language="en")
    first = json.loads(records[0]["instruction"])
    assert [i["event_type"] for i in first["schema"]] == ["adverse event", "potential therapeutic event"]
    assert all(i["trigger"] is True for i in first["schema"])


def test_subject_object_keys_for_iepile_models(tmp_path):
    records = _convert(tmp_path, "RE", src=DATASETS / "conll04" / "dev.json", schema=DATASETS / "conll04" / "schema.json",
                       task_options={"relation_keys": "subject_object"}, language="en")
    answers = [v for r in records for vs in json.loads(r["output"]).values() for v in vs]
    assert answers and all(set(a) == {"subject", "object"} for a in answers)


def test_descriptions_and_examples_variant(tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "labels:\n"
        "  - name: 人物\n    description: 人的名字\n"
        "  - 地理位置\n"
        "examples:\n"
        "  - input: 张三在北京。\n    output: {人物: [张三], 地理位置: [北京]}\n", encoding="utf-8")
    records = _convert(tmp_path, "NER", schema=schema)
    instruction = json.loads(records[0]["instruction"])
    assert list(instruction) == ["instruction", "schema", "example", "input"]
    assert instruction["instruction"].endswith("请按照JSON字符串的格式回答。你可以参考example进行抽取。")
    assert instruction["schema"] == {"人物": "人的名字", "地理位置": "地理位置"}
    assert instruction["example"] == [{"input": "张三在北京。", "output": {"人物": ["张三"], "地理位置": ["北京"]}}]


def test_event_descriptions_variant(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"labels": [{"name": "组织关系-裁员", "description": "公司裁员",
                                              "roles": [{"name": "裁员方", "description": "谁裁员"}, "时间"]}]},
                                 ensure_ascii=False), encoding="utf-8")
    records = _convert(tmp_path, "EE", schema=schema)
    assert json.loads(records[0]["instruction"])["schema"] == {
        "组织关系-裁员": {"组织关系-裁员": "公司裁员", "trigger": True, "arguments": {"裁员方": "谁裁员", "时间": "时间"}}}


def test_eea_test_triggers_on_by_default(tmp_path):
    records = _convert(tmp_path, "EEA", split="test")
    assert all("trigger" in item for r in records for item in json.loads(r["instruction"])["schema"])


def test_bad_record_names_file_line_and_field(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text('{"text": "ok", "entity": []}\n{"text": "x", "entity": [{"entity": "x", "entity_type": 3}]}\n',
                   encoding="utf-8")
    out = tmp_path / "out.json"
    with pytest.raises(InputError) as info:
        kgcore.convert(src, out, task="NER", schema=DEEPKE / "NER" / "schema.json", progress=False)
    assert str(info.value).startswith(f"{src}:2: ") and "entity.0.entity_type" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_invalid_json_line_is_located(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.json:2: invalid JSON"):
        kgcore.convert(src, tmp_path / "o.json", task="NER", schema=DEEPKE / "NER" / "schema.json", progress=False)


def test_cli_reference_aliases_and_one_line_errors(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "kgcore.cli", *a], capture_output=True, text=True)
    ok = run("convert", "--src_path", str(DEEPKE / "RE" / "sample.json"), "--tgt_path", str(tmp_path / "o.json"),
             "--schema_path", str(DEEPKE / "RE" / "schema.json"), "--task", "RE", "--split_num", "4", "-q")
    assert ok.returncode == 0, ok.stderr
    assert len(_lines(tmp_path / "o.json")) == 72
    bad = run("convert", "-i", str(DEEPKE / "RE" / "sample.json"), "-s", str(DEEPKE / "RE" / "schema.json"), "-t", "RE",
              "--language", "fr", "-q")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "Error: no RE instruction in language 'fr' (available: en, zh); pass --instruction TEXT or register one"]
    assert "Traceback" not in bad.stderr
    debug = run("--debug", "convert", "-i", str(DEEPKE / "RE" / "sample.json"), "-s", str(DEEPKE / "RE" / "schema.json"),
                "-t", "RE", "--language", "fr", "-q")
    assert "Traceback" in debug.stderr


def test_memory_stays_flat_while_streaming(tmp_path):
    """Peak memory does not grow with the number of records."""
    def peak(n: int) -> int:
        src = tmp_path / f"big{n}.json"
        with src.open("w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({"text": f"张三{i}在北京工作。", "entity": [
                    {"entity": f"张三{i}", "entity_type": "人物"}, {"entity": "北京", "entity_type": "地理位置"}]},
                    ensure_ascii=False) + "\n")
        tracemalloc.start()
        kgcore.convert(src, tmp_path / f"out{n}.json", task="NER", schema=DEEPKE / "NER" / "schema.json",
                       progress=False)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(_lines(tmp_path / f"out{n}.json")) == n
        return top

    peak(100)  # warm-up: imports and caches are not the records' memory
    small, large = peak(1_000), peak(10_000)
    assert large < small * 1.5, (small, large)
