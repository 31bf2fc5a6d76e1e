"""``kgc extract``: raw text to structured results (and triples) through any backend."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from .backend import Backend, GenerationParams
from .conversion import Converter, resolve_instruction
from .parsing import parse_answer
from .plugins import PluginHost, get_host
from .prediction import PromptStyle, RequestBuilder
from .records import Sample
from .schema import Label, Role, Schema
from .task import ConvertOptions

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class Extraction:
    text: str
    result: dict[str, Any]
    triples: list[tuple[str, str, str]]
    parse_failures: int
    raw: list[str]

    def as_dict(self, with_triples: bool = True, with_raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "result": self.result}
        if with_triples:
            out["triples"] = [list(t) for t in self.triples]
        out["parse_failures"] = self.parse_failures
        if with_raw:
            out["raw"] = self.raw
        return out


def labels_schema(labels: Iterable[str]) -> Schema:
    """A schema from command-line labels (``type:role1/role2`` gives roles for events and KG)."""
    out = []
    for entry in labels:
        name, _, roles = entry.partition(":")
        out.append(Label(name.strip(), roles=tuple(Role(r.strip()) for r in roles.split("/") if r.strip())))
    return Schema(tuple(out))


def detect_language(text: str) -> str:
    """``zh`` when the text holds CJK ideographs, else ``en``: the two instruction languages."""
    return "zh" if _CJK.search(text) else "en"


def extract(texts: Iterable[str], backend: Backend, *, task: str, schema: Schema, language: str = "auto",
            split_num: int | None = None, style: PromptStyle = PromptStyle(), params: GenerationParams = GenerationParams(),
            batch_size: int = 8, instruction: str | None = None, options: ConvertOptions | None = None,
            host: PluginHost | None = None) -> Iterator[Extraction]:
    """Extract from each text: one instruction per schema chunk, answers merged per text.

    ``language`` is the instruction language, ``zh`` or ``en``; ``auto`` picks it per text (:func:`detect_language`).
    """
    host = host or get_host()
    task_obj = host.registry.load("task", task)()
    options = replace(options or ConvertOptions(), split="test", order="file", split_num=split_num,
                      eea_test_triggers=False)
    converters: dict[str, Converter] = {}

    def converter(text: str) -> Converter:
        lang = detect_language(text) if language == "auto" else language
        if lang not in converters:
            converters[lang] = Converter(task_obj, schema, replace(options, language=lang),
                                         resolve_instruction(task_obj.name, lang, instruction, host))
        return converters[lang]

    builder = RequestBuilder(style, task_obj, options, params.constrained, host)
    params = replace(params, stop=tuple(dict.fromkeys(params.stop + builder.stop)))

    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            yield from _run(batch, converter, builder, backend, params, task_obj)
            batch = []
    if batch:
        yield from _run(batch, converter, builder, backend, params, task_obj)


def _run(texts, converter, builder, backend, params, task) -> list[Extraction]:
    chunks = [(i, r["instruction"]) for i, text in enumerate(texts)
              for r in converter(text).records(Sample(text=text, record={"text": text}), i)]
    generations = backend.generate([builder(instruction) for _, instruction in chunks], params)
    results = [Extraction(text, {}, [], 0, []) for text in texts]
    for (i, _), generation in zip(chunks, generations, strict=True):
        parsed = parse_answer(generation.text)
        results[i].raw.append(generation.text)
        if parsed.ok:
            results[i].result.update(parsed.value)
        else:
            results[i].parse_failures += 1
    for extraction in results:
        extraction.triples = task.triples(extraction.result)
    return results
