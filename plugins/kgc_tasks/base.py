"""What the built-in tasks share: typed samples and the option for the order of mentions in answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kgcore import Task
from kgcore.task import position_sorted

from .annotations import Annotated


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
