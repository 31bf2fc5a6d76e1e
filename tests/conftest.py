"""Shared test fixtures: the ../shared data folder beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def find_shared() -> Path:
    for candidate in (os.environ.get("KGC_SHARED"), ROOT.parent / "shared", ROOT / "shared"):
        if candidate and (Path(candidate) / "fixtures" / "deepke").is_dir():
            return Path(candidate)
    raise RuntimeError("the shared data folder (../shared) is missing; set KGC_SHARED")


SHARED = find_shared()
DEEPKE = SHARED / "fixtures" / "deepke"
DATASETS = SHARED / "datasets"


@pytest.fixture
def deepke() -> Path:
    return DEEPKE


@pytest.fixture
def datasets() -> Path:
    return DATASETS
