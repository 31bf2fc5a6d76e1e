"""The ``sparql`` store: any SPARQL 1.1 endpoint over HTTP (Oxigraph server, Fuseki, Virtuoso, GraphDB).

The location is the query endpoint. Updates go to the same URL with a trailing ``/query`` replaced by
``/update`` (``http://host:7878/query`` -> ``http://host:7878/update``), else to the location itself;
``update_url=`` names another. Requests follow the SPARQL 1.1 Protocol: POST ``application/sparql-query``
(JSON results, N-Triples for CONSTRUCT and DESCRIBE) and POST ``application/sparql-update``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pyoxigraph import NamedNode, Quad, QueryResultsFormat, RdfFormat, Store, parse_query_results

from kgcore import InputError

from .model import KGC, PREFIXES
from .store import GraphStore, one_line

_PROLOGUE = " ".join(f"PREFIX {name}: <{iri}>" for name, iri in PREFIXES.items()) + "\n"
_RESULTS, _TRIPLES = "application/sparql-results+json", "application/n-triples"
_ACCEPT = f"{_RESULTS}, {_TRIPLES};q=0.9, application/n-quads;q=0.8"
#: Where a server's error message gives a line number of the request (Oxigraph, Jena).
_LINE = re.compile(r"(?<=error at )\d+(?=:\d)|(?<=line )\d+(?=, column)")


class SparqlStore(GraphStore):
    """A SPARQL 1.1 endpoint. Each batch of :meth:`replace` is one update request (one transaction where the
    server runs an update request atomically: Oxigraph, Fuseki/TDB2, GraphDB do).

    Options: ``update_url``; ``timeout`` (seconds per request, 60); ``user`` and ``password`` (HTTP basic
    authentication); ``union_default_graph`` (True: ask with Oxigraph's ``union-default-graph`` parameter for the
    union of all graphs as the default graph; other servers ignore it and must be set up to give the union).
    """

    name = "sparql"

    def __init__(self, location: str, *, read_only: bool = False, update_url: str | None = None,
                 timeout: float = 60.0, user: str | None = None, password: str | None = None,
                 union_default_graph: bool = True, **options: Any):
        super().__init__(location, read_only=read_only)
        if options:
            raise InputError(f"unknown option(s) {', '.join(sorted(options))} for graph store 'sparql'")
        self.update_url = update_url or _update_url(location)
        self.query_url = location
        if union_default_graph:
            self.query_url += ("&" if urlsplit(location).query else "?") + "union-default-graph"
        self.timeout = timeout
        self.headers: dict[str, str] = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self._union_checked = False

    @classmethod
    def accepts(cls, location: str) -> bool:
        return location.startswith(("http://", "https://"))

    # -- reading ----------------------------------------------------------------------------
    def digests(self, graphs: Iterable[str]) -> dict[str, str]:
        values = " ".join(str(NamedNode(g)) for g in graphs)
        if not values:
            return {}
        rows = self._select(f"SELECT ?g ?d WHERE {{ GRAPH ?g {{ ?g <{KGC}digest> ?d }} VALUES ?g {{ {values} }} }}")
        return {row["g"].value: row["d"].value for row in rows}

    def results(self, graph: str) -> list[str]:
        node = NamedNode(graph)
        rows = self._select(f"SELECT ?r WHERE {{ GRAPH {node} {{ {node} <{KGC}result> ?r }} }}")
        return sorted(row["r"].value for row in rows)

    def query(self, sparql: str) -> Any:
        if not self._union_checked:
            self._check_union()
        return self._query(_PROLOGUE + sparql)

    def quads(self) -> Iterator[Quad]:
        """Every quad of the named graphs, streamed."""
        with self._post(self.query_url, "application/sparql-query", _RESULTS,
                        "SELECT ?s ?p ?o ?g WHERE { GRAPH ?g { ?s ?p ?o } }") as response:
            for row in parse_query_results(response, QueryResultsFormat.JSON):
                yield Quad(row["s"], row["p"], row["o"], row["g"])

    def graph_quads(self, graph: str) -> list[Quad]:
        node = NamedNode(graph)
        triples = self._query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH {node} {{ ?s ?p ?o }} }}")
        return [Quad(t.subject, t.predicate, t.object, node) for t in triples]

    # -- writing ----------------------------------------------------------------------------
    def replace(self, graphs: Mapping[str, str]) -> None:
        drops = "".join(f"DROP SILENT GRAPH {NamedNode(g)} ;\n" for g in graphs)
        body = "\n".join(f"GRAPH {NamedNode(g)} {{\n{text}}}" for g, text in graphs.items() if text)
        if drops:
            self._update(drops + (f"INSERT DATA {{\n{body}\n}}" if body else ""))

    def remove(self, graphs: Iterable[str]) -> None:
        drops = " ;\n".join(f"DROP SILENT GRAPH {NamedNode(g)}" for g in graphs)
        if drops:
            self._update(drops)

    def update(self, sparql: str) -> None:
        self._update(_PROLOGUE + sparql)

    # -- HTTP -------------------------------------------------------------------------------
    def _update(self, sparql: str) -> None:
        if self.read_only:
            raise InputError(f"the graph store {self.location} is open read-only; it takes no writes")
        with self._post(self.update_url, "application/sparql-update", "*/*", sparql):
            pass

    def _query(self, sparql: str) -> Any:
        """A query's answer as pyoxigraph's types (CONSTRUCT and DESCRIBE: ``QueryTriples``)."""
        with self._post(self.query_url, "application/sparql-query", _ACCEPT, sparql) as response:
            kind, body = response.headers.get_content_type(), response.read()
        results, rdf = QueryResultsFormat.from_media_type(kind), RdfFormat.from_media_type(kind)
        try:
            if results is not None:
                return parse_query_results(body, results)
            if rdf is not None:
                graph = Store()
                graph.load(body, rdf)
                return graph.query("CONSTRUCT WHERE { ?s ?p ?o }", use_default_graph_as_union=True)
        except SyntaxError as exc:
            raise InputError(f"the SPARQL endpoint {self.location} answered unreadable {kind}: {exc}") from None
        raise InputError(f"the SPARQL endpoint {self.location} answered {kind}, neither query results nor RDF")

    def _select(self, sparql: str) -> list[Any]:
        return list(self._query(sparql))

    def _check_union(self) -> None:
        """Refuse to answer when the endpoint's default graph is not the union of its graphs (a quad of a
        named graph is not in it): kgc's queries would find nothing."""
        rows = self._select("SELECT ?union WHERE { { SELECT ?s ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 1 } "
                            "BIND (EXISTS { ?s ?p ?o } AS ?union) }")
        if rows and rows[0]["union"].value != "true":
            raise InputError(f"the default graph of {self.location} is not the union of its named graphs; set the "
                             "server up to give it (Oxigraph: --union-default-graph or this store's "
                             "union_default_graph option; Fuseki: tdb2:unionDefaultGraph true)")
        self._union_checked = bool(rows)

    @contextmanager
    def _post(self, url: str, content_type: str, accept: str, body: str) -> Iterator[Any]:
        """POST a request and read its response inside the ``with``; errors as one clear line."""
        import urllib.error
        import urllib.request

        headers = {"Content-Type": content_type, "Accept": accept, **self.headers}
        request = urllib.request.Request(url, body.encode("utf-8"), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                yield response
        except urllib.error.HTTPError as exc:
            url = self.location if url == self.query_url else url
            message = _one_line(exc.read().decode("utf-8", "replace"), body.startswith(_PROLOGUE)) or exc.reason
            if exc.code == 400:
                raise InputError(f"SPARQL syntax error: {message}") from None
            raise InputError(f"the SPARQL endpoint {url} answered HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            url, reason = self.location if url == self.query_url else url, getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise InputError(f"the SPARQL endpoint {url} did not answer within {self.timeout:g} s") from None
            raise InputError(f"cannot reach the SPARQL endpoint {url}: {getattr(reason, 'strerror', None) or reason}") \
                from None


def _update_url(location: str) -> str:
    """The update endpoint beside a query endpoint: a trailing ``/query`` becomes ``/update``."""
    parts = urlsplit(location)
    if parts.path.endswith("/query"):
        return urlunsplit(parts._replace(path=parts.path[: -len("query")] + "update"))
    return location


def _one_line(message: str, prologue: bool) -> str:
    """A server's error message on one line; with ``prologue``, its line numbers those of the request without it."""
    text = one_line(message, 500)
    return _LINE.sub(lambda m: str(max(int(m.group()) - 1, 1)), text) if prologue else text
