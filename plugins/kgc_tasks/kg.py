"""Knowledge-graph attribute extraction: entities of a type with their attributes."""

from __future__ import annotations

from typing import Any

from kgcore.records import Relation, Sample
from kgcore.sampling import bernoulli_count
from kgcore.task import STRING_OR_LIST, SchemaItem, Task, object_schema, position_sorted, unique

from .relations import _RELATION

_DROPPED = {"无", "nan"}


class KG(Task):
    """``{entity_type: {entity: {attribute: value | [values]}}}`` from ``(head, attribute, tail)`` labels.

    A relation belongs to an entity type when its ``head_type`` names it, or (without
    ``head_type``) when the type's attributes include the relation.
    """

    name = "KG"
    schema_kind = "entity_types"
    annotation_key = "relation"
    annotation_schema = _RELATION
    default_split_num = 1
    metrics = ("triple",)

    def identity(self, item):
        return (item["head"], item["relation"], item["tail"])

    def _belongs(self, relation: Relation, item: SchemaItem) -> bool:
        if relation.head_type is not None:
            return relation.head_type == item.name
        return relation.relation in item.label.role_names

    def positive_keys(self, sample, schema):
        return [l.key for l in schema.labels if any(self._belongs(r, SchemaItem(l)) for r in sample.relations)]

    def item(self, label, sample, opts, rng):
        attributes = label.role_names
        if opts.is_train and opts.neg_schema < 1:
            present = {r.relation for r in sample.relations}
            positives = [a for a in attributes if a in present]
            negatives = [a for a in attributes if a not in present]
            k = min(max(bernoulli_count(rng, len(attributes), opts.neg_schema), 0 if positives else 1), len(negatives))
            chosen = set(positives) | set(rng.sample(negatives, k))
            attributes = [a for a in attributes if a in chosen]
        if opts.order == "random":
            attributes = list(attributes)
            rng.shuffle(attributes)
        return SchemaItem(label, tuple(attributes))

    def items_from_schema_value(self, value):
        from kgcore.schema import Label

        return [SchemaItem(Label(i.get("entity_type", "")), tuple(i.get("attributes", [])))
                for i in (value if isinstance(value, list) else []) if isinstance(i, dict)]

    def schema_value(self, items, opts, descriptions):
        value = []
        for item in items:
            if descriptions:
                desc = {r.name: r.description or r.name for r in item.label.roles}
                attributes: Any = {a: desc.get(a, a) for a in item.roles}
            else:
                attributes = list(item.roles)
            value.append({"entity_type": item.name, "attributes": attributes})
        return value

    def target(self, sample: Sample, items, opts):
        out = {}
        for item in items:
            relations = [r for r in sample.relations if self._belongs(r, item) or r.head_type is None]
            entities: dict[str, dict[str, Any]] = {}
            for head in position_sorted(unique([r.head for r in relations]), sample.text):
                attrs = {}
                for attribute in item.roles:
                    tails = position_sorted(
                        unique([r.tail for r in relations if r.head == head and r.relation == attribute]), sample.text)
                    if tails:
                        attrs[attribute] = tails[0] if len(tails) == 1 else tails
                entities[head] = attrs
            out[item.name] = entities
        return out

    def answer_value_schema(self, item, opts, max_items):
        attributes = object_schema({a: STRING_OR_LIST for a in item.roles}, required=False)
        return {"type": "object", "additionalProperties": attributes, "maxProperties": max_items}

    def gold(self, annotations):
        return {"triple": [(a.get("head"), a.get("relation"), a.get("tail")) for a in annotations]}

    def predicted(self, answer):
        found = []
        for entities in answer.values():
            if not isinstance(entities, dict):
                continue
            for entity, attrs in entities.items():
                if not isinstance(attrs, dict):
                    continue
                for attribute, values in attrs.items():
                    for v in values if isinstance(values, list) else [values]:
                        if isinstance(v, str) and v and v.lower() not in _DROPPED:
                            found.append((entity, attribute, v))
        return {"triple": found}
