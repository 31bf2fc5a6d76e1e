"""The knowledge graph as a property graph: entities and events as nodes, relations and roles as edges.

What the GraphML, CSV, Cypher and Neo4j exports write. A node is ``{"id": IRI, "label", "type", "kind"
("entity" or "event"), "support": number of documents, <attribute>: value}``: an entity's label is the
surface form most documents use, an event's its trigger (else its type); attributes are the entity's
``urn:kgc:attr:`` values, several joined with ``;`` in sorted order (an attribute named like one of the
node's own keys is called ``attr_<name>``). An edge is ``{"source", "target", "label": relation or role
name, "kind" ("relation" or "role"), "support", "documents": [document IRIs]}``. Only documents' graphs
count; nodes and edges come sorted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from pyoxigraph import NamedNode, Quad

from .model import KGC, RDF, RDFS

NODE_KEYS = ("id", "label", "type", "kind", "support")
EDGE_KEYS = ("source", "target", "label", "kind", "support", "documents")
_KINDS = {KGC + "Entity": "entity", KGC + "Event": "event"}
_TYPES = {KGC + "entityType", KGC + "eventType"}
_EDGES = {f"{KGC}rel:": "relation", f"{KGC}role:": "role"}
_ATTR = f"{KGC}attr:"


def property_graph(quads: Iterable[Quad]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The nodes and edges of these quads (a store's :meth:`~kgc_graph.store.GraphStore.quads`)."""
    kinds: dict[str, str] = {}
    documents: dict[str, set[str]] = defaultdict(set)
    types: dict[str, str] = {}
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    attributes: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    edges: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for quad in quads:
        graph = quad.graph_name
        if not (isinstance(graph, NamedNode) and graph.value.startswith(f"{KGC}doc:")):
            continue
        s, p, o = quad.subject.value, quad.predicate.value, quad.object
        if p == RDF + "type" and o.value in _KINDS:
            kinds[s] = _KINDS[o.value]
            documents[s].add(graph.value)
        elif p in _TYPES:
            types[s] = o.value
        elif p in (RDFS + "label", KGC + "trigger"):
            labels[s][o.value] += 1
        elif p.startswith(_ATTR):
            name = unquote(p[len(_ATTR):])
            attributes[s][f"attr_{name}" if name in NODE_KEYS else name].add(o.value)
        elif p.startswith(tuple(_EDGES)):
            edges[s, p, o.value].add(graph.value)
    nodes = []
    for iri in sorted(kinds):
        label = min(labels[iri].items(), key=lambda item: (-item[1], item[0]))[0] if labels[iri] else types[iri]
        node = {"id": iri, "label": label, "type": types[iri], "kind": kinds[iri], "support": len(documents[iri])}
        node.update((name, ";".join(sorted(values))) for name, values in sorted(attributes[iri].items()))
        nodes.append(node)
    out = []
    for (s, p, o), docs in sorted(edges.items()):
        prefix, kind = next((prefix, kind) for prefix, kind in _EDGES.items() if p.startswith(prefix))
        out.append({"source": s, "target": o, "label": unquote(p[len(prefix):]), "kind": kind, "support": len(docs),
                    "documents": sorted(docs)})
    return nodes, out
