"""Exporters: the graph as RDF (Turtle, TriG, N-Quads, JSON-LD) or as a property graph (GraphML, CSV,
Cypher, neo4j-admin CSV). docs/graph.md describes each format and how to load it."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pyoxigraph import RdfFormat, serialize

from kgcore import InputError

from .cypher import cypher_name, cypher_string, cypher_value
from .model import PREFIXES
from .property_graph import EDGE_KEYS, NODE_KEYS, property_graph

if TYPE_CHECKING:
    from .graph import Graph

STDOUT = "<stdout>"


class Exporter:
    """Base class of exporters: write a graph in one format (``kgc graph export -f NAME``)."""

    name: ClassVar[str]

    def export(self, graph: Graph, output: Path | None) -> str:
        """Write ``graph`` to ``output`` (``None``: standard output); returns where it wrote."""
        raise NotImplementedError


@contextlib.contextmanager
def _binary(output: Path | None) -> Iterator[IO[bytes]]:
    """A binary stream to ``output``, or to standard output."""
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as out:
        yield out


def _where(output: Path | None) -> str:
    return STDOUT if output is None else str(output)


def _folder(name: str, output: Path | None) -> Path:
    if output is None:
        raise InputError(f"the {name} export writes a folder: give one with -o/--output")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise InputError(f"the {name} export writes a folder, not a file", path=str(output))
    output.mkdir(parents=True, exist_ok=True)
    return output


def _flat(value: Any) -> Any:
    """A value for a flat format: a list joined with ``;``."""
    return ";".join(value) if isinstance(value, list) else value


# -- RDF ------------------------------------------------------------------------------------
class _Rdf(Exporter):
    format: ClassVar[RdfFormat]

    def statements(self, graph: Graph) -> Iterator[Any]:
        return graph.store.quads()

    def export(self, graph: Graph, output: Path | None) -> str:
        with _binary(output) as out:
            serialize(self.statements(graph), out, self.format, prefixes=PREFIXES)
        return _where(output)


class Turtle(_Rdf):
    """Turtle: the statements of every document (and of entity resolution) in one graph."""

    name, format = "ttl", RdfFormat.TURTLE

    def statements(self, graph: Graph) -> Iterator[Any]:
        return iter(dict.fromkeys(quad.triple for quad in graph.store.quads()))


class TriG(_Rdf):
    """TriG: a named graph per document."""

    name, format = "trig", RdfFormat.TRIG


class NQuads(_Rdf):
    """N-Quads: a named graph per document, one statement a line."""

    name, format = "nq", RdfFormat.N_QUADS


class JsonLd(_Rdf):
    """JSON-LD: a named graph per document."""

    name, format = "jsonld", RdfFormat.JSON_LD


# -- property graphs ------------------------------------------------------------------------
class GraphMl(Exporter):
    """GraphML (Gephi, networkx, yEd): entities and events as nodes, relations and roles as edges."""

    name = "graphml"

    def export(self, graph: Graph, output: Path | None) -> str:
        import networkx

        nodes, edges = property_graph(graph.store.quads())
        g = networkx.MultiDiGraph()
        g.add_nodes_from((n["id"], {k: v for k, v in n.items() if k != "id"}) for n in nodes)
        g.add_edges_from((e["source"], e["target"], {k: _flat(e[k]) for k in EDGE_KEYS[2:]}) for e in edges)
        with _binary(output) as out:
            networkx.write_graphml(g, out, encoding="utf-8")
        return _where(output)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)


def _attribute_keys(nodes: list[dict[str, Any]]) -> list[str]:
    return sorted({k for n in nodes for k in n} - set(NODE_KEYS))


class Csv(Exporter):
    """``nodes.csv`` and ``edges.csv`` in a folder."""

    name = "csv"

    def export(self, graph: Graph, output: Path | None) -> str:
        folder = _folder(self.name, output)
        nodes, edges = property_graph(graph.store.quads())
        header = list(NODE_KEYS) + _attribute_keys(nodes)
        _write_csv(folder / "nodes.csv", header, [[n.get(k, "") for k in header] for n in nodes])
        _write_csv(folder / "edges.csv", list(EDGE_KEYS), [[_flat(e[k]) for k in EDGE_KEYS] for e in edges])
        return str(folder)


_NEO4J_IMPORT = ("neo4j-admin database import full --nodes=nodes.csv --relationships=relationships.csv "
                 "--multiline-fields=true neo4j")


class Neo4jCsv(Exporter):
    """CSV files for ``neo4j-admin database import full`` in a folder."""

    name = "neo4j-csv"

    def export(self, graph: Graph, output: Path | None) -> str:
        folder = _folder(self.name, output)
        nodes, edges = property_graph(graph.store.quads())
        keys = list(NODE_KEYS[1:]) + _attribute_keys(nodes)
        header = ["id:ID", ":LABEL"] + [f"{k}:{'int' if k == 'support' else 'string'}" for k in keys]
        _write_csv(folder / "nodes.csv", header, [[n["id"], n["kind"].title()] + [n.get(k, "") for k in keys]
                                                 for n in nodes])
        header = [":START_ID", ":END_ID", ":TYPE", "kind:string", "support:int", "documents:string[]"]
        _write_csv(folder / "relationships.csv", header, [
            [e["source"], e["target"], e["label"], e["kind"], e["support"], _flat(e["documents"])] for e in edges])
        (folder / "README").write_text(f"Import into Neo4j (from this folder): {_NEO4J_IMPORT}\n", encoding="utf-8")
        return str(folder)


# -- Cypher ---------------------------------------------------------------------------------
def _cypher_map(properties: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{cypher_name(k)}: {cypher_value(v)}" for k, v in properties.items()) + "}"


class Cypher(Exporter):
    """A Cypher script (``cypher-shell -f``) that merges every node by its IRI and every edge into Neo4j.

    One statement a line: a uniqueness constraint per label, then ``MERGE (n:Label {id: ...}) SET n += {...};``
    per node and ``MATCH (a:Label {id: ...}), (b:Label {id: ...}) MERGE (a)-[r:`type`]->(b) SET r += {...};``
    per edge. Running it again changes nothing.
    """

    name = "cypher"

    def export(self, graph: Graph, output: Path | None) -> str:
        nodes, edges = property_graph(graph.store.quads())
        labels = {n["id"]: cypher_name(n["kind"].title()) for n in nodes}
        lines = [f"CREATE CONSTRAINT {cypher_name('kgc_' + kind)} IF NOT EXISTS FOR (n:{cypher_name(kind.title())}) "
                 "REQUIRE n.id IS UNIQUE;" for kind in ("entity", "event")]
        lines += [f"MERGE (n:{labels[n['id']]} {{id: {cypher_string(n['id'])}}}) SET n += "
                  f"{_cypher_map({k: v for k, v in n.items() if k != 'id'})};" for n in nodes]
        lines += [f"MATCH (a:{labels[e['source']]} {{id: {cypher_string(e['source'])}}}), "
                  f"(b:{labels[e['target']]} {{id: {cypher_string(e['target'])}}}) "
                  f"MERGE (a)-[r:{cypher_name(e['label'])}]->(b) SET r += "
                  f"{_cypher_map({k: e[k] for k in ('kind', 'support', 'documents')})};" for e in edges]
        with _binary(output) as out:
            out.write("".join(line + "\n" for line in lines).encode("utf-8"))
        return _where(output)
