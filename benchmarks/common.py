"""Shared helpers for the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import kgcore

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KGC_SHARED", ROOT.parent / "shared"))
CONLL = SHARED / "datasets" / "conll2003"


def conll_test_instructions(n: int | None = None) -> Path:
    """CoNLL-2003 test sentences converted to English NER test instructions (first ``n``)."""
    out = Path(tempfile.mkdtemp(prefix="kgc-bench-")) / "test.json"
    kgcore.convert(CONLL / "test.json", out, task="NER", schema=CONLL / "schema.json",
                   options=kgcore.ConvertOptions(split="test", language="en"), progress=False)
    if n is not None:
        lines = out.read_text(encoding="utf-8").splitlines(keepends=True)[:n]
        out.write_text("".join(lines), encoding="utf-8")
    return out


def machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
