"""The ``neo4j`` store: a Neo4j database through the official driver, holding the property graph view.

Entities and events are the nodes of :func:`~kgc_graph.property_graph.property_graph` (labels ``Entity``,
``Event``, keyed by ``id``, the IRI; ``label``, ``type``, ``kind``, ``support``, attributes), computed over every
document that contains them; relations and roles are its edges (the relation or role name as the type; ``kind``,
``support``, ``documents``: the IRIs of the documents that state them). Each document is a ``Document`` node
(``id``, ``label``: the document id, ``text``, ``digest``, ``results``) with ``CONTAINS`` edges to its entities
and events (``statements``: what it says about the node, as N-Quads) and ``HAS_MENTION`` edges to ``Mention``
nodes (``label``: the span's text, ``start``, ``end``, ``task``) that link by ``MENTION_OF`` to what they name;
these three carry ``document``. Values only ever travel as query parameters.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from pyoxigraph import Literal, Quad, RdfFormat, parse

from kgcore import InputError

from .cypher import cypher_name
from .model import KGC, RDF, Document, Result, in_graph
from .property_graph import property_graph
from .store import GraphStore, one_line

_NODE_LABELS = ("Entity", "Event")
_SCHEMA = [f"CREATE CONSTRAINT kgc_{label.lower()} IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"
           for label in ("Document", "Mention") + _NODE_LABELS]
_CONTAINED = ("MATCH (d:Document) WHERE d.id IN $graphs MATCH (d)-[:CONTAINS]->(n) "
              "RETURN DISTINCT n.id AS id, CASE WHEN n:Event THEN 'Event' ELSE 'Entity' END AS label")
#: Take the documents out: their support of edges (an edge no document states any more goes), mentions, nodes.
_UNLINK = (
    "MATCH (d:Document) WHERE d.id IN $graphs MATCH (d)-[:CONTAINS]->()-[r]->() "
    "WHERE any(g IN r.documents WHERE g IN $graphs) WITH DISTINCT r "
    "WITH r, [g IN r.documents WHERE NOT g IN $graphs] AS documents "
    "SET r.documents = documents, r.support = size(documents) WITH r WHERE r.support = 0 DELETE r",
    "MATCH (d:Document) WHERE d.id IN $graphs MATCH (d)-[:HAS_MENTION]->(m:Mention) DETACH DELETE m",
    "MATCH (d:Document) WHERE d.id IN $graphs DETACH DELETE d",
)
_DOCUMENTS = "UNWIND $rows AS row MERGE (d:Document {id: row.id}) SET d = row"
_CONTAINS = ("UNWIND $rows AS row MATCH (d:Document {{id: row.document}}) MERGE (n:{label} {{id: row.id}}) "
             "MERGE (d)-[c:CONTAINS {{document: row.document}}]->(n) SET c.statements = row.statements")
_MENTIONS = ("UNWIND $rows AS row MATCH (d:Document {{id: row.document}}) MATCH (n:{label} {{id: row.target}}) "
             "MERGE (m:Mention {{id: row.properties.id}}) SET m = row.properties "
             "MERGE (d)-[:HAS_MENTION {{document: row.document}}]->(m) "
             "MERGE (m)-[:MENTION_OF {{document: row.document}}]->(n)")
_EDGES = ("UNWIND $rows AS row MATCH (a:{source} {{id: row.source}}) MATCH (b:{target} {{id: row.target}}) "
          "MERGE (a)-[r:{type}]->(b) "
          "WITH r, row, [g IN coalesce(r.documents, []) WHERE NOT g IN row.documents] + row.documents AS documents "
          "SET r.kind = row.kind, r.documents = documents, r.support = size(documents)")
_STATEMENTS = ("UNWIND $ids AS id MATCH (n:{label} {{id: id}}) OPTIONAL MATCH (n)<-[c:CONTAINS]-() "
               "RETURN id, collect(c.statements) AS statements")
_SET = "UNWIND $rows AS row MATCH (n:{label} {{id: row.id}}) SET n = row"
_DELETE = "UNWIND $ids AS id MATCH (n:{label} {{id: id}}) DETACH DELETE n"


def write_statements(graphs: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The Cypher statements, each with its parameters, that write these document graphs (N-Triples text, once
    their old versions are taken out); the nodes' properties are set after, by :func:`node_properties`."""
    documents: list[dict[str, Any]] = []
    contains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    mentions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    edges: dict[tuple[str, str, str], dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
    for graph, ntriples in graphs.items():
        quads = list(parse(in_graph(ntriples, graph), RdfFormat.N_QUADS))
        if not quads:
            continue
        facts: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        own: dict[str, list[str]] = defaultdict(list)  # a node's statements: its type and literals
        for q in quads:
            facts[q.subject.value][q.predicate.value].append(q.object)
            if isinstance(q.object, Literal) or q.predicate.value == RDF + "type":
                own[q.subject.value].append(f"{q} .")
        doc = facts[graph]
        text = doc[KGC + "text"][0].value
        documents.append({"id": graph, "label": unquote(graph[len(KGC + "doc:"):]), "kind": "document", "text": text,
                          "digest": doc[KGC + "digest"][0].value,
                          "results": sorted(r.value for r in doc[KGC + "result"])})
        nodes, doc_edges = property_graph(quads)
        labels = {n["id"]: n["kind"].title() for n in nodes}
        for node in nodes:
            contains[labels[node["id"]]].append({"document": graph, "id": node["id"], "statements": own[node["id"]]})
        for iri, fact in facts.items():
            target = fact[KGC + "mentionOf"]
            if target and target[0].value in labels:
                start, end = int(fact[KGC + "start"][0].value), int(fact[KGC + "end"][0].value)
                mentions[labels[target[0].value]].append({"document": graph, "target": target[0].value, "properties": {
                    "id": iri, "label": text[start:end], "kind": "mention", "start": start, "end": end,
                    "task": fact[KGC + "task"][0].value, "document": graph}})
        for edge in doc_edges:
            key = (edge["label"], labels[edge["source"]], labels[edge["target"]])
            row = edges[key].setdefault((edge["source"], edge["target"]), {
                "source": edge["source"], "target": edge["target"], "kind": edge["kind"], "documents": []})
            row["documents"].append(graph)
    out = [(_DOCUMENTS, {"rows": documents})] if documents else []
    out += [(_CONTAINS.format(label=label), {"rows": rows}) for label, rows in sorted(contains.items())]
    out += [(_MENTIONS.format(label=label), {"rows": rows}) for label, rows in sorted(mentions.items())]
    out += [(_EDGES.format(source=source, target=target, type=cypher_name(type_)), {"rows": list(rows.values())})
            for (type_, source, target), rows in sorted(edges.items())]
    return out


def node_properties(statements: Iterable[Iterable[str]]) -> dict[str, Any] | None:
    """A node's properties from what each document containing it says about it (its ``CONTAINS`` edges'
    ``statements``): the node :func:`~kgc_graph.property_graph.property_graph` gives (an attribute without a name
    called ``_``); ``None`` for none."""
    text = "\n".join(line for lines in statements for line in lines)
    nodes = property_graph(parse(text, RdfFormat.N_QUADS))[0] if text else []
    return {key or "_": value for key, value in nodes[0].items()} if nodes else None  # Neo4j has no empty key


class Neo4jStore(GraphStore):
    """A Neo4j database (``neo4j://``, ``neo4j+s://``, ``bolt://``, ``bolt+s://``). Options: ``user`` and
    ``password`` (default: the ``NEO4J_USER`` and ``NEO4J_PASSWORD`` environment variables), ``database``
    (default: the server's). Each :meth:`replace` and :meth:`remove` is one transaction."""

    name = "neo4j"
    sparql = False

    def __init__(self, location: str, *, read_only: bool = False, user: str | None = None,
                 password: str | None = None, database: str | None = None, **options: Any):
        super().__init__(location, read_only=read_only)
        if options:
            raise InputError(f"unknown option(s) {', '.join(sorted(options))} for graph store 'neo4j'")
        try:
            import neo4j
        except ImportError:
            raise InputError("the neo4j graph store needs the Neo4j driver: pip install 'kgcore[neo4j]'") from None
        self.user = user or os.environ.get("NEO4J_USER") or "neo4j"
        password = password if password is not None else os.environ.get("NEO4J_PASSWORD")
        self.database = database
        with self._errors():
            self.driver = neo4j.GraphDatabase.driver(location, auth=(self.user, password) if password else None,
                                                     connection_timeout=30, max_transaction_retry_time=30)
        try:
            with self._errors():
                self.driver.verify_connectivity()
                for statement in [] if read_only else _SCHEMA:
                    self.driver.execute_query(statement, database_=database)
        except InputError:
            self.close()
            raise

    @classmethod
    def accepts(cls, location: str) -> bool:
        return location.startswith(("neo4j://", "neo4j+s://", "bolt://", "bolt+s://"))

    # -- reading ----------------------------------------------------------------------------
    def digests(self, graphs: Iterable[str]) -> dict[str, str]:
        rows = self._read("MATCH (d:Document) WHERE d.id IN $graphs RETURN d.id AS id, d.digest AS digest",
                          graphs=list(graphs))
        return {row["id"]: row["digest"] for row in rows}

    def results(self, graph: str) -> list[str]:
        rows = self._read("MATCH (d:Document {id: $graph}) RETURN d.results AS results", graph=graph)
        return sorted(rows[0]["results"]) if rows else []

    def query(self, sparql: str) -> Any:
        raise InputError("the neo4j graph store answers Cypher, not SPARQL: query it in Neo4j Browser or "
                         "cypher-shell, or build the graph into a folder for SPARQL (and load it into Neo4j with "
                         "kgc graph export -f cypher)")

    def update(self, sparql: str) -> None:
        self.query(sparql)

    def quads(self) -> Iterator[Quad]:
        """Every document's quads, rebuilt from the text and results its Document node keeps."""
        with self._errors(), self.driver.session(database=self.database, default_access_mode="READ") as session:
            for row in session.run("MATCH (d:Document) RETURN d.label AS id, d.text AS text, d.results AS results "
                                   "ORDER BY d.id"):
                yield from _document(row).quads()

    def graph_quads(self, graph: str) -> list[Quad]:
        rows = self._read("MATCH (d:Document {id: $graph}) RETURN d.label AS id, d.text AS text, "
                          "d.results AS results", graph=graph)
        return _document(rows[0]).quads() if rows else []

    # -- writing ----------------------------------------------------------------------------
    def replace(self, graphs: Mapping[str, str]) -> None:
        self._write(list(graphs), graphs)

    def remove(self, graphs: Iterable[str]) -> None:
        self._write(list(graphs), {})

    def close(self) -> None:
        driver = self.__dict__.pop("driver", None)
        if driver is not None:
            driver.close()

    def _write(self, iris: list[str], graphs: Mapping[str, str]) -> None:
        if self.read_only:
            raise InputError(f"the graph store {self.location} is open read-only; it takes no writes")
        if iris:
            with self._errors(), self.driver.session(database=self.database) as session:
                session.execute_write(_write, iris, graphs)

    def _read(self, cypher: str, **parameters: Any) -> list[Any]:
        with self._errors():
            return self.driver.execute_query(cypher, parameters, database_=self.database, routing_="r").records

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Driver and server errors as one clear line."""
        from neo4j import exceptions

        try:
            yield
        except exceptions.AuthError:
            raise InputError(f"Neo4j at {self.location} refused user '{self.user}' and its password (set "
                             "NEO4J_USER and NEO4J_PASSWORD, or the user and password options)") from None
        except exceptions.ServiceUnavailable as exc:
            raise InputError(f"cannot reach Neo4j at {self.location}: {_one_line(exc)}") from None
        except (exceptions.Neo4jError, exceptions.DriverError) as exc:
            raise InputError(f"Neo4j at {self.location}: {_one_line(exc)}") from None


def _write(tx: Any, iris: list[str], graphs: Mapping[str, str]) -> None:
    """One transaction: take these documents out, write their new graphs, then set (or delete, when no document
    contains them any more) the nodes they contained or contain."""
    touched: dict[str, set[str]] = {label: set() for label in _NODE_LABELS}
    for record in tx.run(_CONTAINED, graphs=iris):
        touched[record["label"]].add(record["id"])
    for statement in _UNLINK:
        tx.run(statement, graphs=iris).consume()
    for statement, parameters in write_statements(graphs):
        tx.run(statement, parameters).consume()
    for record in tx.run(_CONTAINED, graphs=iris):
        touched[record["label"]].add(record["id"])
    for label, ids in touched.items():
        found = {r["id"]: node_properties(r["statements"])
                 for r in tx.run(_STATEMENTS.format(label=label), ids=sorted(ids))}
        tx.run(_SET.format(label=label), rows=[p for p in found.values() if p]).consume()
        tx.run(_DELETE.format(label=label), ids=[i for i, p in found.items() if not p]).consume()


def _document(row: Any) -> Document:
    return Document(row["id"], row["text"], {r.task: r for r in map(Result.from_json, row["results"] or [])})


def _one_line(exc: Exception) -> str:
    return one_line(str(getattr(exc, "message", None) or exc))
