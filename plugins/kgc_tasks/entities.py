"""Named entity recognition."""

from __future__ import annotations

from typing import Any

from kgcore import SchemaItem

from .annotations import Annotated, labelled_strings
from .base import AnnotatedTask, MentionOptions


class NER(AnnotatedTask):
    """Entities as ``{type: [mention, ...]}``."""

    name = "NER"
    graph_shape = "mentions"
    annotation_key = "entity"
    annotation_schema = {
        "type": "object", "required": ["entity", "entity_type"],
        "properties": {"entity": {"type": "string"}, "entity_type": {"type": "string"}},
    }
    default_split_num = 6
    metrics = ("entity",)
    Options = MentionOptions

    def identity(self, item):
        return (item["entity"], item["entity_type"])

    def positive_keys(self, sample: Annotated, schema) -> list[str]:
        return list(dict.fromkeys(e.type for e in sample.entities))

    def target(self, sample: Annotated, items: list[SchemaItem], opts) -> dict[str, Any]:
        return {item.name: self.ordered([e.text for e in sample.entities if e.type == item.name], sample.text)
                for item in items}

    def gold(self, annotations):
        return {"entity": [(a.get("entity"), a.get("entity_type")) for a in annotations]}

    def triples(self, answer):
        return [(mention, "type", label) for mention, label in self.predicted(answer)["entity"]]

    def mentions(self, answer):
        return labelled_strings(answer)

    def predicted(self, answer):
        return {"entity": labelled_strings(answer)}
