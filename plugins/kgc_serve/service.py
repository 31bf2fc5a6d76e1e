"""What ``kgc serve`` holds while it runs: one backend, one graph, the work queue and its counters."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

from kgcore import Extractor, InputError
from kgcore.backend import Backend, GenerationParams
from kgcore.conversion import stable_id
from kgcore.plugins import PluginHost
from kgcore.prompt import PromptStyle
from kgcore.schema import read_schema
from kgcore.task import load_task

from .metrics import Metrics
from .work import WorkQueue


@dataclass
class ServeConfig:
    """Where the server listens and what it allows (docs/serve.md). Safe by default: loopback only,
    bounded bodies, texts and queue, SPARQL read-only, no cross-origin calls."""

    store: str = "kg"
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    allow_update: bool = False
    max_body_bytes: int = 1_000_000
    max_text_chars: int = 20_000
    max_texts: int = 32
    queue: int = 8
    cors_origins: tuple[str, ...] = ()

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class TaskSpec:
    """One task of an extraction request and its labels: names (``type:role1/role2`` for roles), or objects
    of a schema file's ``labels`` (docs/schemas.md)."""

    task: str
    labels: list[str | dict[str, Any]]


@dataclass
class Service:
    """The server's state. Extraction and graph writes run on the work queue's one thread; graph reads
    run beside them."""

    config: ServeConfig
    backend: Backend
    graph: Any  # kgc_graph.Graph
    host: PluginHost
    style: PromptStyle = field(default_factory=PromptStyle)
    params: GenerationParams = field(default_factory=GenerationParams)
    batch_size: int = 8
    queue: WorkQueue = field(init=False)
    metrics: Metrics = field(init=False)
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self.config.queue)
        self.metrics = Metrics(lambda: self.queue.depth)

    def extract(self, texts: list[str], tasks: list[TaskSpec], language: str, ingest: bool) -> dict[str, Any]:
        """Every task over every text (runs on the work queue); with ``ingest``, the results go to the graph."""
        from kgc_graph import Sources

        started = time.perf_counter()
        documents = [{"id": stable_id(text), "text": text, "results": {}} for text in texts]
        extractions, failures = [], 0
        for spec in tasks:
            task = load_task(spec.task, None, self.host)
            named = all(isinstance(label, str) for label in spec.labels)
            schema = None if named else read_schema({"labels": spec.labels}, task, f"the labels of {spec.task}")
            extractor = Extractor(task, schema, labels=spec.labels if named else None, backend=self.backend,
                                  language=language, style=self.style, params=self.params,
                                  batch_size=self.batch_size, host=self.host)
            for doc, extraction in zip(documents, extractor.extract(texts)):
                line = extraction.as_dict(with_raw=True)
                doc["results"][spec.task] = {k: line[k] for k in ("result", "triples", "spans", "parse_failures",
                                                                   "truncated", "raw")}
                failures += extraction.parse_failures
                extractions.append(extraction)
        self.metrics.texts.inc(len(texts) * len(tasks))
        self.metrics.parse_failures.inc(failures)
        ingested = None
        if ingest:
            sources = Sources(self.host)
            stats = self.graph.add(sources.extraction(e) for e in extractions)
            ingested = {"added": stats.added, "replaced": stats.replaced, "unchanged": stats.unchanged}
        return {"documents": documents, "parse_failures": failures, "ingested": ingested,
                "provenance": extractions[0].provenance if extractions else {},
                "seconds": round(time.perf_counter() - started, 3)}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend.describe(), "store": self.config.store, "queue": self.queue.depth,
                "queue_capacity": self.config.queue, "uptime_s": round(time.time() - self.started)}

    def close(self) -> None:
        self.queue.close()
        try:
            self.graph.close()
        finally:
            self.backend.close()


def check_texts(texts: list[str], config: ServeConfig) -> None:
    """Refuse (413) texts over the limits, naming which."""
    if len(texts) > config.max_texts:
        raise TooLarge(f"{len(texts)} texts in one request; at most {config.max_texts}")
    for i, text in enumerate(texts):
        if len(text) > config.max_text_chars:
            raise TooLarge(f"text {i} has {len(text):,} characters; at most {config.max_text_chars:,}")
        if not text.strip():
            raise InputError(f"text {i} is empty")


class TooLarge(Exception):
    """A request over the server's limits (413)."""
