"""``kgc evaluate``: perfect predictions, hand-scored error cases, grouping, counting modes,
the reference's rounding (checked against an independent oracle of iepile-format.md §3), bad input, CLI.

Every expected number is worked out by hand in the comments next to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import find_shared

import kgcore
from kgcore.cli import cli
from kgcore.errors import InputError

DEEPKE = find_shared() / "fixtures" / "deepke"  # ../shared beside the repository (or $KGC_SHARED)
TASKS = ["NER", "RE", "SPO", "EE", "EET", "EEA", "KG"]


# -- helpers ----------------------------------------------------------------------------------

def write_jsonl(path: Path, records: list) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rec(id_, source, label, output, task="NER"):
    """A prediction record: a converted test record plus the model's ``output``."""
    return {"id": id_, "task": task, "source": source, "instruction": "{}",
            "label": json.dumps(label, ensure_ascii=False), "output": output}


def ev(path, **kwargs) -> dict:
    return kgcore.evaluate(path, progress=False, **kwargs)


def prf(metric: dict) -> tuple:
    return metric["P"], metric["R"], metric["F1"]


def approx(*values):
    return pytest.approx(values, abs=1e-9)


def gold_answer(task: str, schema, label: list[dict]) -> dict:
    """The correct answer of one test chunk, built from its ``label`` and only the chunk's schema
    labels, in the task's answer shape (independent of the converter's own target code)."""
    if task == "NER":
        return {t: [a["entity"] for a in label if a["entity_type"] == t] for t in schema}
    if task == "EET":
        return {t: [e["event_trigger"] for e in label if e["event_type"] == t and e["event_trigger"]] for t in schema}
    if task == "RE":
        return {r: [{"head": a["head"], "tail": a["tail"]} for a in label if a["relation"] == r] for r in schema}
    if task == "SPO":
        out: dict = {}
        for item in schema:
            key = (item["predicate"], item["subject_type"], item["object_type"])
            out.setdefault(item["predicate"], []).extend(
                {"subject": a["head"], "object": a["tail"]} for a in label
                if (a["relation"], a.get("head_type"), a.get("tail_type")) == key)
        return out
    if task in ("EE", "EEA"):
        out = {}
        for item in schema:
            out[item["event_type"]] = [
                {"trigger": e["event_trigger"],
                 "arguments": {r: [a["argument"] for a in e["arguments"] if a["role"] == r] or "NAN"
                               for r in item["arguments"]}}
                for e in label if e["event_type"] == item["event_type"]]
        return out
    if task == "KG":
        out = {}
        for item in schema:
            entities: dict = {}
            for a in label:
                if a["relation"] in item["attributes"]:
                    entities.setdefault(a["head"], {}).setdefault(a["relation"], []).append(a["tail"])
            out[item["entity_type"]] = entities
        return out
    raise AssertionError(task)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each task's deepke sample converted to the test and train splits (sorted schema, all labels)."""
    folder = tmp_path_factory.mktemp("converted")
    out = {}
    for task in TASKS:
        for split in ("test", "train"):
            path = folder / f"{task}.{split}.json"
            kgcore.convert(DEEPKE / task / "sample.json", path, task=task, schema=DEEPKE / task / "schema.json",
                           options=kgcore.ConvertOptions(split=split), progress=False)
            out[task, split] = read_jsonl(path)
    return out


def perfect_predictions(task, test_records):
    preds = []
    for r in test_records:
        schema = json.loads(r["instruction"])["schema"]
        answer = gold_answer(task, schema, json.loads(r["label"]))
        preds.append({**r, "output": json.dumps(answer, ensure_ascii=False)})
    return preds


# -- perfect predictions on every task ------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_gold_answers_score_100(task, converted, tmp_path):
    test = converted[task, "test"]
    path = write_jsonl(tmp_path / "pred.json", perfect_predictions(task, test))
    report = ev(path)
    n_texts = len({(r["source"], r["id"]) for r in test})
    assert report["task"] == task
    assert (report["records"], report["outputs"]) == (n_texts, len(test))
    assert report["parse_failures"] == 0 and report["parse_failure_rate"] == 0 and report["failures"] == []
    assert set(report["metrics"]) == set(kgcore.get_host().registry.load("task", task).metrics)
    for name, metric in report["metrics"].items():
        assert metric["gold"] > 0, f"{task} {name}: the fixture has no gold tuples"
        assert prf(metric) == (100, 100, 100), f"{task} {name}: {metric}"
        assert metric["tp"] == metric["gold"] == metric["pred"]
    assert list(report["by_source"]) == [task]  # source = the input's folder name


