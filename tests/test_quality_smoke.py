"""A smoke run of benchmarks/quality.py: the default model end to end on a few real test records."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

from kgcore.prediction import record_key


def test_quality_benchmark_smoke(tmp_path, smollm2_gguf):
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--datasets", "conll2003",
                           "resume_ner", "--configs", "zero-shot+json", "adapter+json", "--limit", "2",
                           "--max-new-tokens", "128", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert [(r["dataset"], r["config"]) for r in rows] == [
        ("conll2003", "zero-shot+json"), ("conll2003", "adapter+json"),
        ("resume_ner", "zero-shot+json"), ("resume_ner", "adapter+json")]
    for row in rows:  # zero-shot fills its lists up to the token limit: cut answers count, nothing else fails
        assert row["records"] == row["instructions"] == 2
        assert row["parse_failure_rate"] * row["instructions"] / 100 == row["truncated"]
    assert rows[1]["parse_failure_rate"] == 0.0  # the adapter's answers to CoNLL-2003 fit the limit
    f1 = {(r["dataset"], r["config"]): r["f1"]["entity"] for r in rows}
    for dataset in ("conll2003", "resume_ner"):  # the adapter is what finds entities
        assert f1[dataset, "adapter+json"] > f1[dataset, "zero-shot+json"], f1
    assert "| conll2003 | NER | en | adapter+json | 2 |" in done.stdout


def test_a_stopped_quality_run_resumes_where_it_stopped(tmp_path, smollm2_gguf):
    work, out = tmp_path / "runs", tmp_path / "rows.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--datasets", "conll2003", "--configs",
               "adapter+json", "--limit", "3", "--work", str(work), "--json", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    pred = work / "conll2003.adapter+json" / "pred.json"
    lines = pred.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 3 and json.loads(out.read_text())[0]["resumed_from"] == 0
    pred.write_text(lines[0] + lines[1][:40], encoding="utf-8")  # stopped while writing the second answer

    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    row = json.loads(out.read_text())[0]
    assert (row["resumed_from"], row["records"], row["instructions"]) == (1, 3, 3)
    again = pred.read_text(encoding="utf-8").splitlines(keepends=True)
    assert again[0] == lines[0] and len(again) == 3  # the kept answer stays, the torn one is answered anew
    assert sorted(record_key(json.loads(line)) for line in again) == sorted(record_key(json.loads(line)) for line in lines)

    done = subprocess.run(command, capture_output=True, text=True, timeout=600)  # nothing left to answer
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())[0]["records_per_s"] is None and "| 0.0 | — |" in done.stdout
