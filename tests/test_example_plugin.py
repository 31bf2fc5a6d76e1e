"""The example plugin in docs/examples, installed with pip into a fresh virtual environment.

The venv sees this environment's packages (kgcore included, editable or not) through a ``.pth``
file, so nothing is downloaded; the plugin itself is a real pip install with its entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from kgcore.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "kgc-example-plugin"
TERM_EN = ("You are an expert in term extraction. Extract from the input the terms of each category defined "
           "in the schema; return an empty list for a category with no term. Answer in JSON string format.")
TEXTS = ["We fine-tune BERT on SQuAD and report exact match.",
         "On Cora, graph neural networks reach high accuracy.",
         "The weather was pleasant that afternoon."]


class Env:
    """A venv with the example plugin installed, and a way to run its ``kgc``."""

    def __init__(self, root: Path):
        self.root, self.work = root, root / "src"
        self.python = root / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KGC_", "PIP_"))}

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.python), *args], cwd=self.work, env={**self.env, **env},
                                capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def kgc(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return self.run("-m", "kgcore.cli", *args, check=check, **env)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Env:
    env = Env(tmp_path_factory.mktemp("example"))
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    shutil.copytree(EXAMPLE, env.work, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv.EnvBuilder(with_pip=False).create(env.root / "venv")
    site_dir = Path(env.run("-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip())
    # addsitedir (not a bare path) also runs the .pth files there, e.g. an editable install's finder.
    outer = [p for p in sys.path if p and os.path.isdir(p)]
    (site_dir / "_kgc_outer_env.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in outer))
    pip = env.run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                  "--disable-pip-version-check", str(env.work), check=False)
    assert pip.returncode == 0, f"{pip.stderr}\n(building needs setuptools>=70.1 or the wheel package here)"
    assert (site_dir / "kgc_example" / "__init__.py").is_file()
    return env


def test_plugins_lists_the_example(example):
    listing = example.kgc("plugins", "--json", KGC_STRICT_PLUGINS="1")  # every plugin loads cleanly
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    row = rows["example"]
    assert (row["distribution"], row["version"], row["module"], row["error"]) == \
        ("kgc-example-plugin", "0.1.0", "kgc_example", None)
    assert row["hooks"] == ["kgc_register_instructions", "kgc_register_scorers", "kgc_register_tasks"]
    assert sorted(row["components"]) == ["instruction:TERM.en", "scorer:lenient", "task:TERM"]
    assert "task:NER" in rows["kgc.tasks"]["components"]  # the built-ins are still there

    table = example.kgc("plugins").stdout
    assert "kgc-example-plugin 0.1.0 3 components" in " ".join(table.split())
    assert "task:TERM, instruction:TERM.en, scorer:lenient" in table
    assert "TERM     term (keyword) extraction by category  [example]" in example.kgc("tasks").stdout
    assert example.kgc("templates", "--show", "TERM.en").stdout.splitlines()[0] == TERM_EN
    # Installed into the venv only: this interpreter does not see it.
    assert "example" not in PluginHost.discover().plugins


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_convert_train(example):
    result = example.kgc("convert", "-t", "TERM", "--language", "en", "-i", "data/sample.json",
                         "-s", "data/schema.json", "-o", "train.json", "-q")
    assert "3 records -> 3 instructions (0 skipped)" in result.stderr
    records = _read(example.work / "train.json")
    answers = [{"dataset": ["SQuAD"], "method": ["BERT"], "metric": ["exact match"]},
               {"dataset": ["Cora"], "method": ["graph neural networks"], "metric": ["accuracy"]},
               {"dataset": [], "method": [], "metric": []}]
    assert [r["task"] for r in records] == ["TERM"] * 3
    assert [r["source"] for r in records] == ["data"] * 3
    assert [json.loads(r["instruction"]) for r in records] == [
        {"instruction": TERM_EN, "schema": ["dataset", "method", "metric"], "input": t} for t in TEXTS]
    assert [json.loads(r["output"]) for r in records] == answers


def test_task_options(example):
    result = example.kgc("convert", "-t", "TERM", "--language", "en", "-i", "data/sample.json", "-s", "data/schema.json",
                         "-T", "order=position", "-o", "positions.json", "-q")
    assert "3 records -> 3 instructions" in result.stderr
    records = _read(example.work / "positions.json")
    assert {json.dumps(r["task_options"]) for r in records} == {'{"order": "position"}'}
    assert json.loads(records[1]["output"])["dataset"] == ["Cora"]  # first in the text, last as annotated
    assert "order                    str" in example.kgc("tasks", "--options", "TERM").stdout
    bad = example.kgc("convert", "-t", "TERM", "-i", "data/sample.json", "-s", "data/schema.json", "--colour", "red",
                      check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith("unknown option(s) colour for task 'TERM'; valid: order")


@pytest.fixture(scope="module")
def predictions(example) -> Path:
    """Test records with hand-written model outputs (case, spacing, a code fence, duplicates)."""
    example.kgc("convert", "-t", "TERM", "--language", "en", "--split", "test", "-i", "data/sample.json",
                "-s", "data/schema.json", "-o", "test.json", "-q")
    outputs = {
        TEXTS[0]: '{"dataset": ["squad"], "method": ["BERT", "RoBERTa"], "metric": ["Exact  Match"]}',
        TEXTS[1]: '```json\n{"dataset": ["Cora"], "method": [" Graph Neural Networks "], "metric": []}\n```',
        TEXTS[2]: '{"dataset": [], "method": ["weather", "Weather "], "metric": []}',
    }
    records = _read(example.work / "test.json")
    assert [json.loads(r["instruction"])["input"] for r in records] == TEXTS
    path = example.work / "predictions.json"
    path.write_text("".join(json.dumps({**r, "output": outputs[json.loads(r["instruction"])["input"]]}) + "\n"
                            for r in records), encoding="utf-8")
    return path


def _term(example, *args: str) -> dict:
    report = json.loads(example.kgc("evaluate", "predictions.json", "--json", "-q", *args).stdout)
    assert (report["task"], report["outputs"], report["parse_failures"]) == ("TERM", 3, 0)
    return report["metrics"]["term"]


def test_evaluate_lenient(example, predictions):
    # gold: 3 + 3 + 0 = 6 terms. Lenient matches: text 1 BERT, squad, exact match (RoBERTa is wrong);
    # text 2 Cora, graph neural networks; text 3 two false "weather"s. tp = 5, pred = 4 + 2 + 2 = 8.
    lenient = _term(example, "--scorer", "lenient")
    assert (lenient["tp"], lenient["gold"], lenient["pred"]) == (5, 6, 8)
    assert lenient["P"] == pytest.approx(62.5)
    assert lenient["R"] == pytest.approx(500 / 6)
    assert lenient["F1"] == pytest.approx(200 * 5 / 14)  # 2PR/(P+R) = 200 tp / (gold + pred)

    # set matching drops the repeated "weather" of text 3: pred = 7.
    as_set = _term(example, "--scorer", "lenient", "--match", "set")
    assert (as_set["tp"], as_set["gold"], as_set["pred"]) == (5, 6, 7)
    assert as_set["F1"] == pytest.approx(200 * 5 / 13)

    # Rounded like the reference: P 62.5, R 83.33, F1 = 2 * 62.5 * 83.33 / 145.83 = 71.4273 -> 71.43.
    assert _term(example, "--scorer", "lenient", "--reference-rounding")["F1"] == 71.43

    # The built-in exact scorer only credits BERT and Cora.
    exact = _term(example, "--scorer", "f1")
    assert (exact["tp"], exact["gold"], exact["pred"]) == (2, 6, 8)
    assert exact["F1"] == pytest.approx(200 * 2 / 14)

    table = example.kgc("evaluate", "predictions.json", "--scorer", "lenient", "-q").stdout
    total = next(line for line in table.splitlines() if line.startswith("total"))
    assert total.split()[-3:] == ["62.50", "83.33", "71.43"]