@pytest.mark.parametrize("task", TASKS)
def test_training_targets_score_100_against_test_labels(task, converted, tmp_path):
    """The converter's train ``output`` of a text is, by construction, its gold answer."""
    train, test = converted[task, "train"], converted[task, "test"]
    assert len(train) == len(test)
    preds = [{**t, "output": tr["output"]} for t, tr in zip(test, train)]
    for t, tr in zip(test, train):
        assert json.loads(t["instruction"])["input"] == json.loads(tr["instruction"])["input"]
    report = ev(write_jsonl(tmp_path / "pred.json", preds))
    for metric in report["metrics"].values():
        assert prf(metric) == (100, 100, 100)


def test_event_gold_follows_the_training_label_rules(tmp_path):
    """Events without trigger get trigger "NAN" in training answers, empty events and empty
    arguments are dropped, repeated values of a role are given once: a model that answers
    exactly like the training data must score 100 (it scored 40/66.67 before)."""
    src = write_jsonl(tmp_path / "sample.json", [{"text": "甲公司裁员了，乙公司也裁员", "event": [
        {"event_trigger": "", "event_type": "组织关系-裁员", "arguments": [{"argument": "甲公司", "role": "裁员方"}]},
        {"event_trigger": "裁员", "event_type": "组织关系-裁员", "arguments": [
            {"argument": "", "role": "时间"}, {"argument": "乙公司", "role": "裁员方"},
            {"argument": "乙公司", "role": "裁员方"}]},
        {"event_trigger": "", "event_type": "组织关系-裁员", "arguments": []}]}])
    schema = tmp_path / "schema.json"
    schema.write_text('["组织关系-裁员"]\n["裁员方", "时间"]\n{"组织关系-裁员": ["裁员方", "时间"]}\n', encoding="utf-8")
    for task, counts in [("EE", {"event": 2, "argument": 2}), ("EEA", {"event": 2, "argument": 2}),
                         ("EET", {"trigger": 1})]:
        out = {}
        for split in ("train", "test"):
            kgcore.convert(src, tmp_path / f"{task}.{split}", task=task, schema=schema,
                           options=kgcore.ConvertOptions(split=split), progress=False)
            out[split] = read_jsonl(tmp_path / f"{task}.{split}")
        preds = [{**t, "output": tr["output"]} for t, tr in zip(out["test"], out["train"])]
        report = ev(write_jsonl(tmp_path / f"{task}.pred", preds))
        for name, metric in report["metrics"].items():
            assert prf(metric) == (100, 100, 100), (task, name, metric)
            assert metric["gold"] == counts[name]


# -- hand-scored error cases --------------------------------------------------------------------

NER_CRAFTED = [
    # source A, text a1 in two chunks
    rec("a1", "A", [{"entity": "张三", "entity_type": "人物"}, {"entity": "北京", "entity_type": "地理位置"},
                    {"entity": "华为", "entity_type": "组织机构"}],
        '```json\n{"人物": ["张三"], "地理位置": []}\n```'),  # fenced; misses 北京
    rec("a1", "A", [], 'The answer is {"组织机构": ["华为", "腾讯"]} hope it helps'),  # prose; extra 腾讯
    # source A, text a2: damaged JSON (trailing comma, no closing brace) that json-repair fixes
    rec("a2", "A", [{"entity": "李四", "entity_type": "人物"}], '{"人物": ["李四",], '),
    # source B, text b1: hopeless answer
    rec("b1", "B", [{"entity": "王五", "entity_type": "人物"}, {"entity": "上海", "entity_type": "地理位置"}],
        "抱歉，我无法回答。"),
    # source B reuses id a1: a different text
    rec("a1", "B", [{"entity": "赵六", "entity_type": "人物"}], '{"人物": ["赵六"]}'),
]


def test_crafted_ner(tmp_path):
    report = ev(write_jsonl(tmp_path / "ner.json", NER_CRAFTED))
    # gold: a1 3 + a2 1 + b1 2 + B/a1 1 = 7 (a1's second chunk does not add gold)
    # pred: 张三, 华为, 腾讯, 李四, 赵六 = 5; tp: 张三, 华为, 李四, 赵六 = 4
    # P = 4/5 = 80, R = 4/7 = 57.142857, F1 = 2*4/(7+5) = 66.666667
    m = report["metrics"]["entity"]
    assert (m["tp"], m["gold"], m["pred"]) == (4, 7, 5)
    assert prf(m) == approx(80, 400 / 7, 200 / 3)
    # records: A/a1, A/a2, B/b1, B/a1 = 4; outputs 5; one failure = 20 %; one repaired
    assert (report["records"], report["outputs"], report["parse_failures"], report["repaired"]) == (4, 5, 1, 1)
    assert report["parse_failure_rate"] == 20.0
    assert report["failures"] == [{"line": 4, "id": "b1", "source": "B", "error": "no JSON object in the answer",
                                   "output": "抱歉，我无法回答。"}]
    a, b = report["by_source"]["A"], report["by_source"]["B"]
    # A: gold 4 (张三 北京 华为 李四), pred 4 (张三 华为 腾讯 李四), tp 3 -> 75 / 75 / 75
    assert (a["records"], a["outputs"], a["parse_failures"], a["repaired"]) == (2, 3, 0, 1)
    assert prf(a["metrics"]["entity"]) == approx(75, 75, 75)
    # B: gold 3 (王五 上海 赵六), pred 1 (赵六), tp 1 -> P 100, R 33.33, F1 2*1/(3+1) = 50
    assert (b["records"], b["outputs"], b["parse_failures"], b["parse_failure_rate"]) == (2, 2, 1, 50.0)
    assert prf(b["metrics"]["entity"]) == approx(100, 100 / 3, 50)


