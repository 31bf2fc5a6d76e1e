"""The task interface: how one IE task turns samples into instructions and outputs into tuples.

Built-in tasks (NER, RE, SPO, EE, EET, EEA, KG) live in the ``kgc_tasks`` plugin; a third-party
task subclasses :class:`Task` and registers it with ``kgc_register_tasks``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .records import Sample
from .sampling import hard_negative_sample, negative_sample, order_labels
from .schema import Label, Schema

Tuple = tuple  # a scored unit, e.g. (mention, type) or (head, relation, tail)


@dataclass(frozen=True)
class Instruction:
    """An instruction text for one task and language."""

    task: str
    language: str
    text: str
    example_suffix: str = ""


@dataclass(frozen=True)
class ConvertOptions:
    """How samples become instructions; defaults follow the IEPile recipe."""

    split: str = "train"
    language: str = "zh"
    split_num: int | None = None
    neg_schema: float = 1.0
    order: str = "sorted"
    hard_negatives: Mapping[str, Sequence[str]] | None = None
    seed: int = 42
    source: str = ""
    descriptions: bool | None = None
    examples: tuple[dict[str, Any], ...] = ()
    mention_order: str = "annotation"
    relation_keys: str = "head_tail"
    eea_test_triggers: bool = True

    @property
    def is_train(self) -> bool:
        return self.split == "train"


@dataclass(frozen=True)
class SchemaItem:
    """A label as it appears in one instruction: possibly a subset of its roles, maybe triggers."""

    label: Label
    roles: tuple[str, ...] = ()
    triggers: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return self.label.key

    @property
    def name(self) -> str:
        return self.label.name


class Task:
    """Base class of IE tasks. Subclasses set the class attributes and the marked methods."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    #: How 3-line and list schemas map to labels: labels, relations, spo, events, entity_types.
    schema_kind: ClassVar[str] = "labels"
    #: The sample.json key that holds the gold annotations.
    annotation_key: ClassVar[str]
    #: JSON Schema of one annotation item (validated on read).
    annotation_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    default_split_num: ClassVar[int] = 4
    #: Names of the metrics ``tuples`` produces, e.g. ``("entity",)``.
    metrics: ClassVar[tuple[str, ...]]

    # -- reading -------------------------------------------------------------------------
    def record_schema(self) -> dict[str, Any]:
        """JSON Schema of one input line."""
        return {
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": {"type": "string"},
                self.annotation_key: {"type": "array", "items": self.annotation_schema},
            },
        }

    def identity(self, item: dict[str, Any]) -> Any:
        """Key for de-duplicating annotation items; ``None`` keeps duplicates."""
        return None

    def prepare(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """De-duplicate annotations; return ``None`` to skip a record."""
        items = record.get(self.annotation_key)
        if not items:
            return record
        seen, kept = set(), []
        for item in items:
            key = self.identity(item)
            if key is None or key not in seen:
                kept.append(item)
                if key is not None:
                    seen.add(key)
        return {**record, self.annotation_key: kept} if len(kept) != len(items) else record

    # -- converting ----------------------------------------------------------------------
    def positive_keys(self, sample: Sample, schema: Schema) -> list[str]:
        """Label keys that occur in the sample's annotations."""
        raise NotImplementedError

    def select(self, sample: Sample, schema: Schema, opts: ConvertOptions, rng: random.Random) -> list[SchemaItem] | None:
        """The schema items of one text, sampled (train) and ordered; ``None`` skips the text."""
        keys = schema.keys()
        if opts.is_train:
            positives = self.positive_keys(sample, schema)
            if opts.hard_negatives is not None:
                split_num = opts.split_num if opts.split_num is not None else self.default_split_num
                keys = hard_negative_sample(keys, positives, opts.hard_negatives, opts.neg_schema, split_num, rng)
            else:
                keys = negative_sample(keys, positives, opts.neg_schema, rng)
            if not keys:
                return None
        keys = order_labels(keys, opts.order, rng)
        return [self.item(schema.label(k), sample, opts, rng) for k in keys]

    def item(self, label: Label, sample: Sample, opts: ConvertOptions, rng: random.Random) -> SchemaItem:
        return SchemaItem(label, tuple(label.role_names))

    def items_from_schema_value(self, value: Any) -> list[SchemaItem]:
        """Rebuild the schema items of an instruction from its ``schema`` field (inverse of :meth:`schema_value`)."""
        names = list(value) if isinstance(value, (list, dict)) else []
        return [SchemaItem(Label(str(n))) for n in names]

    def schema_value(self, items: list[SchemaItem], opts: ConvertOptions, descriptions: bool) -> Any:
        """The ``schema`` field of one instruction."""
        if descriptions:
            return {i.name: i.label.description or i.name for i in items}
        return [i.name for i in items]

    def target(self, sample: Sample, items: list[SchemaItem], opts: ConvertOptions) -> dict[str, Any]:
        """The expected answer for one instruction (train split)."""
        raise NotImplementedError

    def answer_schema(self, items: list[SchemaItem], opts: ConvertOptions, max_items: int = 16) -> dict[str, Any]:
        """JSON Schema of a valid answer to one instruction, for constrained decoding.

        Keys are the chunk's labels in order, all required; lists hold at most ``max_items``.
        """
        return object_schema({i.name: self.answer_value_schema(i, opts, max_items) for i in items})

    def answer_value_schema(self, item: SchemaItem, opts: ConvertOptions, max_items: int) -> dict[str, Any]:
        """Schema of one label's value; the default is a list of mention strings."""
        return {"type": "array", "items": STRING, "maxItems": max_items}

    # -- scoring -------------------------------------------------------------------------
    def triples(self, answer: dict[str, Any]) -> list[tuple[str, str, str]]:
        """``(head, relation, tail)`` facts stated by an answer, for the knowledge graph."""
        return [t for tuples in self.predicted(answer).values() for t in tuples if len(t) == 3]

    def gold(self, annotations: list[dict[str, Any]]) -> dict[str, list[Tuple]]:
        """Gold tuples per metric from a record's ``label`` annotations."""
        raise NotImplementedError

    def predicted(self, answer: dict[str, Any]) -> dict[str, list[Tuple]]:
        """Predicted tuples per metric from one parsed answer; malformed parts are skipped."""
        raise NotImplementedError


STRING: dict[str, Any] = {"type": "string"}
STRING_OR_LIST: dict[str, Any] = {"anyOf": [STRING, {"type": "array", "items": STRING, "maxItems": 8}]}


def object_schema(properties: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """A closed JSON object with these properties in this order."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(properties)
    return schema


def position_sorted(values: list[Any], text: str, key=lambda v: v) -> list[Any]:
    """Stable sort by first occurrence in ``text`` (absent values keep their place at the front)."""
    return sorted(values, key=lambda v: text.find(key(v)))


def unique(values: list[Any]) -> list[Any]:
    """De-duplicate, keeping the first occurrence of each value."""
    return list(dict.fromkeys(values))
