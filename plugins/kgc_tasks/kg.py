"""Knowledge-graph attribute extraction: entities of a type with their attributes."""

from __future__ import annotations

from typing import Any

from kgcore import SchemaItem
from kgcore.task import object_schema, unique

from .annotations import RELATION_SCHEMA, Annotated, Relation
from .base import STRING_OR_LIST, AnnotatedTask, labels_with_roles, position_sorted, sample_members

_DROPPED = {"无", "nan"}


class KG(AnnotatedTask):
    """``{entity_type: {entity: {attribute: value | [values]}}}`` from ``(head, attribute, tail)`` labels.

    A relation belongs to an entity type when its ``head_type`` names it, or (without
    ``head_type``) when the type's attributes include the relation.
    """

    name = "KG"
    graph_shape = "attributes"
    annotation_key = "relation"
    annotation_schema = RELATION_SCHEMA
    default_split_num = 1
    metrics = ("triple",)

    def identity(self, item):
        return (item["head"], item["relation"], item["tail"])

    def _belongs(self, relation: Relation, item: SchemaItem) -> bool:
        if relation.head_type is not None:
            return relation.head_type == item.name
        return relation.relation in item.label.role_names

    def schema_from_lines(self, types, roles, type_roles):
        return labels_with_roles(list(type_roles) + [t for t in types if t not in type_roles and "_" not in t],
                                 type_roles)

    def positive_keys(self, sample, schema):
        return [l.key for l in schema.labels if any(self._belongs(r, SchemaItem(l)) for r in sample.relations)]

    def item(self, label, sample, opts, rng):
        attributes = label.role_names
        if opts.is_train and opts.neg_schema < 1:
            attributes = sample_members(attributes, {r.relation for r in sample.relations}, opts, rng)
        if opts.order == "random":
            attributes = list(attributes)
            rng.shuffle(attributes)
        return SchemaItem(label, tuple(attributes))

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

    def target(self, sample: Annotated, items, opts):
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

    def answer_value_schema(self, item, max_items):
        attributes = object_schema({a: STRING_OR_LIST for a in item.roles}, required=False)
        return {"type": "object", "additionalProperties": attributes, "maxProperties": max_items}

    def mentions(self, answer):
        """Entity names (the answer's keys) and attribute values, under the entity type."""
        found = []
        for entity_type, entities in answer.items():
            for entity, attrs in entities.items() if isinstance(entities, dict) else ():
                found.append((entity, entity_type))
                if isinstance(attrs, dict):
                    found += [(v, entity_type) for values in attrs.values() for v in _kept(values)]
        return unique(found)

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
                found += [(entity, attribute, v) for attribute, values in attrs.items() for v in _kept(values)]
        return {"triple": found}


def _kept(values: Any) -> list[str]:
    """An attribute's value or values, without empty ones (``无``, ``nan``)."""
    return [v for v in (values if isinstance(values, list) else [values])
            if isinstance(v, str) and v and v.lower() not in _DROPPED]