RE_CRAFTED = [
    # source X, text r1, chunk 1: head and tail swapped
    rec("r1", "X", [{"head": "喜剧之王", "relation": "主演", "tail": "周星驰"},
                    {"head": "周星驰", "relation": "国籍", "tail": "中国"}],
        '{"主演": [{"head": "周星驰", "tail": "喜剧之王"}]}', task="RE"),
    # chunk 2: fenced without language; one right, one extra (香港)
    rec("r1", "X", [], '```\n{"国籍": [{"head": "周星驰", "tail": "中国"}, {"head": "周星驰", "tail": "香港"}],'
                       ' "作者": []}\n```', task="RE"),
    # text r2: truncated JSON (missing closing brace and bracket), then a garbage chunk
    rec("r2", "X", [{"head": "A书", "relation": "作者", "tail": "李白"}],
        '{"作者": [{"head": "A书", "tail": "李白"}', task="RE"),
    rec("r2", "X", [], "作者: 李白", task="RE"),
    # source Y, same id r1: prose around an answer with subject/object keys
    rec("r1", "Y", [{"head": "茶树茶网蝽", "relation": "目", "tail": "半翅目"}],
        'Result:\n{"目": [{"subject": "茶树茶网蝽", "object": "半翅目"}]}\nEnd.', task="RE"),
]


def test_crafted_re(tmp_path):
    report = ev(write_jsonl(tmp_path / "re.json", RE_CRAFTED))
    # gold 2 + 1 + 1 = 4; pred: swapped, 中国, 香港, A书, 茶树 = 5; tp: 中国, A书, 茶树 = 3
    # P = 3/5 = 60, R = 3/4 = 75, F1 = 2*3/(4+5) = 66.666667
    m = report["metrics"]["triple"]
    assert (m["tp"], m["gold"], m["pred"]) == (3, 4, 5)
    assert prf(m) == approx(60, 75, 200 / 3)
    assert (report["records"], report["outputs"], report["parse_failures"], report["repaired"]) == (3, 5, 1, 1)
    assert report["parse_failure_rate"] == 20.0
    assert [(f["line"], f["id"], f["source"], f["output"]) for f in report["failures"]] == [(4, "r2", "X", "作者: 李白")]
    x, y = report["by_source"]["X"], report["by_source"]["Y"]
    # X: gold 3, pred 4, tp 2 -> P 50, R 66.67, F1 2*2/(3+4) = 57.142857; 1 failure in 4 outputs
    assert prf(x["metrics"]["triple"]) == approx(50, 200 / 3, 400 / 7)
    assert (x["records"], x["outputs"], x["parse_failures"], x["parse_failure_rate"], x["repaired"]) == (2, 4, 1, 25.0, 1)
    # Y: 1/1/1 -> 100
    assert prf(y["metrics"]["triple"]) == (100, 100, 100)
    assert (y["records"], y["outputs"], y["parse_failures"]) == (1, 1, 0)


EE_CRAFTED = [
    rec("e1", "S1", [{"event_trigger": "裁员", "event_type": "组织关系-裁员",
                      "arguments": [{"argument": "900余人", "role": "裁员人数"}, {"argument": "5月份", "role": "时间"}]}],
        json.dumps({"组织关系-裁员": [{"trigger": "裁员", "arguments": {"裁员人数": "900余人", "时间": "NAN",
                                                                 "裁员方": ["外企", "NAN"]}}],
                    "组织关系-加盟": [{"trigger": "加入", "arguments": {}}]}, ensure_ascii=False), task="EE"),
    rec("e2", "S2", [{"event_trigger": "夺冠", "event_type": "竞赛行为-胜负",
                      "arguments": [{"argument": "中国队", "role": "胜者"}]}],
        'Here you go: ```json\n{"竞赛行为-胜负": [{"trigger": "夺冠", "arguments": {"胜者": "中国队"}}]}\n```',
        task="EE"),
    rec("e2", "S2", [], "抱歉，我无法回答。", task="EE"),
]


