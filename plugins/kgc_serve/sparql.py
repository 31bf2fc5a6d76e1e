"""``/sparql``: the SPARQL 1.1 Protocol over the server's graph; updates only with ``--allow-update``."""

from __future__ import annotations

from typing import Callable
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .service import Service

_RESULTS = ["application/sparql-results+json", "application/sparql-results+xml", "text/csv",
            "text/tab-separated-values"]
_GRAPHS = ["text/turtle", "application/n-triples", "application/rdf+xml", "application/ld+json"]
_BODY = {"requestBody": {"content": {
    "application/sparql-query": {"schema": {"type": "string"}},
    "application/sparql-update": {"schema": {"type": "string"}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
        "query": {"type": "string"}, "update": {"type": "string"}}}}}}}


def sparql_router(service: Service, auth: Callable) -> APIRouter:
    router = APIRouter(tags=["sparql"], dependencies=[Depends(auth)])

    @router.get("/sparql", response_class=Response)
    async def get(request: Request, query: str = Query(..., description="A SPARQL 1.1 query.")) -> Response:
        """Answer a query (SELECT and ASK: JSON, XML, CSV or TSV results; CONSTRUCT and DESCRIBE: Turtle,
        N-Triples, RDF/XML or JSON-LD), as the Accept header asks."""
        return await _answer(service, request, query)

    @router.post("/sparql", response_class=Response, openapi_extra=_BODY)
    async def post(request: Request) -> Response:
        """A query or, when the server allows it, an update: as the body (``application/sparql-query``,
        ``application/sparql-update``) or a form field (``query=``, ``update=``)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = _text(await request.body())
        if kind == "application/sparql-query":
            return await _answer(service, request, body)
        if kind == "application/sparql-update":
            return await _update(service, body)
        if kind == "application/x-www-form-urlencoded":
            form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            if "update" in form:
                return await _update(service, form["update"])
            if "query" in form:
                return await _answer(service, request, form["query"])
            raise HTTPException(400, "the form has neither query nor update")
        raise HTTPException(415, "send application/sparql-query, application/sparql-update or a form "
                                 "(application/x-www-form-urlencoded)")

    return router


async def _answer(service: Service, request: Request, query: str) -> Response:
    body, kind = await run_in_threadpool(_serialized, service, query, request.headers.get("accept", ""))
    return Response(body, media_type=kind)


def _serialized(service: Service, query: str, accept: str) -> tuple[bytes, str]:
    """The query's answer in the media type asked for (in one thread: pyoxigraph's results stay in theirs)."""
    from pyoxigraph import QueryResultsFormat, QueryTriples, RdfFormat

    result = service.graph.query(query)
    if isinstance(result, QueryTriples):
        kind = _pick(accept, _GRAPHS)
        return result.serialize(format=RdfFormat.from_media_type(kind)), kind
    kind = _pick(accept, _RESULTS)
    return result.serialize(format=QueryResultsFormat.from_media_type(kind)), kind


async def _update(service: Service, update: str) -> Response:
    if not service.config.allow_update:
        raise HTTPException(403, "SPARQL updates are off on this server (start it with --allow-update)")
    await service.queue.run(service.graph.store.update, update)
    return Response(status_code=204)


def _pick(accept: str, offered: list[str]) -> str:
    """The first offered media type the Accept header names (its first one when it names none)."""
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return next((kind for kind in wanted if kind in offered), offered[0])


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the body is not UTF-8 (byte {exc.start})") from None


