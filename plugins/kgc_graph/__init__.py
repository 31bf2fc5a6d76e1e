"""Knowledge graphs from extraction results: the graph model, stores, exporters, entity resolution and
the ``kgc graph`` commands (docs/graph.md).

Graph stores and exporters are components of two kinds this plugin adds (``graph_store``,
``exporter``); other plugins register more with ``kgc_register_graph_stores`` and
``kgc_register_exporters``. The Python API::

    from kgc_graph import Graph, Sources
    with Graph.open("kg") as graph:                      # an embedded store in the folder kg/
        graph.add(Sources().files(["extractions.jsonl"]))
        print(graph.stats())

Importing this package is cheap: pyoxigraph and the other libraries load when a graph is used.
"""

from typing import Any

from kgcore import hookimpl

STORES = {
    "oxigraph": ("kgc_graph.oxigraph_store:OxigraphStore", "embedded RDF store in a folder (pyoxigraph), the default"),
    "sparql": ("kgc_graph.sparql_store:SparqlStore", "any SPARQL 1.1 endpoint over HTTP (Oxigraph server, Fuseki, ...)"),
    "neo4j": ("kgc_graph.neo4j_store:Neo4jStore", "a Neo4j database through the official driver"),
}
EXPORTERS = {
    "ttl": ("kgc_graph.export:Turtle", "Turtle: every document's statements in one graph"),
    "trig": ("kgc_graph.export:TriG", "TriG: a named graph per document"),
    "nq": ("kgc_graph.export:NQuads", "N-Quads: a named graph per document"),
    "jsonld": ("kgc_graph.export:JsonLd", "JSON-LD: a named graph per document"),
    "graphml": ("kgc_graph.export:GraphMl", "GraphML (Gephi, networkx, yEd): entities and events as nodes"),
    "csv": ("kgc_graph.export:Csv", "nodes.csv and edges.csv in a folder"),
    "cypher": ("kgc_graph.export:Cypher", "a Cypher script that merges the graph into Neo4j"),
    "neo4j-csv": ("kgc_graph.export:Neo4jCsv", "CSV files for neo4j-admin database import"),
}
_API = {"Graph": "graph", "Document": "model", "Result": "model", "Provenance": "model", "Sources": "sources",
        "GraphStore": "store", "Exporter": "export", "open_store": "store", "propose": "resolve", "apply": "resolve",
        "canonical": "resolve", "members": "resolve"}


def __getattr__(name: str) -> Any:
    """The names of the Python API, imported on first use."""
    if name not in _API:
        raise AttributeError(f"module 'kgc_graph' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)


@hookimpl
def kgc_add_kinds(add):
    from . import hookspecs

    add("graph_store", hookspecs.kgc_register_graph_stores, "kgc_graph.store:GraphStore")
    add("exporter", hookspecs.kgc_register_exporters, "kgc_graph.export:Exporter")


@hookimpl
def kgc_register_graph_stores(register):
    for name, (target, summary) in STORES.items():
        register(name, target, summary=summary)


@hookimpl
def kgc_register_exporters(register):
    for name, (target, summary) in EXPORTERS.items():
        register(name, target, summary=summary)


@hookimpl
def kgc_register_commands(cli):
    from .commands import graph

    cli.add_command(graph)


@hookimpl
def kgc_open_graph(store, extractor):
    from .commands import GraphWriter

    return GraphWriter(store, extractor)