def test_crafted_ee(tmp_path):
    report = ev(write_jsonl(tmp_path / "ee.json", EE_CRAFTED))
    # events: gold (裁员 裁员), (胜负 夺冠) = 2; pred + (加盟 加入) = 3; tp 2
    #   P = 66.67, R = 100, F1 = 2*2/(2+3) = 80
    # arguments: gold 900余人, 5月份, 中国队 = 3; pred 900余人, 外企 ("NAN" skipped), 中国队 = 3; tp 2
    #   P = R = F1 = 66.67
    e, a = report["metrics"]["event"], report["metrics"]["argument"]
    assert (e["tp"], e["gold"], e["pred"]) == (2, 2, 3)
    assert prf(e) == approx(200 / 3, 100, 80)
    assert (a["tp"], a["gold"], a["pred"]) == (2, 3, 3)
    assert prf(a) == approx(200 / 3, 200 / 3, 200 / 3)
    assert (report["records"], report["outputs"], report["parse_failures"], report["repaired"]) == (2, 3, 1, 0)
    assert report["parse_failure_rate"] == pytest.approx(100 / 3, abs=1e-4)
    s1, s2 = report["by_source"]["S1"]["metrics"], report["by_source"]["S2"]["metrics"]
    # S1: events 1/2 -> P 50 R 100 F1 66.67; arguments tp 1, gold 2, pred 2 -> 50 / 50 / 50
    assert prf(s1["event"]) == approx(50, 100, 200 / 3)
    assert prf(s1["argument"]) == approx(50, 50, 50)
    assert prf(s2["event"]) == prf(s2["argument"]) == (100, 100, 100)
    assert report["by_source"]["S2"]["parse_failures"] == 1


# -- grouping -------------------------------------------------------------------------------

def test_chunks_of_one_text_are_merged(tmp_path):
    label = [{"entity": "张三", "entity_type": "人物"}, {"entity": "北京", "entity_type": "地理位置"}]
    records = [
        rec("t1", "S", label, '{"人物": ["张三"]}'),
        rec("t1", "S", label, '{"地理位置": ["北京"]}'),
        rec("t1", "S", label, '{"组织机构": []}'),
    ]
    report = ev(write_jsonl(tmp_path / "p.json", records))
    # one text: gold counted once (2, not 6), both chunks' predictions pooled -> 100
    m = report["metrics"]["entity"]
    assert (report["records"], report["outputs"]) == (1, 3)
    assert (m["tp"], m["gold"], m["pred"]) == (2, 2, 2)
    assert prf(m) == (100, 100, 100)


def test_same_id_different_source_are_separate(tmp_path):
    records = [
        rec("t1", "S", [{"entity": "张三", "entity_type": "人物"}], '{"人物": ["张三"]}'),
        rec("t1", "T", [{"entity": "李四", "entity_type": "人物"}], '{"人物": ["张三"]}'),
    ]
    report = ev(write_jsonl(tmp_path / "p.json", records))
    # two texts: gold 张三 (S) + 李四 (T); pred 张三 twice; only S's matches -> tp 1 / gold 2 / pred 2
    m = report["metrics"]["entity"]
    assert report["records"] == 2
    assert (m["tp"], m["gold"], m["pred"]) == (1, 2, 2)
    assert prf(report["by_source"]["S"]["metrics"]["entity"]) == (100, 100, 100)
    assert prf(report["by_source"]["T"]["metrics"]["entity"]) == (0, 0, 0)
    # the per-source breakdown can be turned off
    assert "by_source" not in ev(tmp_path / "p.json", by_source=False)


def test_records_without_source_group_by_id(tmp_path):
    records = [{"id": "x", "label": '[{"entity": "张三", "entity_type": "人物"}]', "output": '{"人物": ["张三"]}'},
               {"id": "x", "label": '[{"entity": "张三", "entity_type": "人物"}]', "output": '{"人物": []}'}]
    report = ev(write_jsonl(tmp_path / "p.json", records), task="NER")  # shipped test.json has no task field
    assert report["records"] == 1 and report["metrics"]["entity"]["gold"] == 1
    assert prf(report["metrics"]["entity"]) == (100, 100, 100)


# -- counting modes and rounding --------------------------------------------------------------

def test_set_and_multiset_differ_on_duplicates(tmp_path):
    records = [
        rec("d1", "S", [{"entity": "A", "entity_type": "人物"}], '{"人物": ["A", "A", "B"]}'),
        rec("d2", "S", [{"entity": "C", "entity_type": "人物"}, {"entity": "C", "entity_type": "人物"}],
            '{"人物": ["C"]}'),
    ]
    path = write_jsonl(tmp_path / "p.json", records)
    multi, single = ev(path, match="multiset")["metrics"]["entity"], ev(path, match="set")["metrics"]["entity"]
    # multiset: d1 gold 1 pred 3 tp 1; d2 gold 2 pred 1 tp 1 -> tp 2 gold 3 pred 4
    #   P 50, R 66.67, F1 2*2/(3+4) = 57.142857
    assert (multi["tp"], multi["gold"], multi["pred"]) == (2, 3, 4)
    assert prf(multi) == approx(50, 200 / 3, 400 / 7)
    # set: d1 gold {A} pred {A, B} tp 1; d2 gold {C} pred {C} tp 1 -> tp 2 gold 2 pred 3
    #   P 66.67, R 100, F1 2*2/(2+3) = 80
    assert (single["tp"], single["gold"], single["pred"]) == (2, 2, 3)
    assert prf(single) == approx(200 / 3, 100, 80)


