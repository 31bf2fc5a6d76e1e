"""A knowledge graph in a store: add documents, delete them, query, look at an entity, count, check."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from pyoxigraph import Literal, NamedNode, QueryBoolean, QuerySolutions

from kgcore import InputError
from kgcore.plugins import PluginHost

from .model import KGC, PENDING_GRAPH, RESOLUTION_GRAPH, Document, Result, document_iri, entity_iri
from .store import GraphStore, open_store

_SENTENCE_END = re.compile(r"[.!?。！？\n]")


@dataclass
class AddStats:
    """What :meth:`Graph.add` did."""

    documents: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    quads: int = 0


@dataclass
class Graph:
    """A knowledge graph: a :class:`GraphStore` seen through kgc's graph model (docs/graph.md)."""

    store: GraphStore
    host: PluginHost | None = field(default=None, repr=False)
    _known: dict[str, list[str]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, location: str, kind: str | None = None, *, read_only: bool = False, host: PluginHost | None = None,
             **options: Any) -> Graph:
        """The graph at ``location`` (a folder: the embedded ``oxigraph`` store; ``http://...``: a SPARQL
        endpoint; ``neo4j://...``: Neo4j), or in the store ``kind`` names."""
        return cls(open_store(location, kind, read_only=read_only, host=host, **options), host)

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- writing ----------------------------------------------------------------------------
    def add(self, documents: Iterable[Document], batch_size: int = 256) -> AddStats:
        """Add documents, each in its own named graph, ``batch_size`` documents per transaction.

        A task's result replaces that task's earlier result for the document; the other tasks' stay.
        A document whose graph would not change is not written (adding the same results again changes
        nothing).
        """
        stats = AddStats()
        batch: dict[str, Document] = {}
        for doc in documents:
            stats.documents += 1
            held = batch.get(doc.iri)
            batch[doc.iri] = doc if held is None else Document(doc.id, doc.text, {**held.results, **doc.results})
            if len(batch) >= batch_size:
                self._write(batch, stats)
                batch = {}
        if batch:
            self._write(batch, stats)
        self.store.flush()
        return stats

    def _write(self, batch: dict[str, Document], stats: AddStats) -> None:
        built = {iri: doc.ntriples() for iri, doc in batch.items()}  # while the store writes the previous batch
        stored = self.store.digests(batch)
        graphs = {}
        for iri, doc in batch.items():
            if iri in stored:
                kept = {r.task: r for r in map(Result.from_json, self.store.results(iri))}
                doc = Document(doc.id, doc.text, {**kept, **doc.results})
                if stored[iri] == doc.digest:
                    stats.unchanged += 1
                    continue
                built[iri] = doc.ntriples()
            graphs[iri] = triples = built[iri]
            stats.quads += triples.count("\n")
            stats.replaced += iri in stored
            stats.added += iri not in stored
        if graphs:
            self._known = None
            self.store.replace(graphs)

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Remove documents and their statements; an entity that no document supports any more is gone with
        them, and so are the resolution links that name it. Returns how many documents existed."""
        iris = [document_iri(d) for d in doc_ids]
        self._known = None
        existing = self.store.digests(iris)
        self.store.remove(existing)
        if existing and self.store.sparql:  # a store without SPARQL removes unsupported entities itself
            self.store.update(f"""DELETE {{ GRAPH <{RESOLUTION_GRAPH}> {{ ?a ?p ?b }} }}
                WHERE {{ GRAPH <{RESOLUTION_GRAPH}> {{ ?a ?p ?b }} VALUES ?p {{ owl:sameAs kgc:canonical }}
                         FILTER (NOT EXISTS {{ GRAPH ?g {{ ?a a kgc:Entity }} }}
                                 || NOT EXISTS {{ GRAPH ?h {{ ?b a kgc:Entity }} }}) }}""")
        return len(existing)

    # -- reading ----------------------------------------------------------------------------
    def query(self, sparql: str) -> Any:
        """A SPARQL 1.1 query over all the documents' graphs (prefixes ``kgc``, ``rdf``, ``rdfs``, ``owl``,
        ``prov``, ``xsd`` are predefined)."""
        return self.store.query(sparql)

    def rows(self, sparql: str) -> list[dict[str, Any]]:
        """A SELECT query's solutions as ``{variable: value}`` (IRIs and literals as Python values)."""
        result = self.query(sparql)
        if not isinstance(result, QuerySolutions):
            raise InputError("expected a SELECT query")
        names = [v.value for v in result.variables]
        return [{n: _python(solution[n]) for n in names} for solution in result]

    def find(self, name: str, type_: str | None = None) -> list[str]:
        """Entity IRIs named ``name`` (any type, or ``type_``); an entity IRI finds itself."""
        if name.startswith(f"{KGC}entity:"):
            candidates = [name]
        else:
            candidates = [entity_iri(name, t) for t in ([type_] if type_ else self._vocabulary()["types"])]
        return [iri for iri in candidates if self._ask(f"ASK {{ <{iri}> a kgc:Entity }}")]

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Entities whose label contains ``text`` (case-insensitive), the best supported first."""
        needle = Literal(text.casefold())
        return self.rows(f"""SELECT ?entity (SAMPLE(?l) AS ?label) (SAMPLE(?t) AS ?type)
                                    (COUNT(DISTINCT ?g) AS ?documents)
            WHERE {{ GRAPH ?g {{ ?entity a kgc:Entity ; rdfs:label ?l ; kgc:entityType ?t }}
                     FILTER (CONTAINS(LCASE(STR(?l)), {needle})) }}
            GROUP BY ?entity ORDER BY DESC(?documents) ?label LIMIT {int(limit)}""")

    def entity(self, iri: str, sources: int = 3, facts: int | None = 50) -> dict[str, Any]:
        """An entity: its labels and type, how many documents mention it (with up to ``sources`` of them: spans
        and sentence), and its facts (the ``facts`` best supported; ``None``: all; ``fact_count`` says how
        many there are), each with its support (how many documents state it) and the spans and sentence of up
        to ``sources`` of them. A few queries, however many documents there are."""
        node = f"<{iri}>"
        labels = {r["l"]: r["n"] for r in self.rows(f"""SELECT ?l (COUNT(DISTINCT ?g) AS ?n)
            WHERE {{ GRAPH ?g {{ {node} rdfs:label ?l }} }} GROUP BY ?l ORDER BY DESC(?n) ?l""")}
        if not labels:
            raise InputError(f"no entity {iri} in the graph")
        (head,) = self.rows(f"""SELECT (SAMPLE(?t) AS ?type) (COUNT(DISTINCT ?g) AS ?documents)
            WHERE {{ GRAPH ?g {{ {node} kgc:entityType ?t }} }}""")
        count, facts = self._facts(node, sources, facts)
        mentioned = self._documents_of(iri, sources)
        found = self._sources({(doc, iri) for doc in mentioned} | {
            (doc, n) for f in facts for doc in f["documents"] for n in ((iri, f["value"]) if f["type"] else (iri,))})
        for fact in facts:
            fact["sources"] = [found(doc, {iri, fact["value"]}) for doc in fact.pop("documents")]
        same = self.rows(f"""SELECT ?m (SAMPLE(?l) AS ?label) WHERE {{ GRAPH <{RESOLUTION_GRAPH}> {{
            {node} owl:sameAs ?m }} ?m rdfs:label ?l }} GROUP BY ?m ORDER BY ?label""")
        canonical = self.rows(f"SELECT ?c WHERE {{ GRAPH <{RESOLUTION_GRAPH}> {{ {node} kgc:canonical ?c }} }}")
        return {"iri": iri, "label": next(iter(labels)), "labels": sorted(labels), "type": head["type"],
                "documents": head["documents"], "mentions": [found(doc, {iri}) for doc in mentioned],
                "facts": facts, "fact_count": count, "same_as": [{"iri": r["m"], "label": r["label"]} for r in same],
                "canonical": canonical[0]["c"] if canonical else iri}

    def _facts(self, node: str, sources: int, limit: int | None) -> tuple[int, list[dict[str, Any]]]:
        """How many relations, roles and attributes have ``node`` at one end, and the ``limit`` best supported:
        predicate, direction, the other end (value, label, type), support and up to ``sources`` of the
        documents that state it."""
        predicates = " ".join(f"<{p}>" for p in self._vocabulary()["predicates"])
        if not predicates:
            return 0, []
        stated: dict[tuple[str, str, Any], set[str]] = {}
        for direction, pattern in (("out", f"{node} ?p ?o"), ("in", f"?o ?p {node}")):
            for r in self.rows(f"SELECT ?g ?p ?o WHERE {{ GRAPH ?g {{ {pattern} }} VALUES ?p {{ {predicates} }} }}"):
                stated.setdefault((direction, r["p"], r["o"]), set()).add(r["g"])
        count = len(stated)
        if limit is not None and count > limit:
            stated = dict(sorted(stated.items(), key=lambda item: (-len(item[1]), str(item[0])))[:limit])
        names = self._names({(min(docs), o) for (_, p, o), docs in stated.items() if not _is_attribute(p)})
        facts = [{"direction": direction, "predicate": _term_name(p), "value": o,
                  "label": names.get(o, {}).get("label"), "type": names.get(o, {}).get("type"),
                  "support": len(docs), "documents": sorted(docs)[:sources]}
                 for (direction, p, o), docs in stated.items()]
        return count, sorted(facts, key=lambda f: (f["direction"], f["predicate"], str(f["label"] or f["value"])))

    def subgraph(self, iri: str | None = None, limit: int = 200) -> dict[str, list[dict[str, Any]]]:
        """Nodes and edges to draw: the relation and role edges at ``iri`` (without one: in the whole graph),
        the ``limit`` best supported. Nodes: ``id``, ``label``, ``type``, ``kind`` (entity or event); edges:
        ``source``, ``target``, ``label`` (the predicate's name), ``support``."""
        predicates = " ".join(f"<{p}>" for p in self._vocabulary()["predicates"] if not _is_attribute(p))
        values = f"VALUES ?p {{ {predicates} }}"
        if iri:
            where = (f"{{ GRAPH ?g {{ <{iri}> ?p ?o }} {values} BIND (<{iri}> AS ?s) }} UNION "
                     f"{{ GRAPH ?g {{ ?s ?p <{iri}> }} {values} BIND (<{iri}> AS ?o) }}")
        else:
            where = f"GRAPH ?g {{ ?s ?p ?o }} {values}"
        rows = self.rows(f"""SELECT ?s ?p ?o (COUNT(DISTINCT ?g) AS ?support) (MIN(STR(?g)) AS ?doc)
            WHERE {{ {where} }} GROUP BY ?s ?p ?o ORDER BY DESC(?support) ?s ?p ?o LIMIT {int(limit)}""") \
            if predicates else []
        ends = {(r["doc"], r[end]) for r in rows for end in ("s", "o")}
        if iri and not rows:
            ends = {(doc, iri) for doc in self._documents_of(iri, 1)}
        names = self._names(ends)
        nodes = [{"id": node, "label": names[node]["label"] or names[node]["type"], "type": names[node]["type"],
                  "kind": "entity" if node.startswith(f"{KGC}entity:") else "event"} for node in sorted(names)]
        edges = [{"source": r["s"], "target": r["o"], "label": _term_name(r["p"]), "support": r["support"]}
                 for r in rows]
        return {"nodes": nodes, "edges": edges}

    def _documents_of(self, iri: str, limit: int) -> list[str]:
        return [r["g"] for r in self.rows(f"""SELECT ?g WHERE {{ GRAPH ?g {{ <{iri}> kgc:entityType ?t }} }}
            LIMIT {int(limit)}""")]

    def _names(self, pairs: set[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """What nodes are called (an entity's label and type; an event's trigger and type), each read in the
        document of its ``(document, node)`` pair."""
        if not pairs:
            return {}
        # VALUES in each branch, so that the store starts from the pairs
        values = f"VALUES (?g ?x) {{ {' '.join(f'(<{g}> <{x}>)' for g, x in sorted(pairs))} }}"
        names: dict[str, dict[str, Any]] = {}
        for r in self.rows(f"""SELECT ?x ?label ?type WHERE {{
                {{ GRAPH ?g {{ ?x rdfs:label ?label ; kgc:entityType ?type }} {values} }} UNION
                {{ GRAPH ?g {{ ?x kgc:eventType ?type OPTIONAL {{ ?x kgc:trigger ?label }} }} {values} }} }}"""):
            names.setdefault(r["x"], r)
        return names

    def _vocabulary(self) -> dict[str, list[str]]:
        """The entity types and the relation, role and attribute predicates in the graph (kept until a write)."""
        if self._known is None:
            self._known = {
                "types": sorted(r["t"] for r in self.rows("SELECT DISTINCT ?t WHERE { ?e kgc:entityType ?t }")),
                "predicates": sorted(r["p"] for r in self.rows("""SELECT DISTINCT ?p WHERE {
                    { ?p a kgc:Relation } UNION { ?p a kgc:Role } UNION { ?p a kgc:Attribute } }"""))}
        return self._known

    def _sources(self, wanted: set[tuple[str, str]]) -> Any:
        """A function giving where a document mentions some nodes (spans and the sentence), for the documents
        and nodes of the ``(document, node)`` pairs ``wanted``."""
        texts: dict[str, str] = {}
        spans: dict[str, list[tuple[int, int, str]]] = {}
        if wanted:
            graphs = " ".join(f"<{d}>" for d in sorted({d for d, _ in wanted}))
            texts = {r["g"]: r["text"] for r in self.rows(f"""SELECT ?g ?text WHERE {{ GRAPH ?g {{ ?g kgc:text ?text }}
                VALUES ?g {{ {graphs} }} }}""")}
            pairs = " ".join(f"(<{d}> <{n}>)" for d, n in sorted(wanted))
            for r in self.rows(f"""SELECT ?g ?n ?start ?end WHERE {{ GRAPH ?g {{
                    ?m kgc:mentionOf ?n ; kgc:start ?start ; kgc:end ?end }} VALUES (?g ?n) {{ {pairs} }} }}"""):
                spans.setdefault(r["g"], []).append((r["start"], r["end"], r["n"]))

        def where(doc: str, nodes: set[str]) -> dict[str, Any]:
            text = texts[doc]
            found = sorted({(s, e) for s, e, n in spans.get(doc, ()) if n in nodes})
            start, end = _sentence(text, found[0][0] if found else 0)
            return {"document": doc, "spans": [{"start": s, "end": e, "text": text[s:e]} for s, e in found],
                    "sentence": {"start": start, "end": end, "text": text[start:end]}}

        return where

    def stats(self) -> dict[str, Any]:
        """How many documents, entities (per type), relation edges, events, mentions and quads."""
        count = lambda where: self.rows(f"SELECT (COUNT(*) AS ?n) WHERE {{ {where} }}")[0]["n"]  # noqa: E731
        relations = " ".join(f"<{p}>" for p in self._vocabulary()["predicates"] if p.startswith(f"{KGC}rel:"))
        by_type = {r["t"]: r["n"] for r in self.rows(
            "SELECT ?t (COUNT(DISTINCT ?e) AS ?n) WHERE { ?e kgc:entityType ?t } GROUP BY ?t ORDER BY ?t")}
        return {"documents": count("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?g a kgc:Document } }"),
                "entities": sum(by_type.values()), "entity_types": by_type,
                "relations": count(f"SELECT DISTINCT ?s ?p ?o WHERE {{ ?s ?p ?o }} VALUES ?p {{ {relations} }}")
                if relations else 0,
                "events": count("SELECT DISTINCT ?e WHERE { ?e a kgc:Event }"),
                "mentions": count("SELECT DISTINCT ?m WHERE { ?m a kgc:Mention }"),
                "quads": count("GRAPH ?g { ?s ?p ?o }")}

    def documents(self) -> Iterator[Document]:
        """Every document, rebuilt from the text and results its graph keeps."""
        for row in self.rows("SELECT ?g ?text WHERE { GRAPH ?g { ?g a kgc:Document ; kgc:text ?text } } ORDER BY ?g"):
            results = {r.task: r for r in map(Result.from_json, self.store.results(row["g"]))}
            yield Document(_doc_id(row["g"]), row["text"], results)

    def check(self) -> list[str]:
        """Problems found: named graphs that are not exactly what their document's text and results give."""
        problems = []
        graphs = {r["g"] for r in self.rows("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")}
        graphs -= {RESOLUTION_GRAPH, PENDING_GRAPH}
        for doc in self.documents():
            graphs.discard(doc.iri)
            expected = {str(q) for q in doc.quads()}
            stored = {str(q) for q in self.store.graph_quads(doc.iri)}
            if expected != stored:
                problems.append(f"{doc.iri}: {len(expected - stored)} quads missing, {len(stored - expected)} extra")
        unfinished = self.store.unfinished()
        problems += [f"{g}: a named graph without its document" for g in sorted(graphs - set(unfinished))]
        if unfinished:
            problems.append(f"{len(unfinished)} documents of a write that never finished (a writer undoes them "
                            "when it opens the store)")
        return problems

    def _ask(self, sparql: str) -> bool:
        result = self.query(sparql)
        return bool(result) if isinstance(result, QueryBoolean) else False


def _python(term: Any) -> Any:
    if term is None:
        return None
    if isinstance(term, NamedNode):
        return term.value
    if isinstance(term, Literal) and term.datatype.value.endswith(("#integer", "#long", "#int")):
        return int(term.value)
    return term.value


def _sentence(text: str, at: int) -> tuple[int, int]:
    """Where the sentence around character ``at`` starts and ends (leading whitespace left out)."""
    start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, at)), default=0)
    end = next((m.end() for m in _SENTENCE_END.finditer(text, at)), len(text))
    return start + len(text[start:end]) - len(text[start:end].lstrip()), end


def _is_attribute(predicate: str) -> bool:
    """Whether a predicate is an attribute's (its values are literals, not nodes)."""
    return predicate.startswith(f"{KGC}attr:")


def _term_name(iri: str) -> str:
    """A relation, role or attribute predicate's name (``urn:kgc:rel:born%20in`` → ``born in``)."""
    return unquote(iri.split(":", 3)[3])


def _doc_id(iri: str) -> str:
    return unquote(iri[len(f"{KGC}doc:"):])
