"""What the built-in tasks share: typed samples and the option for the order of mentions in answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kgcore import Label, Role, Task
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
