"""The built-in tasks' view of a sample: typed entities, relations and events from its record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kgcore import Sample


@dataclass(frozen=True)
class Entity:
    text: str
    type: str


@dataclass(frozen=True)
class Relation:
    head: str
    relation: str
    tail: str
    head_type: str | None = None
    tail_type: str | None = None


@dataclass(frozen=True)
class Argument:
    text: str
    role: str


@dataclass(frozen=True)
class Event:
    type: str
    trigger: str
    arguments: tuple[Argument, ...] = ()


@dataclass(frozen=True)
class Annotated(Sample):
    """A sample with its ``entity``, ``relation`` and ``event`` annotations as typed values."""

    entities: tuple[Entity, ...] = field(default=(), compare=False)
    relations: tuple[Relation, ...] = field(default=(), compare=False)
    events: tuple[Event, ...] = field(default=(), compare=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Annotated:
        """Build from a validated record (keys ``entity``, ``relation``, ``event``)."""
        return cls(
            text=record["text"], record=record,
            entities=tuple(Entity(e["entity"], e["entity_type"]) for e in record.get("entity") or ()),
            relations=tuple(Relation(r["head"], r["relation"], r["tail"], r.get("head_type"), r.get("tail_type"))
                            for r in record.get("relation") or ()),
            events=tuple(Event(e.get("event_type", ""), e.get("event_trigger", ""),
                               tuple(Argument(a["argument"], a["role"]) for a in e.get("arguments") or ()))
                         for e in record.get("event") or ()),
        )


RELATION_SCHEMA = {
    "type": "object", "required": ["head", "relation", "tail"],
    "properties": {"head": {"type": "string"}, "relation": {"type": "string"}, "tail": {"type": "string"},
                   "head_type": {"type": "string"}, "tail_type": {"type": "string"}},
}


def labelled_strings(answer: dict[str, Any]) -> list[tuple[str, str]]:
    """``(string, label)`` from ``{label: [string, ...]}`` answers (NER mentions, EET triggers)."""
    found = []
    for label, values in answer.items():
        if isinstance(values, list):
            found += [(v, label) for v in values if isinstance(v, str)]
    return found
