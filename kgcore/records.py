"""Typed annotated samples: text plus gold entities, relations and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
class Sample:
    """One text with its gold annotations, as read from a ``sample.json`` line.

    ``record`` keeps the raw JSON object so that nothing the user wrote is lost.
    """

    text: str
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    events: tuple[Event, ...] = ()
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Sample:
        """Build from a validated raw record (keys ``entity``, ``relation``, ``event``)."""
        return cls(
            text=record["text"],
            entities=tuple(Entity(e["entity"], e["entity_type"]) for e in record.get("entity") or ()),
            relations=tuple(
                Relation(r["head"], r["relation"], r["tail"], r.get("head_type"), r.get("tail_type"))
                for r in record.get("relation") or ()
            ),
            events=tuple(
                Event(e.get("event_type", ""), e.get("event_trigger", ""),
                      tuple(Argument(a["argument"], a["role"]) for a in e.get("arguments") or ()))
                for e in record.get("event") or ()
            ),
            record=record,
        )
