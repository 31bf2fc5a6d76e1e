"""One way through the pipeline: convert → prompt → generate → parse → post-process → score.

``extract`` and ``evaluate`` read answers through the same function, records remember the task
options they were converted with, and an instruction's schema field is read back by the schema
reader (no per-task inverse)."""

from __future__ import annotations

import inspect
import json

import pytest
from conftest import DATASETS, DEEPKE

import kgcore
from kgcore import hookimpl
from kgcore.cli import main
from kgcore.conversion import Converter, resolve_instruction
from kgcore.jsonl import read_jsonl
from kgcore.plugins import PluginHost
from kgcore.prediction import RecordRequests
from kgcore.prompt import RequestBuilder

TASKS = ["NER", "RE", "SPO", "EE", "EET", "EEA", "KG"]


class Shout:
    """Upper-cases every mention and notes which function called it."""

    def __init__(self):
        self.stacks: list[list[str]] = []

    @hookimpl
    def kgc_postprocess_prediction(self, task, record, prediction):
        self.stacks.append([frame.function for frame in inspect.stack()])
        return {label: [v.upper() for v in values] for label, values in prediction.items()}


def test_extract_and_evaluate_post_process_through_one_function(tmp_path, smollm2_gguf):
    host = PluginHost.discover()
    shout = Shout()
    host.register(shout, name="shout")
    with kgcore.Extractor("NER", labels=["person", "location"], host=host) as extract:
        result = extract("Angela Merkel visited Paris.")
    assert result.result == {"person": ["ANGELA MERKEL"], "location": ["PARIS"]}
    assert ("PARIS", "type", "location") in result.triples

    record = {"id": "1", "task": "NER", "source": "s", "label": json.dumps([{"entity": "PARIS", "entity_type": "location"}]),
              "output": '{"location": ["Paris"]}'}
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert kgcore.evaluate(path, progress=False, host=host)["metrics"]["entity"]["F1"] == 100.0  # only after SHOUT
    extract_stack, evaluate_stack = shout.stacks
    assert "_run" in extract_stack and "_evaluate" in evaluate_stack
    for stack in shout.stacks:  # both through read_answer, then the host's postprocess
        assert stack.index("postprocess") < stack.index("read_answer")


def test_extraction_has_spans_found_in_the_text(smollm2_gguf):
    with kgcore.Extractor("NER", labels=["person", "location"]) as extract:
        (result,) = extract.extract(["Paris, Paris and Angela Merkel."])
    spans = {(s.start, s.end, s.text, s.label) for s in result.spans}
    assert {(0, 5, "Paris", "location"), (7, 12, "Paris", "location")} <= spans
    assert all(result.text[s.start:s.end] == s.text for s in result.spans)
    assert kgcore.extraction.find_spans("abc", [("Franklin", "location")]) == []  # a name the text lacks: no span


def test_converted_records_carry_their_task_options(tmp_path):
    out = tmp_path / "re.json"
    task = kgcore.load_task("RE", {"relation_keys": "subject_object"})
    kgcore.convert(DATASETS / "conll04" / "dev.json", out, task=task, schema=DATASETS / "conll04" / "schema.json",
                   options=kgcore.ConvertOptions(split="test", language="en"), limit=3, progress=False)
    records = [r for _, r in read_jsonl(out)]
    assert {json.dumps(r["task_options"]) for r in records} == {'{"relation_keys": "subject_object"}'}
    # Records converted with the defaults are unchanged: no task_options field.
    kgcore.convert(DATASETS / "conll04" / "dev.json", out, task="RE", schema=DATASETS / "conll04" / "schema.json",
                   options=kgcore.ConvertOptions(split="test", language="en"), limit=3, progress=False)
    assert all("task_options" not in r for _, r in read_jsonl(out))


def test_predict_asks_for_the_keys_the_records_were_converted_with(tmp_path, smollm2_gguf):
    """--relation-keys subject_object at convert time: predict's answer schema and answers use subject/object."""
    test = tmp_path / "test.json"
    with pytest.raises(SystemExit) as exit_code:  # the flag of earlier versions, read as -T relation_keys=...
        main(["convert", "-t", "RE", "--relation-keys", "subject_object", "--language", "en", "--split", "test",
              "-i", str(DATASETS / "conll04" / "dev.json"), "-s", str(DATASETS / "conll04" / "schema.json"),
              "--limit", "2", "-q", "-o", str(test)])
    assert exit_code.value.code == 0
    records = [r for _, r in read_jsonl(test)]
    request = RecordRequests()(records[0])
    pair = next(iter(request.json_schema["properties"].values()))["items"]
    assert pair["required"] == ["subject", "object"]

    backend = kgcore.load_backend("llamacpp", {"n_ctx": "4096"})
    try:
        kgcore.predict(test, tmp_path / "pred.json", backend, params=kgcore.GenerationParams(max_new_tokens=200),
                       progress=False)
    finally:
        backend.close()
    pairs = [p for _, r in read_jsonl(tmp_path / "pred.json") for ps in json.loads(r["output"]).values() for p in ps]
    assert pairs and all(set(p) == {"subject", "object"} for p in pairs)


@pytest.mark.parametrize("descriptions", [False, True])
@pytest.mark.parametrize("task_name", TASKS)
def test_instruction_schema_reads_back_as_its_items(task_name, descriptions):
    """What ``predict`` recovers from an instruction string is what ``extract`` holds in memory."""
    task = kgcore.load_task(task_name)
    schema = kgcore.load_schema(DEEPKE / task_name / "schema.json", task)
    converter = Converter(task, schema, kgcore.ConvertOptions(split="test", descriptions=descriptions),
                          resolve_instruction(task_name, "zh", None, kgcore.get_host()))
    checked = 0
    for index, (_, record) in enumerate(read_jsonl(DEEPKE / task_name / "sample.json")):
        record = task.prepare(record)
        for chunk in converter.chunks(task.read(record), index) if record else []:
            recovered = task.items_from_schema(json.loads(chunk.instruction)["schema"])
            assert [(i.key, i.roles) for i in recovered] == [(i.key, i.roles) for i in chunk.items]
            assert task.answer_schema(recovered) == task.answer_schema(chunk.items)
            checked += 1
    assert checked > 0


def test_task_options_are_typed_and_checked():
    assert kgcore.load_task("RE", {"relation_keys": "subject_object"}).options.relation_keys == "subject_object"
    assert kgcore.load_task("EEA", {"eea_test_triggers": "false"}).options.eea_test_triggers is False
    with pytest.raises(kgcore.InputError, match=r"unknown option\(s\) relation_keys for task 'NER'; valid: "
                                                r"mention_order"):
        kgcore.load_task("NER", {"relation_keys": "subject_object"})
    with pytest.raises(kgcore.InputError, match="relation_keys must be head_tail or subject_object"):
        kgcore.load_task("RE", {"relation_keys": "sideways"})


def test_requests_come_from_items_in_memory():
    task = kgcore.load_task("EE")
    schema = kgcore.load_schema(DATASETS / "phee" / "schema.json", task)
    converter = Converter(task, schema, kgcore.ConvertOptions(split="test", language="en"),
                          resolve_instruction("EE", "en", None, kgcore.get_host()))
    (chunk,) = converter.chunks(task.read({"text": "Aspirin caused a rash."}), 0)
    request = RequestBuilder()(chunk.instruction, task, chunk.items)
    assert list(request.json_schema["properties"]) == [l.name for l in schema.labels]
    assert request.messages[-1]["content"] == chunk.instruction and request.prompt is None
    assert RequestBuilder(constrained=False)(chunk.instruction, task, chunk.items).json_schema is None
