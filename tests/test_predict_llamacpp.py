"""Prediction and extraction end to end on the real default model (SmolLM2 GGUF with kgc's IE adapter)
through llama.cpp: its answers hold entities, so comparisons compare something."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import DATASETS

import kgcore
from kgcore.backend import GenerationParams
from kgcore.jsonl import read_jsonl
from kgcore.backend import load_backend
from kgcore.prediction import RecordRequests, predict, record_key

LABELS = "person,location,organization,miscellaneous"


@pytest.fixture(scope="module")
def conll_test(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conll") / "test.json"
    kgcore.convert(DATASETS / "conll2003" / "test.json", out, task="NER", schema=DATASETS / "conll2003" / "schema.json",
                   options=kgcore.ConvertOptions(split="test", language="en"), progress=False)
    return out


@pytest.fixture(scope="module")
def llamacpp(smollm2_gguf):
    backend = load_backend("llamacpp", {"n_ctx": "2048"})  # the default model: base GGUF + IE adapter
    yield backend
    backend.close()


def _subset(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("".join(src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return dst


def test_extract_cli_prints_schema_valid_json(smollm2_gguf):
    done = subprocess.run(
        [sys.executable, "-m", "kgcore.cli", "extract", "--backend", "llamacpp", "--task", "NER", "--labels", "person,location,organization",
         "Barack Obama visited the Siemens factory in Berlin on Monday."],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    task = kgcore.load_task("NER")
    schema = task.answer_schema(task.items_from_schema(["person", "location", "organization"]))
    jsonschema.validate(line["result"], schema)
    assert line["parse_failures"] == 0
    assert all(t[1] == "type" and t[2] in {"person", "location", "organization"} for t in line["triples"])
    assert ["Barack Obama", "type", "person"] in line["triples"]


def test_constrained_predictions_always_parse(tmp_path, conll_test, llamacpp):
    subset = _subset(conll_test, tmp_path / "in.json", 24)
    meta = predict(subset, tmp_path / "pred.json", llamacpp, params=GenerationParams(max_new_tokens=128),
                   progress=False)
    assert meta["records"] == 24 and meta["completion_tokens"] > 0
    report = kgcore.evaluate(tmp_path / "pred.json", progress=False)
    assert report["outputs"] == 24 and report["parse_failures"] == 0
    assert report["metrics"]["entity"]["tp"] >= 12  # the adapter finds entities: the answers are not empty lists
    meta_file = json.loads((tmp_path / "pred.json.meta.json").read_text())
    assert meta_file["backend"] == "llamacpp" and "llama_cpp_python" in meta_file["versions"]


def test_requests_give_each_chunk_its_answer_schema(conll_test):
    record = next(r for _, r in read_jsonl(conll_test))
    request = RecordRequests()(record)
    assert request.prompt is None and request.messages[-1]["content"] == record["instruction"]
    assert request.json_schema["required"] == json.loads(record["instruction"])["schema"]


def test_kill_and_resume_gives_one_output_per_record(tmp_path, conll_test, smollm2_gguf):
    subset = _subset(conll_test, tmp_path / "in.json", 12)
    command = [sys.executable, "-m", "kgcore.cli", "predict", "-q", "-i", str(subset), "--backend", "llamacpp",
               "--batch-size", "2", "--max-new-tokens", "96"]
    reference = tmp_path / "uninterrupted.json"
    subprocess.run(command + ["-o", str(reference)], check=True, capture_output=True, timeout=600)

    resumed = tmp_path / "resumed.json"
    process = subprocess.Popen(command + ["-o", str(resumed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and (not resumed.exists() or resumed.read_bytes().count(b"\n") < 4):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = resumed.read_bytes().count(b"\n")
    assert 4 <= partial < 12, "the kill should land mid-run"
    subprocess.run(command + ["-o", str(resumed)], check=True, capture_output=True, timeout=600)

    ours = [r for _, r in read_jsonl(resumed)]
    theirs = {record_key(r): r["output"] for _, r in read_jsonl(reference)}
    assert len(ours) == 12 and len({record_key(r) for r in ours}) == 12
    assert {record_key(r): r["output"] for r in ours} == theirs
    assert sum(any(json.loads(answer).values()) for answer in theirs.values()) >= 6  # answers with entities
