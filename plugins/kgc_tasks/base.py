"""What the built-in tasks share: typed samples and the option for the order of mentions in answers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kgcore import ConvertOptions, Label, Role, Task
from kgcore.sampling import bernoulli_count
from kgcore.task import STRING

from .annotations import Annotated

#: A role's or attribute's value: one string or several.
STRING_OR_LIST: dict[str, Any] = {"anyOf": [STRING, {"type": "array", "items": STRING, "maxItems": 8}]}


def position_sorted(values: list[Any], text: str, key=lambda v: v) -> list[Any]:
    """Stable sort by first occurrence in ``text`` (absent values keep their place at the front)."""
    return sorted(values, key=lambda v: text.find(key(v)))


def labels_with_roles(names: list[str], type_roles: dict[str, list[str]]) -> list[Label]:
    """Labels named ``names`` with the roles of the reference's third schema line (``{type: [roles]}``)."""
    return [Label(n, roles=tuple(Role(r) for r in type_roles.get(n, []))) for n in names]


def sample_members(names: Sequence[str], present: set[str], opts: ConvertOptions, rng: random.Random) -> list[str]:
    """The roles (or attributes) of one label in a training instruction: those the text has, their hard
    negatives (``opts.hard_negatives``) and negatives sampled at ``opts.neg_schema``, at least one when the
    text has none."""
    positives = [n for n in names if n in present]
    hard = {h for p in positives for h in (opts.hard_negatives or {}).get(p, ())}
    negatives = [n for n in names if n not in present and n not in hard]
    k = bernoulli_count(rng, len(names), opts.neg_schema)
    k = min(k if positives else max(k, 1), len(negatives))
    chosen = set(positives) | hard | set(rng.sample(negatives, k))
    return [n for n in names if n in chosen]


@dataclass(frozen=True)
class MentionOptions:
    #: Order of mentions in answers: ``annotation`` (as annotated, like the released data) or ``position``
    #: (by first occurrence in the text).
    mention_order: str = "annotation"

    def __post_init__(self) -> None:
        if self.mention_order not in ("annotation", "position"):
            raise ValueError(f"mention_order must be annotation or position, not '{self.mention_order}'")


class AnnotatedTask(Task):
    """A task reading ``entity``/``relation``/``event`` annotations into :class:`Annotated` samples."""

    def read(self, record: dict[str, Any]) -> Annotated:
        return Annotated.from_record(record)

    def ordered(self, values: list[Any], text: str, key=lambda v: v) -> list[Any]:
        """``values`` in the order ``mention_order`` asks for."""
        return position_sorted(values, text, key) if self.options.mention_order == "position" else values
