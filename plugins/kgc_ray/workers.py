"""What each Ray actor runs: one model, loaded once, answering whole shards; the job gives a subclass
its settings as the class attribute ``config``.

A call takes a batch of shards (their JSON) and returns, for each, the JSON lines of its results and a
few counts. Nothing is written here: the driver writes a shard when its lines arrive, so a worker killed
mid-shard loses nothing but its own work, which Ray gives to another worker.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import Any

from kgcore import Extractor, KGCError, get_host, load_backend, load_task
from kgcore.conversion import stable_id
from kgcore.extraction import distinct, find_spans
from kgcore.prediction import RecordRequests, answered

from .corpus import Shard, chunk_spans, read_shard


def _rows(shards: list[str], answer) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"shard": [], "lines": [], "counts": [], "error": []}
    for text in shards:
        shard = Shard.from_json(str(text))
        lines, counts = answer(shard, read_shard(shard))
        out["shard"].append(shard.number)
        out["lines"].append("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        out["counts"].append(json.dumps(counts))
        out["error"].append("")
    return out


class Worker:
    """One model per actor, built from the class attribute ``config`` by ``setup``. A kgc error (a
    missing model, a server that keeps failing) comes back as the shard's ``error``, for the driver to
    stop the job with, rather than as a dead actor that Ray would restart or a wrapped traceback."""

    config: dict[str, Any]

    def __init__(self) -> None:
        self.error: KGCError | None = None
        try:
            self.setup(self.config, get_host())
        except KGCError as exc:
            self.error = exc

    def setup(self, config: dict[str, Any], host: Any) -> None:
        raise NotImplementedError

    def answer(self, shard: Shard, records: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict], dict]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        try:
            if self.error is not None:
                raise self.error
            return _rows(list(batch["shard"]), self.answer)
        except KGCError as exc:
            numbers = [Shard.from_json(str(text)).number for text in batch["shard"]]
            return {"shard": numbers, "lines": [""] * len(numbers), "counts": ["{}"] * len(numbers),
                    "error": [str(exc)] * len(numbers)}


def merge(a: Any, b: Any) -> Any:
    """Two chunks' answers for one document as one: lists joined without repeats, objects key by key."""
    if isinstance(a, list) and isinstance(b, list):
        return a + [x for x in b if x not in a]
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{k: merge(a[k], v) if k in a else v for k, v in b.items()}}
    return a if a not in (None, "", "NAN", [], {}) else b


class ExtractWorker(Worker):
    """``kgc extract`` on shards of documents, each cut into chunks of at most ``chunk_chars``."""

    def setup(self, config: dict[str, Any], host: Any) -> None:
        task = load_task(config["task"], config["task_options"], host)
        self.fields, self.chunk_chars = config["fields"], config["chunk_chars"]
        self.with_triples, self.with_raw = config["triples"], config["raw"]
        self.extractor = Extractor(task, config["schema"], labels=config["labels"], backend=config["backend"],
                                   backend_options=config["backend_options"], language=config["language"],
                                   split_num=config["split_num"], style=config["style"], params=config["params"],
                                   batch_size=config["batch_size"],
                                   host=host)
        self.extractor.provenance.update(run=config["run"], time=config["time"])

    def answer(self, shard: Shard, records: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict], dict]:
        pieces = [(d, start, end) for d, (_, record) in enumerate(records)
                  for start, end in chunk_spans(record[self.fields.text], self.chunk_chars)]
        found = defaultdict(list)
        texts = (records[d][1][self.fields.text][start:end] for d, start, end in pieces)
        for (d, start, end), extraction in zip(pieces, self.extractor.extract(texts), strict=True):
            found[d].append(((start, end), extraction))
        lines = [self._line(shard, line, record, found[d]) for d, (line, record) in enumerate(records)]
        counts = {"chunks": len(pieces),
                  "parse_failures": sum(line["parse_failures"] for line in lines)}
        return lines, counts

    def _line(self, shard: Shard, line: int, record: dict[str, Any], chunks: list) -> dict[str, Any]:
        text, task = record[self.fields.text], self.extractor.task
        first = chunks[0][1]
        if len(chunks) > 1:
            for _, extraction in chunks[1:]:
                first.result = distinct(merge(first.result, extraction.result))
                first.raw += extraction.raw
                first.parse_failures += extraction.parse_failures
                first.truncated += extraction.truncated
            first.text = text
            first.triples = task.triples(first.result)
            first.spans = find_spans(text, task.mentions(first.result))
        out = first.as_dict(self.with_triples, self.with_raw)
        given = record.get(self.fields.id) if self.fields.id else None
        out["id"] = str(given) if given not in (None, "") else stable_id(text)
        out["chunks"] = [list(span) for span, _ in chunks]
        out["source"] = f"{shard.path}:{line}"
        return out


class PredictWorker(Worker):
    """``kgc predict`` on shards of converted records: each record plus its ``output``."""

    def setup(self, config: dict[str, Any], host: Any) -> None:
        params = config["params"]
        self.requests = RecordRequests(config["style"], params.constrained, config["task"], config["task_options"],
                                       host, params.quote)
        self.params = replace(params, stop=tuple(dict.fromkeys(params.stop + self.requests.builder.stop)))
        self.backend = load_backend(config["backend"], config["backend_options"], host)
        self.batch_size = config["batch_size"]

    def answer(self, shard: Shard, records: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict], dict]:
        lines, counts = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for i in range(0, len(records), self.batch_size):
            batch = [record for _, record in records[i:i + self.batch_size]]
            for record, generation in zip(batch, self.backend.generate([self.requests(r) for r in batch],
                                                                       self.params), strict=True):
                lines.append(answered(record, generation))
                counts["prompt_tokens"] += generation.prompt_tokens
                counts["completion_tokens"] += generation.completion_tokens
        return lines, counts