def test_reference_rounding(tmp_path):
    records = [rec("r", "S", [{"entity": "A", "entity_type": "人物"}], '{"人物": ["A", "B", "C", "D", "E", "F", "G"]}')]
    path = write_jsonl(tmp_path / "p.json", records)
    # tp 1, pred 7, gold 1
    # exact:     P = 14.285714, R = 100, F1 = 2*1/(1+7) = 25
    # reference: P = round(14.2857, 2) = 14.29, R = 100.0,
    #            F1 = round(2*14.29*100 / (14.29+100), 2) = round(2858/114.29, 2) = round(25.00656, 2) = 25.01
    exact = ev(path)["metrics"]["entity"]
    assert prf(exact) == approx(100 / 7, 100, 25)
    ref = ev(path, reference_rounding=True)
    assert ref["reference_rounding"] is True
    assert prf(ref["metrics"]["entity"]) == (14.29, 100.0, 25.01)


# -- an independent oracle of the reference evaluator (iepile-format.md §3) ---------------------

def reference_evaluate(path: Path, task: str) -> dict:
    """DeepKE's eval_func.py for NER/RE/EE, re-implemented from its description: group by
    source+id, json.loads only (no fences, no repair), head/tail keys, multiset matching,
    P and R rounded to 2 decimals, F1 from the rounded values."""
    groups: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        key = record.get("source", "None") + record["id"]
        groups.setdefault(key, {"label": record["label"], "outputs": []})["outputs"].append(record["output"])
    metrics = {"NER": ["entity"], "RE": ["triple"], "EE": ["event", "argument"]}[task]
    counts = {m: [0, 0, 0] for m in metrics}  # tp, gold, pred
    errors = 0
    for group in groups.values():
        label = json.loads(group["label"])
        gold: dict[str, list] = {m: [] for m in metrics}
        pred: dict[str, list] = {m: [] for m in metrics}
        if task == "NER":
            gold["entity"] = [(a["entity"], a["entity_type"]) for a in label]
        elif task == "RE":
            gold["triple"] = [(a["head"], a["relation"], a["tail"]) for a in label]
        else:
            gold["event"] = [(e["event_type"], e["event_trigger"]) for e in label]
            gold["argument"] = [(e["event_type"], a["argument"], a["role"]) for e in label for a in e["arguments"]]
        for output in group["outputs"]:
            try:
                answer = json.loads(output)
            except json.JSONDecodeError:
                errors += 1
                continue
            if not isinstance(answer, dict):
                errors += 1
                continue
            for key, values in answer.items():
                if not isinstance(values, list):
                    continue
                for v in values:
                    if task == "NER" and isinstance(v, str):
                        pred["entity"].append((v, key))
                    elif task == "RE" and isinstance(v, dict):
                        head, tail = v.get("head", ""), v.get("tail", "")
                        if isinstance(head, str) and isinstance(tail, str):
                            pred["triple"].append((head, key, tail))
                    elif task == "EE" and isinstance(v, dict):
                        trigger = v.get("trigger", "")
                        if isinstance(trigger, str):
                            pred["event"].append((key, trigger))
                        for role, value in v.get("arguments", {}).items():
                            for text in value if isinstance(value, list) else [value]:
                                if text != "NAN":
                                    pred["argument"].append((key, text, role))
        for m in metrics:
            counts[m][0] += sum((Counter(gold[m]) & Counter(pred[m])).values())
            counts[m][1] += len(gold[m])
            counts[m][2] += len(pred[m])
    result = {"total": len(groups), "errors": errors}
    for m, (tp, n_gold, n_pred) in counts.items():
        p = round(tp / n_pred * 100, 2) if n_pred else 0
        r = round(tp / n_gold * 100, 2) if n_gold else 0
        result[m] = (p, r, round(2 * p * r / (p + r), 2) if p + r else 0)
    return result


