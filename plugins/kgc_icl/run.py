"""Running ICL prompts through any backend."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kgcore.backend import Backend, GenerationParams, Request
from kgcore.errors import InputError
from kgcore.prompt import PromptStyle, RequestBuilder

from .parse import IclAnswer, parse_icl_answer
from .prompts import (_DA_NEEDS_LABELS, build_prompt, normalize_example, normalize_language, normalize_task,
                      split_labels)

_PAIR_FIELDS = ("head_entity", "head_type", "tail_entity", "tail_type")


@dataclass
class IclResult:
    """One text's prompt, the model's raw answer and its parse."""

    text: str
    task: str
    language: str
    prompt: str
    raw: str
    answer: IclAnswer
    pair: dict[str, str] | None = None

    def as_dict(self, with_triples: bool = True, with_raw: bool = False, with_prompt: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "task": self.task, "language": self.language}
        if self.pair:
            out.update(self.pair)
        out["result"] = self.answer.result
        if with_triples:
            out["triples"] = [list(t) for t in self.answer.triples]
        out["parse"] = self.answer.status
        if self.answer.error:
            out["parse_error"] = self.answer.error
        if self.answer.dropped:
            out["dropped"] = self.answer.dropped
        if with_raw:
            out["raw"] = self.raw
        if with_prompt:
            out["prompt"] = self.prompt
        return out


@dataclass(frozen=True)
class IclSpec:
    """What is asked, besides the text: task, language, labels, domain, instruction, examples, RE pair."""

    task: str
    language: str = "en"
    labels: tuple[str, ...] = ()
    domain: str | None = None
    instruction: str | None = None
    examples: tuple[dict[str, Any], ...] = ()
    head_entity: str | None = None
    head_type: str | None = None
    tail_entity: str | None = None
    tail_type: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "task", normalize_task(self.task))
        object.__setattr__(self, "language", normalize_language(self.language))
        object.__setattr__(self, "labels", tuple(split_labels(self.labels)))
        if self.task == "da" and not self.labels:
            raise InputError(_DA_NEEDS_LABELS)
        object.__setattr__(self, "examples", tuple(normalize_example(self.task, ex, f"examples[{i}]")
                                                   for i, ex in enumerate(self.examples)))

    def for_item(self, item: str | Mapping[str, Any]) -> tuple[str, IclSpec]:
        """The text of an input item and the spec for it (a JSON object may set its own RE pair)."""
        if isinstance(item, str):
            return item, self
        text = item.get("text")
        if not isinstance(text, str):
            raise InputError("an input object needs a 'text' string", field="text")
        overrides = {k: item[k] for k in _PAIR_FIELDS if isinstance(item.get(k), str)}
        return text, replace(self, **overrides) if overrides else self

    @property
    def pair(self) -> dict[str, str] | None:
        if self.task != "re":
            return None
        return {k: getattr(self, k) for k in _PAIR_FIELDS}

    def prompt(self, text: str) -> str:
        return build_prompt(self.task, text, self.language, list(self.labels), self.domain, self.instruction,
                            self.examples, **{k: getattr(self, k) for k in _PAIR_FIELDS})

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of an answer in the prompt's format (English keys), or ``None`` where the
        answer is free text (RE's relation name, DA, the Chinese prompts' keys)."""
        label = {"enum": list(self.labels)} if self.labels else {"type": "string"}
        text = {"type": "string", "minLength": 1}

        def objects(**properties: Any) -> dict[str, Any]:
            return {"type": "array", "items": {"type": "object", "properties": properties,
                                               "required": list(properties), "additionalProperties": False}}

        if self.task == "ner":
            return objects(E=label, W=text)
        if self.task == "rte":
            return {"type": "array", "items": {"type": "array", "items": text, "minItems": 3, "maxItems": 3}}
        if self.task == "ee" and self.language == "en":
            return objects(event_type=label, arguments=objects(role=text, argument=text))
        return None

    def parse(self, answer: str) -> IclAnswer:
        return parse_icl_answer(self.task, answer, labels=self.labels, head_entity=self.head_entity,
                                tail_entity=self.tail_entity)


def icl_prompts(items: Iterable[str | Mapping[str, Any]], spec: IclSpec) -> Iterator[tuple[str, IclSpec, str]]:
    """``(text, spec, prompt)`` per input item, without running a model."""
    for item in items:
        text, item_spec = spec.for_item(item)
        yield text, item_spec, item_spec.prompt(text)


def run_icl(items: Iterable[str | Mapping[str, Any]], backend: Backend, spec: IclSpec, *,
            style: PromptStyle | None = None, params: GenerationParams = GenerationParams(), batch_size: int = 8,
            host: Any = None) -> Iterator[IclResult]:
    """Prompt ``backend`` with each item's ICL prompt (as the user turn, through ``style``'s chat
    template) and parse the answers. With ``params.constrained`` an answer follows the format the prompt
    asks for (:meth:`IclSpec.answer_schema`) where the backend can constrain it."""
    builder = RequestBuilder(style or PromptStyle(), constrained=False, host=host)
    params = replace(params, stop=tuple(dict.fromkeys(params.stop + builder.stop)))
    batch: list[tuple[str, IclSpec, str]] = []

    def request(spec: IclSpec, prompt: str) -> Request:
        schema = spec.answer_schema() if params.constrained else None
        return replace(builder(prompt), json_schema=schema)

    def flush() -> list[IclResult]:
        generations = backend.generate([request(s, prompt) for _, s, prompt in batch], params)
        return [IclResult(text, s.task, s.language, prompt, g.text, s.parse(g.text), s.pair)
                for (text, s, prompt), g in zip(batch, generations, strict=True)]

    for entry in icl_prompts(items, spec):
        batch.append(entry)
        if len(batch) >= max(1, batch_size):
            yield from flush()
            batch = []
    if batch:
        yield from flush()
