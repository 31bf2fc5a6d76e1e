"""Streaming JSON Lines input and output that report the file and line of bad input."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputError


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line, streaming."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=str(path))
    with path.open(encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=str(path), line=number) from None
            if not isinstance(value, dict):
                raise InputError(f"expected a JSON object, got {type(value).__name__}", path=str(path), line=number)
            yield number, value


def count_lines(path: str | os.PathLike) -> int:
    """Number of lines, for progress bars (reads in large binary blocks)."""
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 16), b""))


def dumps(value: Any) -> str:
    """The reference's JSON form: ``ensure_ascii=False`` with default separators."""
    return json.dumps(value, ensure_ascii=False)

