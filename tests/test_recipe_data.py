"""The default adapter's recipe builds its training mixture from every dataset of ../shared/datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import ROOT, SHARED

DATA_SH = ROOT / "docs" / "recipes" / "smollm2-ie" / "data.sh"
PARTS = {("conll2003", "NER"), ("wnut17", "NER"), ("conll04", "RE"), ("nyt", "RE"), ("webnlg", "RE"),
         ("phee", "EE"), ("phee", "EET"), ("phee", "EEA"), ("resume_ner", "NER"), ("msra_ner", "NER")}


def mixture(out: Path, cap: int) -> list[list[str]]:
    """The lines of train.json and dev.json that data.sh writes to ``out`` with ``CAP=cap``."""
    env = {**os.environ, "CAP": str(cap), "KGC_SHARED": str(SHARED),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # this interpreter's kgc
    done = subprocess.run(["bash", str(DATA_SH), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return [(out / name).read_text(encoding="utf-8").splitlines() for name in ("train.json", "dev.json")]


def test_cap_gives_a_balanced_sample_of_every_dataset_and_task(tmp_path):
    train, dev = mixture(tmp_path / "a", 40)
    counts = Counter((r["source"], r["task"]) for r in map(json.loads, train))
    assert counts == {part: 40 for part in PARTS}
    assert {json.loads(line)["source"] for line in dev} == {name for name, _ in PARTS} - {"msra_ner"}
    assert mixture(tmp_path / "b", 40)[0] == train  # the sample is seeded
