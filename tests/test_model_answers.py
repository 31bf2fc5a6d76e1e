"""The default model's answers for every task, pinned: convert → predict → evaluate on the first records of
public test splits (English and Chinese), and extract → triples on fixed texts, with the real default model
(SmolLM2-135M-Instruct + kgc's IE adapter, llama.cpp, greedy). The answers are the model's exact strings,
so a change to prompts, templates, grammars, parsing or scoring that alters any of them fails here.

The pinned answers live in tests/data/model_answers.json. After a deliberate change of the default model
or its prompts, look at the differences, then write them again with

    python tests/test_model_answers.py --pin
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import DATASETS, DEEPKE  # noqa: E402

import kgcore  # noqa: E402
from kgcore import ConvertOptions, Extractor, evaluate, load_backend, predict  # noqa: E402
from kgcore.schema import read_schema  # noqa: E402

PINNED = Path(__file__).resolve().parent / "data" / "model_answers.json"

#: name: (task, source file, schema, records, language)
PREDICT = {
    "NER-en": ("NER", DATASETS / "conll2003" / "test.json", DATASETS / "conll2003" / "schema.json", 4, "en"),
    "NER-zh": ("NER", DATASETS / "msra_ner" / "test.json", DATASETS / "msra_ner" / "schema.json", 4, "zh"),
    "RE-en": ("RE", DATASETS / "conll04" / "test.json", DATASETS / "conll04" / "schema.json", 3, "en"),
    "EE-en": ("EE", DATASETS / "phee" / "test.json", DATASETS / "phee" / "schema.json", 2, "en"),
    "EET-en": ("EET", DATASETS / "phee" / "test.json", DATASETS / "phee" / "schema.json", 2, "en"),
    "EEA-en": ("EEA", DATASETS / "phee" / "test.json", DATASETS / "phee" / "schema.json", 2, "en"),
    "KG-zh": ("KG", DEEPKE / "KG" / "sample.json", DEEPKE / "KG" / "schema.json", 2, "zh"),
    "SPO-zh": ("SPO", DEEPKE / "SPO" / "sample.json", DEEPKE / "SPO" / "schema.json", 2, "zh"),
}

#: name: (task, labels, text)
EXTRACT = {
    "EET-en": ("EET", ["adverse event", "potential therapeutic event"],
               "The patient developed a severe rash after starting carbamazepine."),
    "SPO-en": ("SPO", [{"name": "work for", "subject_type": "person", "object_type": "organization"},
                       {"name": "live in", "subject_type": "person", "object_type": "location"}],
               "Tim Cook works for Apple and lives in Palo Alto."),
    "KG-en": ("KG", [{"name": "person", "attributes": ["birth place", "employer"]}],
              "Marie Curie was born in Warsaw and worked for the University of Paris."),
}


def run_predict(name: str, backend, work: Path) -> dict:
    task, source, schema, records, language = PREDICT[name]
    src, test, pred = (work / f"{name}.{kind}.json" for kind in ("src", "test", "pred"))
    src.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:records]), encoding="utf-8")
    kgcore.convert(src, test, task=task, schema=schema, options=ConvertOptions(split="test", language=language),
                   progress=False)
    predict(test, pred, backend, progress=False)
    report = evaluate(pred, progress=False)
    return {"outputs": [json.loads(line)["output"] for line in pred.read_text(encoding="utf-8").splitlines()],
            "metrics": {metric: {k: values[k] for k in ("P", "R", "F1", "tp", "gold", "pred")}
                        for metric, values in report["metrics"].items()},
            "parse_failures": report["parse_failures"]}


def run_extract(name: str, backend) -> dict:
    task, labels, text = EXTRACT[name]
    if all(isinstance(label, str) for label in labels):
        extractor = Extractor(task, labels=labels, backend=backend)
    else:
        extractor = Extractor(task, read_schema({"labels": labels}, kgcore.load_task(task), name), backend=backend)
    with extractor as extract:
        result = extract(text)
    return {"result": result.result, "triples": [list(t) for t in result.triples],
            "parse_failures": result.parse_failures}


@pytest.fixture(scope="module")
def backend(smollm2_gguf):
    backend = load_backend(None, {})
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def pinned() -> dict:
    return json.loads(PINNED.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PREDICT))
def test_predict_and_evaluate_give_the_pinned_answers(name, backend, pinned, tmp_path):
    expected = pinned["predict"][name]
    assert any(_has_content(json.loads(o)) for o in expected["outputs"] if _is_json(o)), (
        f"{name}: the pinned answers are all empty; a test of nothing")
    got = run_predict(name, backend, tmp_path)
    assert got["outputs"] == expected["outputs"], name
    assert (got["metrics"], got["parse_failures"]) == (expected["metrics"], expected["parse_failures"]), name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXTRACT))
def test_extract_gives_the_pinned_triples(name, backend, pinned):
    expected = pinned["extract"][name]
    assert expected["triples"], f"{name}: the pinned answer has no triple; a test of nothing"
    assert run_extract(name, backend) == expected


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _has_content(value) -> bool:
    if isinstance(value, dict):
        return any(_has_content(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_content(v) for v in value)
    return isinstance(value, str) and value not in ("", "NAN")


def pin() -> None:
    import tempfile

    backend = load_backend(None, {})
    with tempfile.TemporaryDirectory() as work:
        answers = {"predict": {name: run_predict(name, backend, Path(work)) for name in sorted(PREDICT)},
                   "extract": {name: run_extract(name, backend) for name in sorted(EXTRACT)}}
    backend.close()
    PINNED.parent.mkdir(exist_ok=True)
    PINNED.write_text(json.dumps(answers, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PINNED}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--pin"]:
        sys.exit(__doc__)
    pin()
