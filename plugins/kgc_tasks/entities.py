"""Named entity recognition."""

from __future__ import annotations

from typing import Any

from kgcore.records import Sample
from kgcore.schema import Schema
from kgcore.task import ConvertOptions, SchemaItem, Task, position_sorted


class NER(Task):
    """Entities as ``{type: [mention, ...]}``."""

    name = "NER"
    schema_kind = "labels"
    annotation_key = "entity"
    annotation_schema = {
        "type": "object", "required": ["entity", "entity_type"],
        "properties": {"entity": {"type": "string"}, "entity_type": {"type": "string"}},
    }
    default_split_num = 6
    metrics = ("entity",)

    def identity(self, item):
        return (item["entity"], item["entity_type"])

    def positive_keys(self, sample: Sample, schema: Schema) -> list[str]:
        return list(dict.fromkeys(e.type for e in sample.entities))

    def target(self, sample: Sample, items: list[SchemaItem], opts: ConvertOptions) -> dict[str, Any]:
        out = {}
        for item in items:
            mentions = [e.text for e in sample.entities if e.type == item.name]
            out[item.name] = position_sorted(mentions, sample.text) if opts.mention_order == "position" else mentions
        return out

    def gold(self, annotations):
        return {"entity": [(a.get("entity"), a.get("entity_type")) for a in annotations]}

    def triples(self, answer):
        return [(mention, "type", label) for mention, label in self.predicted(answer)["entity"]]

    def predicted(self, answer):
        found = []
        for key, values in answer.items():
            if isinstance(values, list):
                found += [(v, key) for v in values if isinstance(v, str)]
        return {"entity": found}
