"""The graph model: how extraction results become RDF statements, one named graph per document.

A document's graph holds everything it says: its text and the results it came from, the entities
and their types, relations as edges, events as nodes with role edges, attributes as properties,
the mentions with their character spans, and the runs (backend, model, time) that produced it.
Entity identifiers are deterministic and type-scoped (normalized name + type), so two documents
that name the same thing reach the same node, one name of two types gives two nodes, and building
a document's graph again gives the same quads. docs/graph.md describes every term.
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kgcore.extraction import find_spans

KGC = "urn:kgc:"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
PROV = "http://www.w3.org/ns/prov#"
XSD = "http://www.w3.org/2001/XMLSchema#"
PREFIXES = {"kgc": KGC, "rdf": RDF, "rdfs": RDFS, "owl": OWL, "prov": PROV, "xsd": XSD}
#: The type of an entity that no result typed (an argument of an untyped relation or event).
UNTYPED = "entity"
#: How answers of each shape become statements; ``Task.graph_shape`` names one.
SHAPES = ("mentions", "relations", "events", "attributes")
#: Named graph of resolution decisions (``kgc graph resolve``).
RESOLUTION_GRAPH = KGC + "graph:resolution"
#: Named graph of writes in progress (stores whose writes are not transactions record them there).
PENDING_GRAPH = KGC + "graph:pending"


@functools.lru_cache(maxsize=1 << 16)
def normalize(text: str) -> str:
    """The form names are compared in: Unicode NFKC, case-folded, whitespace collapsed, without punctuation
    at either end (``Brussels.`` is ``brussels``)."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(text[end - 1]).startswith("P"):
        end -= 1
    return text[start:end].strip()


def _digest(*parts: str, size: int = 24) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:size]


@functools.lru_cache(maxsize=1 << 16)
def entity_iri(name: str, type_: str) -> str:
    return f"{KGC}entity:{_digest(normalize(type_), normalize(name))}"


def document_iri(doc_id: str) -> str:
    return f"{KGC}doc:{quote(doc_id, safe='')}"


def term_iri(kind: str, name: str) -> str:
    """A relation (``rel``), role (``role``) or attribute (``attr``) as a predicate."""
    return f"{KGC}{kind}:{quote(name, safe='')}"


@dataclass(frozen=True)
class Provenance:
    """Which run produced a result: backend, model, run id and time (ISO 8601)."""

    backend: str = ""
    model: str = ""
    run: str = ""
    time: str = ""


@dataclass(frozen=True)
class Result:
    """One task's answer for one document, with what the graph needs to read it.

    ``shape`` says how the answer becomes statements (:data:`SHAPES`; ``None``: its ``triples`` as
    edges); ``types`` gives typed relations' ``[subject type, object type]`` by relation name.
    """

    task: str
    answer: dict[str, Any]
    shape: str | None = None
    triples: tuple[tuple[str, str, str], ...] = ()
    types: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    provenance: Provenance = Provenance()

    @functools.cached_property
    def json(self) -> str:
        """The result as stored in its document's graph (``kgc:result``)."""
        data = {"task": self.task, "answer": self.answer, "shape": self.shape, "triples": [list(t) for t in self.triples],
                "types": {k: list(v) for k, v in sorted(self.types.items())}, "provenance": vars(self.provenance)}
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Result:
        data = json.loads(text)
        return cls(data["task"], data["answer"], data.get("shape"), tuple(tuple(t) for t in data.get("triples", ())),
                   {k: tuple(v) for k, v in data.get("types", {}).items()}, Provenance(**data.get("provenance", {})))


@dataclass
class Document:
    """A text and the results of each task on it; :meth:`quads` is its named graph."""

    id: str
    text: str
    results: dict[str, Result] = field(default_factory=dict)

    @property
    def iri(self) -> str:
        return document_iri(self.id)

    @property
    def digest(self) -> str:
        return _digest(self.text, *(self.results[t].json for t in sorted(self.results)), size=64)

    def ntriples(self) -> str:
        """The document's named graph as N-Triples (its triples, one per line)."""
        return "".join(_Builder(self).build())

    def quads(self) -> list[Any]:
        """The document's named graph as pyoxigraph quads."""
        from pyoxigraph import RdfFormat, parse

        return list(parse(in_graph(self.ntriples(), self.iri), format=RdfFormat.N_QUADS))


