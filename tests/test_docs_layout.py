"""The layout maps of CONTRIBUTING.md and docs/architecture.md are true to the tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted(p.stem for p in (ROOT / "kgcore").glob("*.py") if p.stem != "__init__")
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]


def test_contributing_names_every_core_module_and_plugin():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert [m for m in CORE if f"`{m}`" not in text] == []
    assert [p for p in PACKAGES if p != "kgcore" and f"`{p}`" not in text] == []


def test_architecture_reading_order_covers_the_core():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    order = text[text.index("## Reading order of the core"):text.index("## The cut")]
    assert [m for m in CORE if f"`{m}.py`" not in order] == []
    plugins = text[text.index("## Plugins"):]
    assert [p for p in PACKAGES if p != "kgcore" and f"`{p}`" not in plugins] == []
