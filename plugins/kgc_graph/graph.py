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
            self.store.replace(graphs)

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Remove documents and their statements; an entity that no document supports any more is gone with
        them, and so are the resolution links that name it. Returns how many documents existed."""
        iris = [document_iri(d) for d in doc_ids]
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
            types = [type_] if type_ else [r["t"] for r in self.rows(
                "SELECT DISTINCT ?t WHERE { ?e kgc:entityType ?t } ORDER BY ?t")]
            candidates = [entity_iri(name, t) for t in types]
        return [iri for iri in candidates if self._ask(f"ASK {{ <{iri}> a kgc:Entity }}")]

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Entities whose label contains ``text`` (case-insensitive), the best supported first."""
        needle = Literal(text.casefold())
        return self.rows(f"""SELECT ?entity (SAMPLE(?l) AS ?label) (SAMPLE(?t) AS ?type)
                                    (COUNT(DISTINCT ?g) AS ?documents)
            WHERE {{ GRAPH ?g {{ ?entity a kgc:Entity ; rdfs:label ?l ; kgc:entityType ?t }}
                     FILTER (CONTAINS(LCASE(STR(?l)), {needle})) }}
            GROUP BY ?entity ORDER BY DESC(?documents) ?label LIMIT {int(limit)}""")

    def entity(self, iri: str, sources: int = 3) -> dict[str, Any]:
        """An entity: its labels and type, how many documents mention it (with up to ``sources`` of them: spans
        and sentence), and its facts, each with its support (how many documents state it) and the spans and
        sentence of up to ``sources`` of them. A few queries, however many documents there are."""
        node = f"<{iri}>"
        labels = {r["l"]: r["n"] for r in self.rows(f"""SELECT ?l (COUNT(DISTINCT ?g) AS ?n)
            WHERE {{ GRAPH ?g {{ {node} rdfs:label ?l }} }} GROUP BY ?l ORDER BY DESC(?n) ?l""")}
        if not labels:
            raise InputError(f"no entity {iri} in the graph")
        (head,) = self.rows(f"""SELECT (SAMPLE(?t) AS ?type) (COUNT(DISTINCT ?g) AS ?documents)
            WHERE {{ GRAPH ?g {{ {node} kgc:entityType ?t }} }}""")
        facts = self.rows(f"""SELECT ?dir ?p ?o (SAMPLE(?pl) AS ?predicate) (SAMPLE(?ol) AS ?label)
                (SAMPLE(?ot) AS ?type) (COUNT(DISTINCT ?g) AS ?support) (GROUP_CONCAT(DISTINCT STR(?g); SEPARATOR=" ")
                AS ?documents) WHERE {{
                {{ GRAPH ?g {{ {node} ?p ?o }} BIND ("out" AS ?dir) }} UNION {{ GRAPH ?g {{ ?o ?p {node} }} BIND ("in" AS ?dir) }}
                ?p rdfs:label ?pl . OPTIONAL {{ ?o rdfs:label ?ol }} OPTIONAL {{ ?o kgc:entityType ?ot }}
            }} GROUP BY ?dir ?p ?o ORDER BY ?dir ?predicate ?label""")
        mentioned = [r["g"] for r in self.rows(f"""SELECT DISTINCT ?g WHERE {{ GRAPH ?g {{ {node} a kgc:Entity }} }}
            ORDER BY ?g LIMIT {int(sources)}""")]
        for fact in facts:
            fact["direction"], fact["value"] = fact.pop("dir"), fact.pop("o")
            del fact["p"]
            fact["documents"] = sorted(fact["documents"].split())[:sources]
        wanted = {doc for f in facts for doc in f["documents"]} | set(mentioned)
        found = self._sources(wanted, [iri] + [f["value"] for f in facts if f["type"]])
        for fact in facts:
            nodes = {iri, fact["value"]}
            fact["sources"] = [found[doc](nodes) for doc in fact.pop("documents")]
        same = self.rows(f"""SELECT ?m (SAMPLE(?l) AS ?label) WHERE {{ GRAPH <{RESOLUTION_GRAPH}> {{
            {node} owl:sameAs ?m }} ?m rdfs:label ?l }} GROUP BY ?m ORDER BY ?label""")
        canonical = self.rows(f"SELECT ?c WHERE {{ GRAPH <{RESOLUTION_GRAPH}> {{ {node} kgc:canonical ?c }} }}")
        return {"iri": iri, "label": next(iter(labels)), "labels": sorted(labels), "type": head["type"],
                "documents": head["documents"], "mentions": [found[doc]({iri}) for doc in mentioned],
                "facts": facts, "same_as": [{"iri": r["m"], "label": r["label"]} for r in same],
                "canonical": canonical[0]["c"] if canonical else iri}

    def _sources(self, docs: set[str], nodes: list[str]) -> dict[str, Any]:
        """For each document, a function giving where it mentions some of ``nodes``: spans and the sentence."""
        if not docs:
            return {}
        graphs, values = " ".join(f"<{d}>" for d in sorted(docs)), " ".join(f"<{n}>" for n in sorted(set(nodes)))
        texts = {r["g"]: r["text"] for r in self.rows(f"""SELECT ?g ?text WHERE {{ GRAPH ?g {{ ?g kgc:text ?text }}
            VALUES ?g {{ {graphs} }} }}""")}
        spans: dict[str, list[tuple[int, int, str]]] = {d: [] for d in docs}
        for r in self.rows(f"""SELECT DISTINCT ?g ?n ?start ?end WHERE {{ GRAPH ?g {{
                ?m kgc:mentionOf ?n ; kgc:start ?start ; kgc:end ?end }} VALUES ?g {{ {graphs} }} VALUES ?n {{ {values} }}
            }} ORDER BY ?g ?start ?end"""):
            spans[r["g"]].append((r["start"], r["end"], r["n"]))

        def source(doc: str) -> Any:
            def where(wanted: set[str]) -> dict[str, Any]:
                text, found = texts[doc], [(s, e) for s, e, n in spans[doc] if n in wanted]
                start, end = _sentence(text, found[0][0] if found else 0)
                return {"document": doc, "spans": [{"start": s, "end": e, "text": text[s:e]} for s, e in found],
                        "sentence": {"start": start, "end": end, "text": text[start:end]}}
            return where

        return {doc: source(doc) for doc in docs}

    def stats(self) -> dict[str, Any]:
        """How many documents, entities (per type), relation edges, events, mentions and quads."""
        count = lambda where: self.rows(f"SELECT (COUNT(*) AS ?n) WHERE {{ {where} }}")[0]["n"]  # noqa: E731
        by_type = {r["t"]: r["n"] for r in self.rows(
            "SELECT ?t (COUNT(DISTINCT ?e) AS ?n) WHERE { ?e kgc:entityType ?t } GROUP BY ?t ORDER BY ?t")}
        return {"documents": count("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?g a kgc:Document } }"),
                "entities": sum(by_type.values()), "entity_types": by_type,
                "relations": count("SELECT DISTINCT ?s ?p ?o WHERE { ?p a kgc:Relation . ?s ?p ?o }"),
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


def _doc_id(iri: str) -> str:
    return unquote(iri[len(f"{KGC}doc:"):])
