"""The ``oxigraph`` store: an embedded RDF store in a folder (pyoxigraph, RocksDB), the default.

New documents are written with pyoxigraph's bulk loader, in a background thread so that the next
batch is built meanwhile. A bulk load is not a transaction, so each one is recorded first (the
graphs it writes, in the graph ``urn:kgc:graph:pending``) and the record removed once it is done;
opening the store for writing undoes the graphs of any record left by a process that died
mid-write. Replacing documents that exist is one SPARQL update (a transaction).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pyoxigraph import NamedNode, Quad, RdfFormat, Store

from kgcore import InputError

from .model import KGC, PENDING_GRAPH as PENDING, PREFIXES, in_graph
from .store import GraphStore, one_line

_DIGEST, _RESULT = NamedNode(KGC + "digest"), NamedNode(KGC + "result")
_WRITES = NamedNode(KGC + "writes")


class OxigraphStore(GraphStore):
    """A folder on disk. One process writes at a time; readers (``read_only``) open beside it."""

    name = "oxigraph"

    def __init__(self, location: str, *, read_only: bool = False, **options: Any):
        super().__init__(location, read_only=read_only)
        if options:
            raise InputError(f"unknown option(s) {', '.join(sorted(options))} for graph store 'oxigraph'")
        path = Path(location)
        if path.exists() and not path.is_dir():
            raise InputError("a graph store is a folder, not a file", path=location)
        try:
            if read_only:
                if not (path / "CURRENT").is_file():
                    raise InputError("no graph store here (run kgc graph build first)", path=location)
                self.store = Store.read_only(str(path))
            else:
                self.store = Store(str(path))
        except OSError as exc:
            if "lock" in str(exc).lower():
                raise InputError("the graph store is open for writing in another process; wait for it to finish, "
                                 "or open it read-only (queries, show, stats, export do)", path=location) from None
            raise InputError(f"cannot open the graph store: {exc}", path=location) from None
        self._writer = None if read_only else ThreadPoolExecutor(1, thread_name_prefix="kgc-graph-write")
        self._pending: Future | None = None
        if not read_only:
            self.remove(self.unfinished())  # undo what a process that died mid-write left

    @classmethod
    def accepts(cls, location: str) -> bool:
        return "://" not in location

    def unfinished(self) -> list[str]:
        """The graphs of bulk writes that never finished (a writer undoes them when it opens the store)."""
        node = NamedNode(PENDING)
        return sorted(q.object.value for q in self.store.quads_for_pattern(node, _WRITES, None, node))

    def flush(self) -> None:
        pending = self._pending  # kept: waiting again costs nothing, and threads that read never race on it
        if pending is not None:
            pending.result()

    def digests(self, graphs: Iterable[str]) -> dict[str, str]:
        self.flush()
        out = {}
        for graph in graphs:
            node = NamedNode(graph)
            for quad in self.store.quads_for_pattern(node, _DIGEST, None, node):
                out[graph] = quad.object.value
        return out

    def results(self, graph: str) -> list[str]:
        self.flush()
        node = NamedNode(graph)
        return sorted(q.object.value for q in self.store.quads_for_pattern(node, _RESULT, None, node))

    def replace(self, graphs: Mapping[str, str]) -> None:
        self.flush()
        existing = {g for g in graphs if self.store.contains_named_graph(NamedNode(g))}
        if existing:  # drop and insert in one transaction
            drops = "".join(f"DROP SILENT GRAPH <{g}> ;\n" for g in existing)
            body = "\n".join(f"GRAPH <{g}> {{\n{graphs[g]}}}" for g in existing)
            self.store.update(f"{drops}INSERT DATA {{\n{body}\n}}")
        new = [g for g in graphs if g not in existing]
        if new:
            record = f"GRAPH <{PENDING}> {{ {' '.join(f'<{PENDING}> <{_WRITES.value}> <{g}> .' for g in new)} }}"
            self.store.update(f"INSERT DATA {{ {record} }}")
            data = "".join(in_graph(graphs[g], g) for g in new)
            self._pending = self._writer.submit(self._bulk_load, data, record)

    def _bulk_load(self, data: str, record: str) -> None:
        self.store.bulk_load(data, format=RdfFormat.N_QUADS)
        self.store.update(f"DELETE DATA {{ {record} }}")

    def remove(self, graphs: Iterable[str]) -> None:
        self.flush()
        drops = "".join(f"DROP SILENT GRAPH <{g}> ;\n" for g in graphs)
        if drops:
            self.store.update(drops + f"DROP SILENT GRAPH <{PENDING}>")

    def query(self, sparql: str) -> Any:
        self.flush()
        try:
            return self.store.query(sparql, use_default_graph_as_union=True, prefixes=PREFIXES)
        except SyntaxError as exc:
            raise InputError(f"SPARQL syntax error: {one_line(str(exc))}") from None

    def update(self, sparql: str) -> None:
        self.flush()
        try:
            self.store.update(sparql, prefixes=PREFIXES)
        except SyntaxError as exc:
            raise InputError(f"SPARQL syntax error: {one_line(str(exc))}") from None

    def quads(self) -> Iterator[Quad]:
        self.flush()
        return iter(self.store)

    def graph_quads(self, graph: str) -> list[Quad]:
        self.flush()
        return list(self.store.quads_for_pattern(None, None, None, NamedNode(graph)))

    def close(self) -> None:
        store = self.__dict__.pop("store", None)
        if store is None:
            return
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.shutdown()
                store.flush()
            del store
            gc.collect()  # pyoxigraph releases the folder's lock when the store is collected
