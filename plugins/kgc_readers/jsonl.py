"""The ``sample.json`` form: one JSON object per line with ``text`` and task annotations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kgcore.jsonl import read_jsonl


def read(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)``; extra keys such as ``id`` are kept."""
    yield from read_jsonl(path)
