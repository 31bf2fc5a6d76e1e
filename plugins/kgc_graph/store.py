"""The graph store interface: where documents' named graphs live, and how a store is chosen.

A store holds RDF quads, one named graph per document, and answers SPARQL 1.1. The built-in ones
are ``oxigraph`` (an embedded store in a folder, the default), ``sparql`` (any SPARQL 1.1 endpoint
over HTTP) and ``neo4j`` (a Neo4j database through the official driver).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from pyoxigraph import Quad

from kgcore import InputError
from kgcore.plugins import PluginHost, get_host


class GraphStore:
    """Base class of graph stores. Subclasses implement every method below."""

    name: ClassVar[str]
    #: Whether :meth:`query` answers SPARQL.
    sparql: ClassVar[bool] = True

    def __init__(self, location: str, *, read_only: bool = False, **options: Any):
        self.location, self.read_only = location, read_only

    @classmethod
    def accepts(cls, location: str) -> bool:
        """Whether ``location`` names a store of this kind (``kgc graph`` picks the store by it)."""
        return False

    def digests(self, graphs: Iterable[str]) -> dict[str, str]:
        """The stored ``kgc:digest`` of each of these document graphs that exists."""
        raise NotImplementedError

    def results(self, graph: str) -> list[str]:
        """The ``kgc:result`` JSON texts stored in a document graph."""
        raise NotImplementedError

    def replace(self, graphs: Mapping[str, str]) -> None:
        """Replace each named graph by these triples (N-Triples text), all or nothing where the store can."""
        raise NotImplementedError

    def remove(self, graphs: Iterable[str]) -> None:
        """Remove these named graphs."""
        raise NotImplementedError

    def query(self, sparql: str) -> Any:
        """A SPARQL 1.1 query over the union of all graphs: solutions, a boolean or triples (pyoxigraph's types)."""
        raise NotImplementedError

    def update(self, sparql: str) -> None:
        """A SPARQL 1.1 update."""
        raise NotImplementedError

    def quads(self) -> Iterator[Quad]:
        """Every quad of the store."""
        raise NotImplementedError

    def graph_quads(self, graph: str) -> list[Quad]:
        """The quads of one named graph."""
        raise NotImplementedError

    def unfinished(self) -> list[str]:
        """Graphs of writes that never finished (a process died mid-write); none where writes are transactions."""
        return []

    def flush(self) -> None:
        """Wait until every write so far is done."""

    def close(self) -> None:
        """Release files, connections and locks."""


def one_line(message: str, limit: int = 300) -> str:
    """An error message on one line, at most ``limit`` characters."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def open_store(location: str, kind: str | None = None, *, read_only: bool = False, host: PluginHost | None = None,
               **options: Any) -> GraphStore:
    """The store at ``location``: of the kind named, else of the first registered kind that accepts it
    (a folder or a new path: ``oxigraph``)."""
    registry = (host or get_host()).registry
    if kind is None:
        kinds = [c.load() for c in registry.components("graph_store")]
        found = next((k for k in kinds if k.accepts(location)), None)
        if found is None:
            raise InputError(f"no graph store accepts '{location}' (stores: {', '.join(k.name for k in kinds)}); "
                             "name one with --store")
        store_cls = found
    else:
        store_cls = registry.load("graph_store", kind)
    return store_cls(location, read_only=read_only, **options)
