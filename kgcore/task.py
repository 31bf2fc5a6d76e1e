"""The task interface: how one IE task turns samples into instructions and answers into tuples.

Tasks are plugins (``kgc_register_tasks``; the built-in ones live in ``kgc_tasks``). A task may
declare typed ``Options`` (``-T key=value``); converted records remember the ones that differ from
the defaults, so ``kgc predict`` asks for the same answers without being told again.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .options import parse_options
from .plugins import PluginHost, get_host
from .sampling import hard_negative_sample, negative_sample, order_labels
from .schema import Label, Schema, label_from_entry, read_schema


@dataclass(frozen=True)
class Sample:
    """One text as read from a ``sample.json`` line; ``record`` keeps everything the user wrote."""

    text: str
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Instruction:
    """An instruction text for one task and language."""

    task: str
    language: str
    text: str
    example_suffix: str = ""


@dataclass(frozen=True)
class ConvertOptions:
    """How samples become instructions, for every task; defaults follow the IEPile recipe."""

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
    """Base class of IE tasks. Subclasses set the class attributes and implement the marked methods."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    #: The sample.json key that holds the gold annotations.
    annotation_key: ClassVar[str]
    #: JSON Schema of one annotation item (validated on read).
    annotation_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    default_split_num: ClassVar[int] = 4
    #: Names of the metrics :meth:`predicted` produces, e.g. ``("entity",)``.
    metrics: ClassVar[tuple[str, ...]]
    #: How a knowledge graph reads answers: ``mentions``, ``relations``, ``events``, ``attributes``, or
    #: ``None`` (the :meth:`triples` as edges).
    graph_shape: ClassVar[str | None] = None
    #: Values an answer may hold besides spans of its text when it quotes the text (``None``: the
    #: task's values are not mentions, never held to the text).
    unquoted: ClassVar[tuple[str, ...] | None] = ()

    @dataclass(frozen=True)
    class Options:
        """The task's own options (none by default)."""

    def __init__(self, options: Any = None):
        if not isinstance(options, self.Options):
            options = parse_options(self.Options, options or {}, f"task '{self.name}'")
        self.options = options

    def changed_options(self) -> dict[str, Any]:
        """Options that differ from their defaults (what converted records carry as ``task_options``)."""
        return {f.name: getattr(self.options, f.name) for f in dataclasses.fields(self.options)
                if getattr(self.options, f.name) != f.default}

    # -- reading -------------------------------------------------------------------------
    def record_schema(self) -> dict[str, Any]:
        """JSON Schema of one input line."""
        return {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string"}, self.annotation_key: {"type": "array", "items": self.annotation_schema}}}

    def identity(self, item: dict[str, Any]) -> Any:
        """Key for de-duplicating annotation items; ``None`` keeps duplicates."""
        return None

    def prepare(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """De-duplicate annotations; return ``None`` to skip a record."""
        items = record.get(self.annotation_key) or []
        keys = [self.identity(item) for item in items]
        kept = [item for i, (item, key) in enumerate(zip(items, keys)) if key is None or key not in keys[:i]]
        return {**record, self.annotation_key: kept} if len(kept) != len(items) else record

    def read(self, record: dict[str, Any]) -> Sample:
        """A prepared record as the sample the other methods receive (tasks may return a subclass)."""
        return Sample(record["text"], record)

    # -- schemas -------------------------------------------------------------------------
    def label(self, value: Any) -> Label:
        """One label of a schema list: a name or an entry dict."""
        return label_from_entry(value)

    def schema_from_lines(self, types: list, roles: list, type_roles: dict) -> list[Label]:
        """Labels of the reference's 3-line schema (type list, role list, ``{type: [roles]}``)."""
        return [Label(v) for v in (types or roles)]

    def items_from_schema(self, value: Any) -> list[SchemaItem]:
        """The items of an instruction's ``schema`` field: a schema document like any other."""
        return [SchemaItem(label, tuple(label.role_names)) for label in read_schema(value, self).labels]

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

    def schema_value(self, items: list[SchemaItem], opts: ConvertOptions, descriptions: bool) -> Any:
        """The ``schema`` field of one instruction."""
        if descriptions:
            return {i.name: i.label.description or i.name for i in items}
        return [i.name for i in items]

    def target(self, sample: Sample, items: list[SchemaItem], opts: ConvertOptions) -> dict[str, Any]:
        """The expected answer for one instruction (train split)."""
        raise NotImplementedError

    def answer_schema(self, items: Sequence[SchemaItem], max_items: int = 16) -> dict[str, Any]:
        """JSON Schema of a valid answer to one instruction, for constrained decoding.

        Keys are the chunk's labels in order, all required; lists hold at most ``max_items``.
        """
        return object_schema({i.name: self.answer_value_schema(i, max_items) for i in items})

    def answer_value_schema(self, item: SchemaItem, max_items: int) -> dict[str, Any]:
        """Schema of one label's value; the default is a list of mention strings."""
        return {"type": "array", "items": STRING, "maxItems": max_items}

    # -- reading answers -----------------------------------------------------------------
    def triples(self, answer: dict[str, Any]) -> list[tuple[str, str, str]]:
        """``(head, relation, tail)`` facts stated by an answer, for the knowledge graph."""
        return [t for tuples in self.predicted(answer).values() for t in tuples if len(t) == 3]

    def mentions(self, answer: dict[str, Any]) -> list[tuple[str, str]]:
        """``(text, label)`` of the strings an answer quotes from the input (every string under a label by default)."""
        def strings(value: Any) -> list[str]:
            values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            return [value] if isinstance(value, str) else [s for v in values for s in strings(v)]

        return unique([(s, label) for label, value in answer.items() for s in strings(value)])

    def gold(self, annotations: list[dict[str, Any]]) -> dict[str, list[tuple]]:
        """Gold tuples per metric from a record's ``label`` annotations."""
        raise NotImplementedError

    def predicted(self, answer: dict[str, Any]) -> dict[str, list[tuple]]:
        """Predicted tuples per metric from one parsed answer; malformed parts are skipped."""
        raise NotImplementedError


def load_task(name: str, options: Any = None, host: PluginHost | None = None) -> Task:
    """A registered task, built with its options (an ``Options`` instance or ``{key: value}``)."""
    return (host or get_host()).registry.load("task", name)(options)


STRING: dict[str, Any] = {"type": "string"}


def object_schema(properties: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """A closed JSON object with these properties in this order."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(properties)
    return schema


def unique(values: list[Any]) -> list[Any]:
    """De-duplicate, keeping the first occurrence of each value."""
    return list(dict.fromkeys(values))