def imperfect_predictions(task, test_records):
    """Gold answers, deterministically damaged; every output stays valid JSON."""
    extra = {"NER": "虚构实体", "RE": {"head": "甲", "tail": "乙"}, "EE": {"trigger": "虚构", "arguments": {}}}[task]
    preds = []
    for i, r in enumerate(test_records):
        schema = json.loads(r["instruction"])["schema"]
        answer = gold_answer(task, schema, json.loads(r["label"]))
        keys = list(answer)
        filled = [k for k in keys if answer[k]]
        if i % 5 == 0 and filled:
            answer[filled[0]] = answer[filled[0]][1:]  # a missed item
        elif i % 5 == 1:
            answer[keys[0]] = answer[keys[0]] + [extra]  # a spurious one
        elif i % 5 == 2:
            answer = {k: v + v for k, v in answer.items()}  # duplicates: false positives in multiset mode
        elif i % 5 == 3 and task == "EE":
            for events in answer.values():
                for event in events:
                    event["arguments"] = {k: "NAN" for k in event["arguments"]}  # all arguments missed
        elif i % 7 == 4:
            answer = {}
        preds.append({**r, "output": json.dumps(answer, ensure_ascii=False)})
    return preds


@pytest.mark.parametrize("task", ["NER", "RE", "EE"])
def test_equal_to_the_reference_on_ner_re_ee(task, converted, tmp_path):
    path = write_jsonl(tmp_path / "pred.json", imperfect_predictions(task, converted[task, "test"]))
    oracle = reference_evaluate(path, task)
    ours = ev(path, reference_rounding=True, match="multiset")
    assert (ours["records"], ours["parse_failures"]) == (oracle["total"], oracle["errors"])
    for metric, expected in oracle.items():
        if metric in ("total", "errors"):
            continue
        assert prf(ours["metrics"][metric]) == pytest.approx(expected, abs=1e-9), metric
        assert expected[2] < 100  # the damage shows: not a trivial all-100 comparison


def test_reference_oracle_on_the_crafted_file(tmp_path):
    """Where the reference gives up (fence, prose, damage), kgc still scores the answer."""
    path = write_jsonl(tmp_path / "p.json", NER_CRAFTED)
    oracle = reference_evaluate(path, "NER")
    # the reference: 4 texts; fenced, prose, damaged and garbage answers are all errors (4);
    # only B/a1's 赵六 is predicted: tp 1, pred 1, gold 7 -> P 100, R round(14.2857, 2) = 14.29,
    # F1 round(2*100*14.29/114.29, 2) = round(25.0066, 2) = 25.01
    assert (oracle["total"], oracle["errors"]) == (4, 4)
    assert oracle["entity"] == (100, 14.29, 25.01)
    ours = ev(path, reference_rounding=True)
    # kgc: 1 error; 80 / 57.14 / round(2*80*57.14/137.14, 2) = round(66.6647, 2) = 66.66
    assert (ours["records"], ours["parse_failures"]) == (4, 1)
    assert prf(ours["metrics"]["entity"]) == (80.0, 57.14, 66.66)
    # with every answer that json.loads rejects counted as empty, kgc equals the reference
    plain = [r for r in NER_CRAFTED if r["output"] == '{"人物": ["赵六"]}']
    dropped = [{**r, "output": "{}"} for r in NER_CRAFTED if r not in plain]
    same = write_jsonl(tmp_path / "same.json", dropped + plain)
    assert prf(ev(same, reference_rounding=True)["metrics"]["entity"]) == reference_evaluate(same, "NER")["entity"]


# -- answer-key variants and the tasks the reference could not score ----------------------------

def test_re_subject_object_scores_like_head_tail(tmp_path):
    label = [{"head": "喜剧之王", "relation": "主演", "tail": "周星驰"}, {"head": "周星驰", "relation": "国籍", "tail": "中国"}]
    def answer(h, t):
        return json.dumps({"主演": [{h: "喜剧之王", t: "周星驰"}, {h: "周星驰", t: "喜剧之王"}],
                           "国籍": [{h: "周星驰", t: "中国"}]}, ensure_ascii=False)
    head_tail = ev(write_jsonl(tmp_path / "ht.json", [rec("x", "S", label, answer("head", "tail"), task="RE")]))
    subj_obj = ev(write_jsonl(tmp_path / "so.json", [rec("x", "S", label, answer("subject", "object"), task="RE")]))
    # tp 2 (主演 and 国籍), pred 3 (one swapped), gold 2 -> P 66.67, R 100, F1 80
    assert prf(head_tail["metrics"]["triple"]) == approx(200 / 3, 100, 80)
    assert head_tail["metrics"] == subj_obj["metrics"]