def in_graph(ntriples: str, graph: str) -> str:
    """N-Triples lines (each ending with `` .`` and a newline) as N-Quads in ``graph``."""
    return "".join(f"{line[:-1]}<{graph}> .\n" for line in ntriples.split("\n") if line)


def literal(value: str | int, datatype: str | None = None) -> str:
    """A literal in N-Triples: a string, an ``xsd:integer``, or a string of another ``datatype``."""
    if isinstance(value, int):
        return f'"{value}"^^<{XSD}integer>'
    text = f'"{value.translate(_ESCAPES)}"'
    return f"{text}^^<{datatype}>" if datatype else text


#: N-Triples string escapes (the characters a quoted literal may not hold as they are).
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
_A, _LABEL = f"<{RDF}type>", f"<{RDFS}label>"
_TERM_CLASS = {"rel": f"<{KGC}Relation>", "role": f"<{KGC}Role>", "attr": f"<{KGC}Attribute>"}


def _k(name: str) -> str:
    """A ``kgc:`` term in N-Triples."""
    return f"<{KGC}{name}>"


class _Builder:
    """Writes a document's graph as N-Triples lines; subjects and objects are terms in N-Triples syntax."""

    def __init__(self, doc: Document):
        self.doc, self.node, self.out = doc, f"<{doc.iri}>", {}
        self.quoted_id = quote(doc.id, safe="")
        self.types = self._known_types()
        # where each string the answers quote stands; an occurrence inside a longer one is no mention of its own
        strings = sorted({s for r in doc.results.values() for s in _all_strings(r.answer)})
        spans = find_spans(doc.text, [(s, s) for s in strings])
        self.spans: dict[str, list[tuple[int, int]]] = {}
        for span in spans:
            if not any(o.start <= span.start and span.end <= o.end and o.end - o.start > span.end - span.start
                       for o in spans):
                self.spans.setdefault(span.label, []).append((span.start, span.end))

    def add(self, s: str, p: str, o: str) -> None:
        self.out[f"{s} {p} {o} .\n"] = None

    def build(self) -> list[str]:
        doc, node = self.doc, self.node
        self.add(node, _A, _k("Document"))
        self.add(node, _k("text"), literal(doc.text))
        for task in sorted(doc.results):
            result = doc.results[task]
            self.add(node, _k("result"), literal(result.json))
            self._run(result)
            getattr(self, f"_{result.shape}", self._triples)(result)
        self.add(node, _k("digest"), literal(doc.digest))
        return list(self.out)

    def _run(self, result: Result) -> None:
        p = result.provenance
        run = f"<{KGC}run:{quote(p.run or 'unknown', safe='')}>"
        self.add(self.node, f"<{PROV}wasGeneratedBy>", run)
        self.add(run, _A, f"<{PROV}Activity>")
        for name, value in (("backend", p.backend), ("model", p.model)):
            if value:
                self.add(run, _k(name), literal(value))
        if p.time:
            self.add(run, f"<{PROV}startedAtTime>", literal(p.time, XSD + "dateTime"))

    # -- nodes ------------------------------------------------------------------------------
    def _known_types(self) -> dict[str, str]:
        """Types the document's results give names (mentions, typed relation arguments, KG entities)."""
        known: dict[str, str] = {}
        for task in sorted(self.doc.results):
            for name, type_ in _typed_names(self.doc.results[task]):
                known.setdefault(normalize(name), type_)
        return known

    def entity(self, name: str, type_: str | None, task: str) -> str:
        type_ = type_ or self.types.get(normalize(name), UNTYPED)
        iri = entity_iri(name, type_)
        node = f"<{iri}>"
        self.add(node, _A, _k("Entity"))
        self.add(node, _k("entityType"), literal(type_))
        self.add(node, _LABEL, literal(name))
        self.mentions(node, iri, name, task)
        return node

    def mentions(self, node: str, iri: str, text: str, task: str) -> None:
        key = iri.rsplit(":", 1)[1]
        for start, end in self.spans.get(text, ()):
            mention = f"<{KGC}mention:{self.quoted_id}:{start}-{end}:{key}>"
            self.add(mention, _A, _k("Mention"))
            self.add(mention, _k("mentionOf"), node)
            self.add(mention, _k("document"), self.node)
            self.add(mention, _k("start"), literal(start))
            self.add(mention, _k("end"), literal(end))
            self.add(mention, _k("task"), literal(task))

    def predicate(self, kind: str, name: str) -> str:
        node = f"<{term_iri(kind, name)}>"
        self.add(node, _A, _TERM_CLASS[kind])
        self.add(node, _LABEL, literal(name))
        return node

    # -- shapes -----------------------------------------------------------------------------
    def _mentions(self, result: Result) -> None:
        for label, values in result.answer.items():
            for value in values if isinstance(values, list) else ():
                if isinstance(value, str) and value:
                    self.entity(value, label, result.task)

    def _relations(self, result: Result) -> None:
        for relation, pairs in result.answer.items():
            subject_type, object_type = result.types.get(relation, (None, None))
            for pair in pairs if isinstance(pairs, list) else ():
                head, tail = _pair(pair)
                if head and tail:
                    self.add(self.entity(head, subject_type, result.task), self.predicate("rel", relation),
                             self.entity(tail, object_type, result.task))

    def _events(self, result: Result) -> None:
        for event_type, events in result.answer.items():
            for index, event in enumerate(events if isinstance(events, list) else ()):
                trigger = event if isinstance(event, str) else event.get("trigger") if isinstance(event, dict) else None
                iri = f"{KGC}event:{_digest(self.doc.id, result.task, event_type, str(index), str(trigger))}"
                node = f"<{iri}>"
                self.add(node, _A, _k("Event"))
                self.add(node, _k("eventType"), literal(event_type))
                if isinstance(trigger, str) and trigger and trigger != "NAN":
                    self.add(node, _k("trigger"), literal(trigger))
                    self.mentions(node, iri, trigger, result.task)
                for role, value in _arguments(event):
                    self.add(node, self.predicate("role", role), self.entity(value, None, result.task))

    def _attributes(self, result: Result) -> None:
        for entity_type, entities in result.answer.items():
            for name, attributes in entities.items() if isinstance(entities, dict) else ():
                node = self.entity(name, entity_type, result.task)
                for attribute, values in attributes.items() if isinstance(attributes, dict) else ():
                    for value in _strings(values):
                        self.add(node, self.predicate("attr", attribute), literal(value))

    def _triples(self, result: Result) -> None:
        for head, relation, tail in result.triples:
            self.add(self.entity(head, None, result.task), self.predicate("rel", relation),
                     self.entity(tail, None, result.task))


