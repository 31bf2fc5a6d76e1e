"""Relation extraction (RE) and typed subject-predicate-object triples (SPO)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kgcore import InputError, Label, SchemaItem
from kgcore.task import STRING, object_schema, unique

from .annotations import RELATION_SCHEMA, Annotated, Relation
from .base import AnnotatedTask, MentionOptions

_KEYS = {"head_tail": ("head", "tail"), "subject_object": ("subject", "object")}


@dataclass(frozen=True)
class RelationOptions(MentionOptions):
    #: Keys of an answer's pairs: ``head_tail`` (DeepKE) or ``subject_object`` (IEPile / OneKE data).
    relation_keys: str = "head_tail"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.relation_keys not in _KEYS:
            raise ValueError(f"relation_keys must be head_tail or subject_object, not '{self.relation_keys}'")


def spo_label(text: str) -> Label:
    """A typed relation from the reference's ``subjectType_predicate_objectType`` string."""
    parts = text.split("_")
    if len(parts) < 3:
        raise InputError(f"SPO label {text!r} is not of the form subjectType_predicate_objectType")
    return Label("_".join(parts[1:-1]), subject_type=parts[0], object_type=parts[-1])


def relation_triples(answer: dict[str, Any]) -> list[tuple]:
    """``(head, relation, tail)`` from ``{relation: [{head|subject, tail|object}]}``."""
    found = []
    for relation, values in answer.items():
        if not isinstance(values, list):
            continue
        for v in values:
            if not isinstance(v, dict):
                continue
            head = v.get("head", v.get("subject"))
            tail = v.get("tail", v.get("object"))
            if isinstance(head, str) and isinstance(tail, str):
                found.append((head, relation, tail))
    return found


class RE(AnnotatedTask):
    """Relations as ``{relation: [{"head", "tail"}]}`` (``-T relation_keys=subject_object`` for IEPile data)."""

    name = "RE"
    graph_shape = "relations"
    annotation_key = "relation"
    annotation_schema = RELATION_SCHEMA
    default_split_num = 4
    metrics = ("triple",)
    Options = RelationOptions

    @property
    def keys(self) -> tuple[str, str]:
        return _KEYS[self.options.relation_keys]

    def identity(self, item):
        return (item["head"], item["relation"], item["tail"])

    def schema_from_lines(self, types, roles, type_roles):
        return [Label(v) for v in (roles or types)]

    def positive_keys(self, sample: Annotated, schema) -> list[str]:
        return unique([r.relation for r in sample.relations])

    def pairs(self, relations: list[Relation], text: str) -> list[dict[str, str]]:
        keys = self.keys
        return [{keys[0]: r.head, keys[1]: r.tail} for r in self.ordered(relations, text, key=lambda r: r.head)]

    def target(self, sample, items, opts):
        return {i.name: self.pairs([r for r in sample.relations if r.relation == i.name], sample.text) for i in items}

    def answer_value_schema(self, item, max_items):
        return {"type": "array", "items": object_schema({k: STRING for k in self.keys}), "maxItems": max_items}

    def gold(self, annotations):
        return {"triple": [(a.get("head"), a.get("relation"), a.get("tail")) for a in annotations]}

    def predicted(self, answer):
        return {"triple": relation_triples(answer)}


class SPO(RE):
    """Typed triples; the schema lists ``{subject_type, predicate, object_type}``, answers use subject/object."""

    name = "SPO"
    Options = MentionOptions

    @property
    def keys(self) -> tuple[str, str]:
        return _KEYS["subject_object"]

    def label(self, value):
        label = super().label(value)
        if isinstance(value, str) or (label.subject_type is None and label.object_type is None and "_" in label.name):
            return spo_label(label.name)
        return label

    def schema_from_lines(self, types, roles, type_roles):
        return [spo_label(v) for v in types]

    def _matches(self, relation: Relation, item: SchemaItem) -> bool:
        label = item.label
        return relation.relation == label.name and (
            relation.head_type in (None, label.subject_type) and relation.tail_type in (None, label.object_type))

    def positive_keys(self, sample, schema) -> list[str]:
        return unique([l.key for r in sample.relations for l in schema.labels if self._matches(r, SchemaItem(l))])

    def schema_value(self, items, opts, descriptions):
        value = []
        for i in items:
            entry = {"subject_type": i.label.subject_type, "predicate": i.name, "object_type": i.label.object_type}
            if descriptions:
                entry["description"] = i.label.description or i.name
            value.append(entry)
        return value

    def target(self, sample, items, opts):
        out: dict[str, list] = {}
        for item in items:  # items sharing a predicate share its key: merge, never overwrite
            pairs = self.pairs([r for r in sample.relations if self._matches(r, item)], sample.text)
            out[item.name] = out.get(item.name, []) + [p for p in pairs if p not in out.get(item.name, [])]
        return out