def test_spo(tmp_path):
    label = [{"head": "邪少兵王", "head_type": "图书作品", "relation": "作者", "tail": "冰火未央", "tail_type": "人物"},
             {"head": "周杰伦", "head_type": "人物", "relation": "国籍", "tail": "中国", "tail_type": "国家"}]
    records = [
        rec("s", "SPO", label, '{"作者": [{"subject": "邪少兵王", "object": "冰火未央"}],'
                               ' "国籍": [{"subject": "中国", "object": "周杰伦"}]}', task="SPO"),
        rec("s", "SPO", label, '{"出版社": [{"subject": "邪少兵王", "object": "某出版社"}]}', task="SPO"),
    ]
    m = ev(write_jsonl(tmp_path / "p.json", records))["metrics"]["triple"]
    # gold 2; pred 作者 (right), 国籍 (swapped), 出版社 (extra) = 3; tp 1
    # P 33.33, R 50, F1 2*1/(2+3) = 40   (the reference had no SPO scorer at all)
    assert (m["tp"], m["gold"], m["pred"]) == (1, 2, 3)
    assert prf(m) == approx(100 / 3, 50, 40)


def test_eet(tmp_path):
    label = [{"event_trigger": "裁员", "event_type": "组织关系-裁员", "arguments": []},
             {"event_trigger": "夺冠", "event_type": "竞赛行为-夺冠", "arguments": []}]
    records = [rec("e", "EET", label, '{"组织关系-裁员": ["裁员"], "竞赛行为-胜负": ["夺冠"], "组织关系-加盟": []}',
                   task="EET")]
    m = ev(write_jsonl(tmp_path / "p.json", records))["metrics"]["trigger"]
    # gold (裁员, 组织关系-裁员), (夺冠, 竞赛行为-夺冠); pred (裁员, 组织关系-裁员), (夺冠, 竞赛行为-胜负)
    # tp 1 / gold 2 / pred 2 -> 50 / 50 / 50   (the reference's EET extractor crashed)
    assert (m["tp"], m["gold"], m["pred"]) == (1, 2, 2)
    assert prf(m) == (50, 50, 50)


def test_eea(tmp_path):
    label = [{"event_trigger": "裁员", "event_type": "组织关系-裁员",
              "arguments": [{"argument": "900余人", "role": "裁员人数"}, {"argument": "5月份", "role": "时间"}]}]
    records = [rec("e", "EEA", label, '{"组织关系-裁员": [{"trigger": "裁员", "arguments": '
                                      '{"裁员人数": "900余人", "时间": "NAN", "裁员方": "外企"}}]}', task="EEA")]
    report = ev(write_jsonl(tmp_path / "p.json", records))
    # event: (组织关系-裁员, 裁员) matches -> 100 (the reference's event score was always 0 on EEA)
    # argument: gold 900余人, 5月份; pred 900余人, 外企 -> tp 1 / 2 / 2 -> 50 / 50 / 50
    assert prf(report["metrics"]["event"]) == (100, 100, 100)
    assert prf(report["metrics"]["argument"]) == (50, 50, 50)


def test_kg(tmp_path):
    label = [{"head": "明治天皇", "relation": "别名", "tail": "睦仁"},
             {"head": "明治天皇", "relation": "父母", "tail": "孝明天皇"},
             {"head": "明治天皇", "relation": "父母", "tail": "英照皇太后"},
             {"head": "孝明天皇", "relation": "配偶", "tail": "英照皇太后"}]
    output = json.dumps({"人物": {"明治天皇": {"别名": "睦仁", "父母": ["孝明天皇", "权大纳言"], "国籍": "无",
                                              "职业": "NaN"},
                                 "孝明天皇": {}}}, ensure_ascii=False)
    m = ev(write_jsonl(tmp_path / "p.json", [rec("k", "KG", label, output, task="KG")]))["metrics"]["triple"]
    # pred: (明治天皇 别名 睦仁) ok, (明治天皇 父母 孝明天皇) ok, (明治天皇 父母 权大纳言) wrong;
    #       "无" and "NaN" are dropped -> pred 3, tp 2, gold 4
    # P 66.67, R 50, F1 2*2/(4+3) = 57.142857   (the reference always scored 0 on KG)
    assert (m["tp"], m["gold"], m["pred"]) == (2, 4, 3)
    assert prf(m) == approx(200 / 3, 50, 400 / 7)
    # set mode works too (the reference crashed: dicts are unhashable)
    assert ev(tmp_path / "p.json", match="set")["metrics"]["triple"]["tp"] == 2


def test_malformed_answer_parts_are_skipped(tmp_path):
    label = [{"entity": "张三", "entity_type": "人物"}]
    output = '{"人物": ["张三", 3, null, ["x"], {"a": 1}], "地理位置": "北京", "组织机构": null}'
    m = ev(write_jsonl(tmp_path / "p.json", [rec("m", "S", label, output)]))["metrics"]["entity"]
    # only the string item of a list counts: pred 1, tp 1
    assert (m["tp"], m["gold"], m["pred"]) == (1, 1, 1)


# -- bad input ------------------------------------------------------------------------------

GOOD = rec("g", "S", [{"entity": "张三", "entity_type": "人物"}], '{"人物": ["张三"]}')


