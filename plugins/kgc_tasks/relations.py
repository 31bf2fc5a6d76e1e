"""Relation extraction (RE) and typed subject-predicate-object triples (SPO)."""

from __future__ import annotations

from typing import Any

from kgcore.records import Relation, Sample
from kgcore.schema import Schema
from kgcore.task import STRING, ConvertOptions, SchemaItem, Task, object_schema, position_sorted, unique

_RELATION = {
    "type": "object", "required": ["head", "relation", "tail"],
    "properties": {"head": {"type": "string"}, "relation": {"type": "string"}, "tail": {"type": "string"},
                   "head_type": {"type": "string"}, "tail_type": {"type": "string"}},
}
_KEYS = {"head_tail": ("head", "tail"), "subject_object": ("subject", "object")}


def _pairs(relations: list[Relation], text: str, opts: ConvertOptions, keys: tuple[str, str]) -> list[dict]:
    if opts.mention_order == "position":
        relations = position_sorted(relations, text, key=lambda r: r.head)
    return [{keys[0]: r.head, keys[1]: r.tail} for r in relations]


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


class RE(Task):
    """Relations as ``{relation: [{"head", "tail"}]}`` (``--relation-keys subject_object`` for IEPile data)."""

    name = "RE"
    schema_kind = "relations"
    annotation_key = "relation"
    annotation_schema = _RELATION
    default_split_num = 4
    metrics = ("triple",)

    def identity(self, item):
        return (item["head"], item["relation"], item["tail"])

    def positive_keys(self, sample: Sample, schema: Schema) -> list[str]:
        return unique([r.relation for r in sample.relations])

    def target(self, sample, items, opts):
        keys = _KEYS[opts.relation_keys]
        return {i.name: _pairs([r for r in sample.relations if r.relation == i.name], sample.text, opts, keys)
                for i in items}

    def answer_value_schema(self, item, opts, max_items):
        keys = _KEYS[opts.relation_keys] if self.name == "RE" else _KEYS["subject_object"]
        return {"type": "array", "items": object_schema({k: STRING for k in keys}), "maxItems": max_items}

    def gold(self, annotations):
        return {"triple": [(a.get("head"), a.get("relation"), a.get("tail")) for a in annotations]}

    def predicted(self, answer):
        return {"triple": relation_triples(answer)}


class SPO(RE):
    """Typed triples; the schema lists ``{subject_type, predicate, object_type}``, answers use subject/object."""

    name = "SPO"
    schema_kind = "spo"

    def _matches(self, relation: Relation, item: SchemaItem) -> bool:
        label = item.label
        return relation.relation == label.name and (
            relation.head_type in (None, label.subject_type) and relation.tail_type in (None, label.object_type))

    def positive_keys(self, sample: Sample, schema: Schema) -> list[str]:
        return unique([l.key for r in sample.relations for l in schema.labels
                       if self._matches(r, SchemaItem(l))])

    def items_from_schema_value(self, value):
        from kgcore.schema import Label

        items = value if isinstance(value, list) else []
        return [SchemaItem(Label(i.get("predicate", ""), subject_type=i.get("subject_type"),
                                 object_type=i.get("object_type"))) for i in items if isinstance(i, dict)]

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
            pairs = _pairs([r for r in sample.relations if self._matches(r, item)], sample.text, opts,
                           ("subject", "object"))
            out[item.name] = out.get(item.name, []) + [p for p in pairs if p not in out.get(item.name, [])]
        return out
