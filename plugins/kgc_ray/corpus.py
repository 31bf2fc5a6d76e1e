"""Corpora for the Ray engine: documents read from text, JSONL and Parquet files or folders of them,
checked whole before any model runs, planned into shards (ranges of lines or rows that a worker reads
itself), and long documents cut into chunks whose character offsets are kept."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kgcore import InputError

SUFFIXES = {".txt": "text", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?。！？;；])\s+|(?<=[。！？；])"), re.compile(r"\s+"))


@dataclass(frozen=True)
class Fields:
    """Where a record keeps its text and, optionally, its id (``None``: the id is made from the text)."""

    text: str = "text"
    id: str | None = "id"


@dataclass(frozen=True)
class Shard:
    """``count`` documents of one file from ``offset`` (a byte offset; Parquet: a row within row group
    ``group``); ``line`` is the first one's line (or row) number."""

    number: int
    path: str
    kind: str
    offset: int
    line: int
    count: int
    group: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        return cls(**json.loads(text))


def corpus_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """``(file, kind)`` of the given files and of the text, JSONL and Parquet files under given folders."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            inner = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not inner:
                raise InputError(f"no {', '.join(SUFFIXES)} files in this folder", path=str(path))
            found += [(p, SUFFIXES[p.suffix.lower()]) for p in inner]
        elif path.is_file():
            found.append((path, SUFFIXES.get(path.suffix.lower(), "text")))
        else:
            raise InputError("no such file or folder", path=str(path))
    return found


def plan_shards(files: list[tuple[Path, str]], shard_size: int, required: str) -> list[Shard]:
    """Shards of at most ``shard_size`` documents, after checking every line (or row): each JSON line an
    object whose ``required`` field is a non-empty string. A bad one stops the plan with file, line, field."""
    shards: list[Shard] = []
    for path, kind in files:
        spans = _parquet_spans(path, required) if kind == "parquet" else _line_spans(path, kind, required)
        for offset, line, count, group in _grouped(spans, shard_size):
            shards.append(Shard(len(shards), str(path), kind, offset, line, count, group))
    return shards


def _line_spans(path: Path, kind: str, required: str) -> Iterator[tuple[int, int, int]]:
    """``(byte offset, line, row group 0)`` of each document line."""
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if raw.strip():
                if kind == "jsonl":
                    _check_json(raw, path, number, required)
                else:
                    _decode(raw, path, number)
                yield offset, number, 0
            offset += len(raw)


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 ({exc.reason} at byte {exc.start})", path=str(path), line=line) from None


def _check_json(raw: bytes, path: Path, line: int, required: str) -> dict[str, Any]:
    try:
        value = json.loads(_decode(raw, path, line))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=str(path), line=line) from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}", path=str(path), line=line)
    if not isinstance(value.get(required), str) or not value[required].strip():
        raise InputError("missing or empty text", path=str(path), line=line, field=required)
    return value


def _parquet_spans(path: Path, required: str) -> Iterator[tuple[int, int, int]]:
    """``(row in its group, row number, row group)`` of each row, after checking the text column."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if required not in parquet.schema_arrow.names:
        raise InputError(f"no column '{required}' (columns: {', '.join(parquet.schema_arrow.names)})",
                         path=str(path), field=required)
    row = 0
    for group in range(parquet.num_row_groups):
        column = parquet.read_row_group(group, columns=[required]).column(required)
        empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column.cast("string")), ""))
        bad = pc.index(empty, True).as_py()
        if bad >= 0:
            raise InputError("missing or empty text", path=str(path), line=row + bad + 1, field=required)
        for index in range(len(column)):
            row += 1
            yield index, row, group


def _grouped(spans: Iterable[tuple[int, int, int]], size: int) -> Iterator[tuple[int, int, int, int]]:
    first, count = None, 0
    for offset, line, group in spans:
        if first is not None and (count == size or group != first[2]):
            yield first[0], first[1], count, first[2]
            first, count = None, 0
        first = first or (offset, line, group)
        count += 1
    if first is not None:
        yield first[0], first[1], count, first[2]


def read_shard(shard: Shard) -> list[tuple[int, dict[str, Any]]]:
    """``(line, record)`` of a shard's documents; a text file's lines are ``{"text": line}``."""
    if shard.kind == "parquet":
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(shard.path).read_row_group(shard.group).slice(shard.offset, shard.count).to_pylist()
        return [(shard.line + i, row) for i, row in enumerate(rows)]
    out: list[tuple[int, dict[str, Any]]] = []
    with open(shard.path, "rb") as fh:
        fh.seek(shard.offset)
        for number, raw in enumerate(fh, shard.line):
            if len(out) == shard.count:
                break
            if raw.strip():
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
                out.append((number, json.loads(text) if shard.kind == "jsonl" else {"text": text}))
    return out


def chunk_spans(text: str, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of consecutive chunks of at most ``size`` characters that cover ``text``: cut at
    the last paragraph break before the limit, else the last sentence end, else the last space."""
    spans, start = [], 0
    while len(text) - start > size:
        window = text[start:start + size]
        cut = next((m.end() for pattern in _BREAKS for m in [*pattern.finditer(window)][-1:] if m.end() > size // 4),
                   size)
        spans.append((start, start + cut))
        start += cut
    return [*spans, (start, len(text))] if text else [(0, 0)]
