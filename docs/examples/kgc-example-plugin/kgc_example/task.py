"""The TERM task: terms of a text grouped by category, answered as ``{category: [term, ...]}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kgcore import Sample, Schema, SchemaItem, Task


class TERM(Task):
    """Terms as ``{category: [term, ...]}``; annotations are ``{"term", "category"}`` items."""

    name = "TERM"
    annotation_key = "term"
    annotation_schema = {
        "type": "object", "required": ["term", "category"],
        "properties": {"term": {"type": "string"}, "category": {"type": "string"}},
    }
    default_split_num = 4
    metrics = ("term",)
    graph_shape = "mentions"  # answers are {category: [term]}: typed mentions in a knowledge graph

    @dataclass(frozen=True)
    class Options:
        #: Terms in answers as annotated, or ``position``: by first occurrence in the text (``-T order=position``).
        order: str = "annotation"

    def identity(self, item):
        return (item["term"], item["category"])

    def _terms(self, sample: Sample) -> list[dict[str, str]]:
        return sample.record.get(self.annotation_key) or []

    def positive_keys(self, sample: Sample, schema: Schema) -> list[str]:
        return list(dict.fromkeys(t["category"] for t in self._terms(sample)))

    def target(self, sample: Sample, items: list[SchemaItem], opts) -> dict[str, Any]:
        out = {}
        for item in items:
            terms = [t["term"] for t in self._terms(sample) if t["category"] == item.name]
            out[item.name] = sorted(terms, key=sample.text.find) if self.options.order == "position" else terms
        return out

    def gold(self, annotations):
        return {"term": [(a.get("term"), a.get("category")) for a in annotations]}

    def triples(self, answer):
        return [(term, "category", category) for term, category in self.predicted(answer)["term"]]

    def predicted(self, answer):
        found = []
        for category, terms in answer.items():
            if isinstance(terms, list):
                found += [(t, category) for t in terms if isinstance(t, str)]
        return {"term": found}
