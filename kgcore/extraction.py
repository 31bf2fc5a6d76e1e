"""``kgc extract``: raw text to structured results, triples and character spans, through any backend.

An :class:`Extractor` turns each text into one instruction per schema chunk, as ``kgc convert --split
test`` does, and reads the answers back (:func:`kgcore.parsing.read_answer`), merged per text.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .backend import Backend, GenerationParams, load_backend
from .conversion import Converter, resolve_instruction, stable_id
from .errors import InputError
from .parsing import read_answer
from .plugins import PluginHost, get_host
from .prompt import PromptStyle, RequestBuilder
from .schema import Role, Schema
from .task import ConvertOptions, Task, load_task

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Span:
    """Where a quoted string occurs in the text: ``text[start:end]``, under the answer's ``label``."""

    start: int
    end: int
    text: str
    label: str


@dataclass
class Extraction:
    """The result for one text: the merged answer (repeated items dropped), its triples, the spans of
    what it quotes, the raw answers (one per instruction) with how many could not be parsed (of them,
    how many the token limit cut), and where it came from (task, backend, model, run, time and labels)."""

    text: str
    result: dict[str, Any] = field(default_factory=dict)
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    parse_failures: int = 0
    truncated: int = 0
    raw: list[str] = field(default_factory=list)
    task: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, with_triples: bool = True, with_raw: bool = False) -> dict[str, Any]:
        """The JSON line of ``kgc extract``; ``id`` is the text's, as in its converted records."""
        out = {"id": stable_id(self.text), "task": self.task, "text": self.text, "result": self.result,
               "triples": [list(t) for t in self.triples], "spans": [vars(s) for s in self.spans],
               "parse_failures": self.parse_failures, "truncated": self.truncated, "raw": self.raw,
               "provenance": self.provenance}
        return {k: v for k, v in out.items() if (with_triples or k != "triples") and (with_raw or k != "raw")}


def distinct(value: Any) -> Any:
    """``value`` with repeated items of its lists (at any depth) dropped, first occurrences kept."""
    if isinstance(value, dict):
        return {k: distinct(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [distinct(v) for v in value]
        return [v for i, v in enumerate(items) if v not in items[:i]]
    return value


def find_spans(text: str, mentions: Iterable[tuple[str, str]]) -> list[Span]:
    """Every occurrence of each ``(string, label)`` in ``text``, in text order; strings it lacks have none.

    An occurrence inside a longer Latin word (``Ada`` in ``Adam``) is none."""
    def word(i: int) -> bool:
        return 0 <= i < len(text) and text[i].isascii() and text[i].isalnum()

    spans = []
    for mention, label in mentions:
        start = text.find(mention) if mention else -1
        while start >= 0:
            end = start + len(mention)
            if not (word(start - 1) and word(start)) and not (word(end - 1) and word(end)):
                spans.append(Span(start, end, mention, label))
            start = text.find(mention, start + 1)
    return sorted(spans, key=lambda s: (s.start, -s.end, s.label))


def labels_schema(labels: Iterable[str], task: Task) -> Schema:
    """A schema from command-line labels, as ``task`` names them (``type:role1/role2`` gives roles)."""
    out = []
    for entry in labels:
        name, _, roles = entry.partition(":")
        roles = tuple(Role(r.strip()) for r in roles.split("/") if r.strip())
        if name.strip():
            out.append(replace(task.label(name.strip()), roles=roles))
    if not out:
        raise InputError("no labels to extract: give at least one (--labels person,location or --schema FILE)")
    return Schema(tuple(out))


def detect_language(text: str) -> str:
    """``zh`` when the text holds CJK ideographs, else ``en``: the two instruction languages."""
    return "zh" if _CJK.search(text) else "en"


class Extractor:
    """Extracts one task's labels from texts with one backend.

    ``task`` is a name or a :class:`Task` (``task_options`` apply to a name); the labels come from
    ``schema`` or ``labels``; ``backend`` is a :class:`Backend` or a registered name (``None``: the
    default one) built with ``backend_options``. ``language`` is the instruction language, ``zh`` or
    ``en``; ``auto`` picks it per text (:func:`detect_language`). Close it (or use ``with``) to free
    a backend it built.
    """

    def __init__(self, task: str | Task, schema: Schema | None = None, *, labels: Iterable[str] | None = None,
                 backend: Backend | str | None = None, backend_options: Mapping[str, Any] | None = None,
                 task_options: Mapping[str, Any] | None = None, language: str = "auto", split_num: int | None = None,
                 style: PromptStyle = PromptStyle(), params: GenerationParams = GenerationParams(),
                 batch_size: int = 8, instruction: str | None = None, host: PluginHost | None = None):
        self.host = host or get_host()
        self.task = task if isinstance(task, Task) else load_task(task, task_options, self.host)
        if (schema is None) == (labels is None):
            raise ValueError("give either schema or labels")
        self.schema = schema if schema is not None else labels_schema(labels, self.task)
        self.language, self.instruction, self.batch_size = language, instruction, max(1, batch_size)
        self.options = ConvertOptions(split="test", order="file", split_num=split_num)
        self._converters: dict[str, Converter] = {}
        self.builder = RequestBuilder(style, params.constrained, self.host, params.quote)
        self.params = replace(params, stop=tuple(dict.fromkeys(params.stop + self.builder.stop)))
        self._owns_backend = not isinstance(backend, Backend)
        self.backend = backend if isinstance(backend, Backend) else load_backend(backend, backend_options or {},
                                                                                  self.host)
        described = self.backend.describe()
        self.provenance = {"backend": described.get("backend", ""), "model": str(described.get("model", "")),
                           "run": uuid.uuid4().hex, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "labels": self.schema.keys()}

    def __call__(self, text: str) -> Extraction:
        return self._run([text])[0]

    def extract(self, texts: Iterable[str]) -> Iterator[Extraction]:
        """Results for each text, in order, generated ``batch_size`` texts at a time."""
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) >= self.batch_size:
                yield from self._run(batch)
                batch = []
        if batch:
            yield from self._run(batch)

    def _converter(self, text: str) -> Converter:
        language = detect_language(text) if self.language == "auto" else self.language
        if language not in self._converters:
            instruction = resolve_instruction(self.task.name, language, self.instruction, self.host)
            self._converters[language] = Converter(self.task, self.schema, replace(self.options, language=language),
                                                   instruction)
        return self._converters[language]

    def _run(self, texts: list[str]) -> list[Extraction]:
        task = self.task
        chunks = [(i, chunk) for i, text in enumerate(texts)
                  for chunk in self._converter(text).chunks(task.read({"text": text}), i)]
        requests = [self.builder(chunk.instruction, task, chunk.items, texts[i]) for i, chunk in chunks]
        results = [Extraction(text, task=task.name, provenance=self.provenance) for text in texts]
        for (i, _), generation in zip(chunks, self.backend.generate(requests, self.params), strict=True):
            parsed = read_answer(generation.text, task.name, {"text": texts[i]}, self.host,
                                 truncated=generation.finish_reason == "length")
            results[i].raw.append(generation.text)
            if parsed.ok:
                results[i].result.update(parsed.value)
            else:
                results[i].parse_failures += 1
                results[i].truncated += parsed.status == "truncated"
        for extraction in results:
            extraction.result = distinct(extraction.result)
            extraction.triples = task.triples(extraction.result)
            extraction.spans = find_spans(extraction.text, task.mentions(extraction.result))
        return results

    def close(self) -> None:
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
