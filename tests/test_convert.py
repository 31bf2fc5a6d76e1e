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


def _schema_names(task: str, entry) -> tuple[str, tuple[str, ...]]:
    """An instruction schema entry as (label, its roles or attributes)."""
    if isinstance(entry, str):
        return entry, ()
    if task == "KG":
        return entry["entity_type"], tuple(entry["attributes"])
    return entry["event_type"], tuple(entry["arguments"])


def _asked(task: str, records) -> dict[str, dict[str, set[str]]]:
    """Per text: every label asked, with the roles/attributes asked of it."""
    asked: dict[str, dict[str, set[str]]] = {}
    for record in records:
        instruction = json.loads(record["instruction"])
        for entry in instruction["schema"]:
            label, members = _schema_names(task, entry)
            asked.setdefault(instruction["input"], {}).setdefault(label, set()).update(members)
    return asked


def _gold(task: str, sample) -> dict[str, set[str]]:
    """Per text: the labels it has, with the roles/attributes it has of each."""
    if task == "NER":
        return {e["entity_type"]: set() for e in sample["entity"]}
    if task == "RE":
        return {r["relation"]: set() for r in sample["relation"]}
    if task == "KG":
        return {"人物": {r["relation"] for r in sample["relation"]}}
    gold: dict[str, set[str]] = {}
    for event in sample["event"]:
        gold.setdefault(event["event_type"], set()).update(
            a["role"] for a in event["arguments"] if task != "EET" and a.get("argument"))
    return gold


@pytest.mark.parametrize("task,hard", [
    ("NER", {"人物": ["组织机构"]}),
    ("RE", {"目": ["号", "简称"], "主演": ["导演"]}),
    ("EET", "EE/DuEE1.0"),
    ("EE", "EE/DuEE1.0"),  # event types
    ("EE", {"裁员方": ["时间"], "加盟者": ["时间"]}),  # roles
    ("EEA", {"裁员方": ["时间"], "加盟者": ["时间"]}),
    ("KG", {"父母": ["配偶", "兄弟姊妹"], "职业": ["职务"]}),
])
def test_hard_negatives_are_asked_beside_their_positives(tmp_path, task, hard):
    """Each text is asked its positives and their hard negatives: labels (types, relations, event types) and,
    for EE, EEA and KG, the roles and attributes of each label."""
    from kgcore.conversion import load_hard_negatives

    if isinstance(hard, str):
        hard = load_hard_negatives(DEEPKE / "hard_negative" / "hard_dict.json", hard)
    path = DEEPKE / task / "schema.json"
    if task == "NER":  # more types than split_num, so that random ones cannot stand in for hard ones
        path = tmp_path / "schema.json"
        path.write_text(json.dumps(["人物", "地理位置", "组织机构", "时间", "作品", "职位", "民族", "学历", "专业", "国籍"],
                                   ensure_ascii=False), encoding="utf-8")
    schema = {l.name: set(l.role_names) for l in load_schema(path, kgcore.load_task(task)).labels}
    asked = _asked(task, _convert(tmp_path, task, schema=path, hard_negatives=hard, neg_schema=0.0))
    without = _asked(task, _convert(tmp_path, task, schema=path, neg_schema=0.0))
    added = 0
    for _, sample in read_jsonl(DEEPKE / task / "sample.json"):
        gold, got = _gold(task, sample), asked.get(sample["text"])
        if not gold or got is None:
            continue
        labels = set(gold) | {h for g in gold for h in hard.get(g, ()) if h in schema}
        if task in ("EEA", "KG"):  # the gold labels, no sampled ones
            assert set(got) == labels, (sample["text"], set(got) ^ labels)
        else:  # and split_num random ones (the reference's cluster mode)
            assert labels <= set(got), (sample["text"], labels - set(got))
            split = kgcore.load_task(task).default_split_num
            assert len(got) == len(labels) + min(split, len(schema) - len(labels)), (sample["text"], got, labels)
        for label, members in gold.items():
            wanted = members | {h for m in members for h in hard.get(m, ()) if h in schema[label]}
            assert wanted <= got[label], (sample["text"], label, wanted - got[label])
            if task in ("EEA", "KG") and members:  # no random role or attribute at neg_schema 0: exactly those
                assert got[label] == wanted, (sample["text"], label, got[label] - wanted)
        added += len({m for ms in got.values() for m in ms} | set(got)) - len(
            {m for ms in without[sample["text"]].values() for m in ms} | set(without[sample["text"]]))
    assert added > 0, "no hard negative was asked: the test data does not exercise this dictionary"


def test_eea_refuses_a_dictionary_of_event_types(tmp_path):
    from kgcore.conversion import load_hard_negatives

    hard = load_hard_negatives(DEEPKE / "hard_negative" / "hard_dict.json", "EE/DuEE1.0")
    with pytest.raises(InputError, match="names no role of the schema"):
        _convert(tmp_path, "EEA", hard_negatives=hard)


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