@pytest.mark.parametrize("bad, field, words", [
    ({k: v for k, v in GOOD.items() if k != "label"} | {"id": "other"}, "label", "gold"),
    ({k: v for k, v in GOOD.items() if k != "output"}, "output", "output"),
    ({k: v for k, v in GOOD.items() if k != "id"}, "id", "id"),
    (GOOD | {"id": "other", "label": "[{not json"}, "label", "JSON"),
    (GOOD | {"id": "other", "label": '{"entity": "张三"}'}, "label", "list"),
    (GOOD | {"id": "other", "label": "[1, 2]"}, "label", "list"),
])
def test_bad_record_names_file_line_and_field(tmp_path, bad, field, words):
    path = write_jsonl(tmp_path / "bad.json", [GOOD, bad])
    with pytest.raises(InputError) as info:
        ev(path)
    message = str(info.value)
    assert f"{path}:2:" in message
    assert f"(field '{field}')" in message
    assert words in message
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 2, field)


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.json", [GOOD, GOOD, '{"id": "x", "output": '])
    with pytest.raises(InputError) as info:
        ev(path)
    assert f"{path}:3:" in str(info.value) and "invalid JSON" in str(info.value)
    assert (info.value.path, info.value.line) == (str(path), 3)


def test_missing_task_and_empty_file(tmp_path):
    path = write_jsonl(tmp_path / "notask.json", [{k: v for k, v in GOOD.items() if k != "task"}])
    with pytest.raises(InputError, match="task"):
        ev(path)
    assert ev(path, task="NER")["task"] == "NER"
    empty = tmp_path / "empty.json"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="no predictions"):
        ev(empty)


# -- command line ---------------------------------------------------------------------------

def test_cli_writes_report_and_prints_table(tmp_path):
    path = write_jsonl(tmp_path / "ner.json", NER_CRAFTED)
    report_path = tmp_path / "out" / "r.json"
    result = CliRunner().invoke(cli, ["evaluate", str(path), "--report", str(report_path), "-q"])
    assert result.exit_code == 0, result.output
    written = json.loads(report_path.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(ev(path)))
    table = result.stdout
    assert "total" in table and "entity F1" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:] if line and not line.startswith("-")}
    # source, records, outputs, fail %, P, R, F1
    assert rows["total"][1:] == ["4", "5", "20.00", "80.00", "57.14", "66.67"]
    assert rows["A"][1:] == ["2", "3", "0.00", "75.00", "75.00", "75.00"]
    assert rows["B"][1:] == ["2", "2", "50.00", "100.00", "33.33", "50.00"]


def test_cli_json_and_options(tmp_path):
    path = write_jsonl(tmp_path / "p.json", [rec("r", "S", [{"entity": "A", "entity_type": "人物"}],
                                                 '{"人物": ["A", "A", "B", "C", "D", "E", "F"]}')])
    result = CliRunner().invoke(cli, ["evaluate", str(path), "--json", "-q", "--reference-rounding"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # tp 1, pred 7, gold 1 -> 14.29 / 100 / 25.01 with the reference's rounding (see above)
    assert prf(report["metrics"]["entity"]) == (14.29, 100.0, 25.01)
    # the reference's flag names: --path1, --match_mode normal|set
    result = CliRunner().invoke(cli, ["evaluate", "--path1", str(path), "--match_mode", "set", "--json", "-q"])
    report = json.loads(result.stdout)
    # set: pred {A..F} = 6, tp 1 -> P 16.67, R 100
    assert report["match"] == "set" and report["metrics"]["entity"]["pred"] == 6


def test_cli_bad_input_is_one_line_error(tmp_path):
    path = write_jsonl(tmp_path / "bad.json", [{k: v for k, v in GOOD.items() if k != "output"}])
    result = CliRunner().invoke(cli, ["evaluate", str(path), "-q"])
    assert result.exit_code == 1
    assert f"{path}:1:" in result.output and "field 'output'" in result.output
    assert "Traceback" not in result.output


def test_kgc_entry_point(tmp_path):
    path = write_jsonl(tmp_path / "ner.json", NER_CRAFTED)
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "evaluate", str(path), "--json", "-q"],
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["metrics"]["entity"]["tp"] == 4


def test_eea_answers_in_iepile_form_score_arguments():
    """IEPile's EEA answers list {role: value} per event, without trigger/arguments keys."""
    from kgcore.plugins import get_host

    task = get_host().registry.load("task", "EEA")()
    found = task.predicted({"组织关系-裁员": [{"裁员方": "猛龙", "时间": "NAN", "裁员人数": ["3人", "4人"]}]})
    assert sorted(found["argument"]) == [("组织关系-裁员", "3人", "裁员人数"), ("组织关系-裁员", "4人", "裁员人数"),
                                         ("组织关系-裁员", "猛龙", "裁员方")]