_EMPTY = {"", "NAN", "无", "nan"}


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip() and v not in _EMPTY]


def _all_strings(value: Any) -> Iterable[str]:
    """Every string of an answer, dict keys included (KG entities are keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _all_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _all_strings(item)


def _pair(pair: Any) -> tuple[str | None, str | None]:
    if not isinstance(pair, dict):
        return None, None
    head, tail = pair.get("head", pair.get("subject")), pair.get("tail", pair.get("object"))
    return (head if isinstance(head, str) and head else None), (tail if isinstance(tail, str) and tail else None)


def _arguments(event: Any) -> list[tuple[str, str]]:
    if not isinstance(event, dict):
        return []
    arguments = event.get("arguments", {}) if "arguments" in event or "trigger" in event else event
    if isinstance(arguments, list):  # [{"role", "argument"}]
        arguments = {a.get("role"): a.get("argument") for a in arguments if isinstance(a, dict)}
    return [(role, v) for role, value in (arguments.items() if isinstance(arguments, dict) else ())
            if isinstance(role, str) for v in _strings(value)]


def _typed_names(result: Result) -> Iterable[tuple[str, str]]:
    if result.shape == "mentions":
        for label, values in result.answer.items():
            yield from ((v, label) for v in _strings(values))
    elif result.shape == "attributes":
        for entity_type, entities in result.answer.items():
            yield from ((name, entity_type) for name in (entities if isinstance(entities, dict) else ()))
    elif result.shape == "relations":
        for relation, pairs in result.answer.items():
            subject_type, object_type = result.types.get(relation, (None, None))
            for head, tail in (_pair(p) for p in (pairs if isinstance(pairs, list) else ())):
                yield from ((n, t) for n, t in ((head, subject_type), (tail, object_type)) if n and t)
