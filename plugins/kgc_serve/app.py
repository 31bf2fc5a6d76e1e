"""The FastAPI application of ``kgc serve``: the JSON API under ``/api``, ``/sparql``, ``/healthz``,
``/metrics`` and the web page at ``/`` (docs/serve.md)."""

import enum
import hmac
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from kgcore import BackendError, InputError, KGCError, __version__

from .limits import BodyLimit
from .service import ServeConfig, Service, TaskSpec, TooLarge, check_texts
from .sparql import sparql_router
from .work import Busy

STATIC = Path(__file__).parent / "static"
PRESETS = Path(__file__).parent / "presets.json"


class Error(BaseModel):
    error: str = Field(..., description="What went wrong, in one line.")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "Bad input (a task, label, IRI, format or query kgc cannot use)"},
    401: {"model": Error, "description": "A bearer token is needed (servers started with --token)"},
    403: {"model": Error, "description": "SPARQL updates are off (servers started without --allow-update)"},
    404: {"model": Error, "description": "No such entity or page"},
    413: {"model": Error, "description": "The body or a text is over the server's limits"},
    415: {"model": Error, "description": "A body of a media type the endpoint does not read"},
    422: {"model": Error, "description": "The request does not match its schema"},
    502: {"model": Error, "description": "The backend failed (a model server gone, ...)"},
    503: {"model": Error, "description": "The work queue is full; retry after Retry-After seconds"},
}


NonBlank = Annotated[str, StringConstraints(pattern=r"\S", max_length=200)]
IRI = Annotated[str, StringConstraints(pattern=r"^urn:kgc:entity:[0-9a-f]{24}$")]


class Label(BaseModel):
    """A label with what the model is told of it (docs/schemas.md)."""

    model_config = ConfigDict(extra="forbid")
    name: NonBlank
    description: str | None = Field(None, max_length=2000)
    roles: list[NonBlank] | None = Field(None, max_length=100, description="An event type's argument roles.")
    attributes: list[NonBlank] | None = Field(None, max_length=100, description="A KG entity type's attributes.")
    subject_type: NonBlank | None = None
    object_type: NonBlank | None = None


def _extract_request(config: ServeConfig, tasks: list[str]) -> type[BaseModel]:
    """The body of ``POST /api/extract``, with this server's limits and tasks in its schema."""
    Text = Annotated[str, StringConstraints(pattern=r"\S"), WithJsonSchema(  # noqa: N806
        {"type": "string", "pattern": r"\S", "maxLength": config.max_text_chars})]
    TaskName = enum.Enum("TaskName", {name: name for name in tasks}, type=str)  # noqa: N806

    class TaskRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        task: TaskName = Field(..., description="A task (kgc tasks lists them).", examples=["NER"])
        labels: list[NonBlank | Label] = Field(..., min_length=1, max_length=500, description=(
            "What to extract: label names (an event type with roles: 'type:role1/role2'), or labels with "
            "descriptions, roles or attributes."), examples=[["person", "location"]])

        @field_validator("labels")
        @classmethod
        def _distinct(cls, labels: list[str | Label]) -> list[str | Label]:
            names = [label if isinstance(label, str) else label.name for label in labels]
            return [label for i, label in enumerate(labels) if names.index(names[i]) == i]

    class ExtractRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: Text | Annotated[list[Text], Field(min_length=1), WithJsonSchema({"type": "array", "items": {
            "type": "string", "pattern": r"\S", "maxLength": config.max_text_chars}, "minItems": 1,
            "maxItems": config.max_texts})] = Field(..., description="A text, or a list of texts.",
                                                   examples=["Ada Lovelace worked with Charles Babbage in London."])
        tasks: list[TaskRequest] = Field(..., min_length=1, max_length=8, description=(
            "Tasks run over every text; a relation task after NER gets the NER types in the graph."))
        language: Literal["auto", "en", "zh"] = "auto"
        ingest: bool = Field(False, description="Add the results to the server's graph.")

        @field_validator("tasks")
        @classmethod
        def _distinct(cls, tasks: list[TaskRequest]) -> list[TaskRequest]:
            if len({t.task for t in tasks}) != len(tasks):
                raise ValueError("each task at most once")
            return tasks

        def texts(self) -> list[str]:
            return [self.text] if isinstance(self.text, str) else list(self.text)

        def specs(self) -> list[TaskSpec]:
            return [TaskSpec(t.task.value, [label if isinstance(label, str) else label.model_dump(exclude_none=True)
                                            for label in t.labels]) for t in self.tasks]

    return ExtractRequest


class Decision(BaseModel):
    """A line of a decisions file (kgc graph resolve)."""

    decision: Literal["accept", "reject"] | None = Field(..., description="null: not decided (skipped).")
    members: list[IRI] = Field(..., min_length=2, max_length=1000)
    canonical: IRI
    score: float | None = None
    reasons: list[str] = Field(default_factory=list, max_length=20)


class Decisions(BaseModel):
    decisions: list[Decision] = Field(..., max_length=10_000)
    by: str | None = Field(None, max_length=200, description="Who decided.")


def create_app(service: Service) -> FastAPI:
    """The application over a running :class:`Service`."""
    config = service.config
    app = FastAPI(title="kgc", version=__version__, description="Extract entities, relations and events from "
                  "text with instruction-tuned LLMs and build a knowledge graph. Errors are JSON: {\"error\": ...}.",
                  docs_url="/docs", redoc_url=None)
    app.state.service = service
    _errors(app)
    auth = _auth(config.token)
    api = APIRouter(prefix="/api", dependencies=[Depends(auth)], responses=ERRORS)

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        """Whether the server is up, and how full its work queue is (no token needed)."""
        return {"status": "ok", "queue": service.queue.depth, "queue_capacity": config.queue,
                "uptime_s": round(time.time() - service.started)}

    @app.get("/metrics", tags=["server"], dependencies=[Depends(auth)], response_class=Response,
             responses={401: ERRORS[401]})
    def metrics() -> Response:
        """Counters in Prometheus' text format: requests, latency, queue depth, parse failures."""
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4")

    @api.get("/info", tags=["server"])
    def info() -> dict[str, Any]:
        """Tasks, label presets, export formats, limits and the backend, for a client to offer."""
        import json

        registry = service.host.registry
        return {"version": __version__, **service.describe(),
                "tasks": [{"name": c.name, "summary": c.summary} for c in registry.components("task")],
                "formats": [{"name": c.name, "summary": c.summary} for c in registry.components("exporter")],
                "presets": json.loads(PRESETS.read_text(encoding="utf-8")), "allow_update": config.allow_update,
                "limits": {"max_body_bytes": config.max_body_bytes, "max_text_chars": config.max_text_chars,
                           "max_texts": config.max_texts, "queue": config.queue}}

    ExtractRequest = _extract_request(config, service.host.registry.names("task"))  # noqa: N806

    @api.post("/extract", tags=["extract"])
    async def extract(request: ExtractRequest) -> dict[str, Any]:
        """Run the tasks over the texts: results, triples, character spans, raw answers, parse failures;
        with ``ingest``, also add them to the graph."""
        texts = request.texts()
        check_texts(texts, config)
        return await service.queue.run(service.extract, texts, request.specs(), request.language, request.ingest)

    @api.get("/graph/stats", tags=["graph"])
    def stats() -> dict[str, Any]:
        """Documents, entities per type, relations, events, mentions and quads."""
        return service.graph.stats()

    @api.get("/graph/search", tags=["graph"])
    def search(q: str = Query(..., min_length=1, max_length=200), limit: int = Query(20, ge=1, le=200)) -> list:
        """Entities whose label contains ``q`` (case-insensitive), the best supported first."""
        return service.graph.search(q, limit)

    @api.get("/graph/entity", tags=["graph"])
    def entity(iri: IRI, facts: int = Query(50, ge=1, le=1000), sources: int = Query(3, ge=0, le=20)) -> dict:
        """An entity with its facts, each with its support and the sentences (and spans) that state it."""
        return service.graph.entity(iri, sources, facts)

    @api.get("/graph/subgraph", tags=["graph"])
    def subgraph(iri: IRI | None = None, limit: int = Query(150, ge=1, le=2000)) -> dict:
        """Nodes and edges to draw: around one entity, or (without ``iri``) the best-supported edges of the
        whole graph."""
        return service.graph.subgraph(iri, limit)

    Format = enum.Enum("Format", {name: name for name in service.host.registry.names("exporter")}, type=str)  # noqa: N806

    @api.get("/graph/export", tags=["graph"], response_class=FileResponse)
    def export(format: Format = Format("ttl")) -> FileResponse:  # noqa: A002 (the query parameter's name)
        """The whole graph in an export format (folder formats come as a zip file)."""
        format = format.value  # noqa: A001
        exporter = service.host.registry.load("exporter", format)()
        folder = Path(tempfile.mkdtemp(prefix="kgc-export-"))
        cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
        try:
            written = Path(exporter.export(service.graph, folder / f"graph.{format}"))
            if written.is_dir():
                written = Path(shutil.make_archive(str(folder / f"graph-{format}"), "zip", written))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(written, filename=f"kgc-graph{''.join(written.suffixes) or '.' + format}",
                            background=cleanup)

    @api.get("/graph/proposals", tags=["resolve"])
    async def proposals(threshold: float = Query(90.0, ge=50, le=100)) -> list[dict[str, Any]]:
        """Merge proposals within each type (kgc graph resolve), for review."""
        from kgc_graph import propose

        return await service.queue.run(propose, service.graph, threshold)

    @api.post("/graph/decisions", tags=["resolve"])
    async def decisions(body: Decisions) -> dict[str, int]:
        """Record reviewed merge decisions (accept or reject); nothing merges without one."""
        from kgc_graph import apply

        decided = [d.model_dump() for d in body.decisions]
        return await service.queue.run(lambda: apply(service.graph, decided, body.by, source="kgc serve"))

    app.include_router(api)
    app.include_router(sparql_router(service, auth), responses=ERRORS)
    app.add_middleware(_Observed, service=service)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="page")
    return app


def _auth(token: str | None):
    """A dependency that checks the bearer token, when the server has one."""
    def check(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "this server needs a bearer token: Authorization: Bearer TOKEN",
                                headers={"WWW-Authenticate": "Bearer"})
    return check


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    """Every error as ``{"error": "one clear message"}``, never a traceback."""
    @app.exception_handler(HTTPException)
    async def http(_: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such page or endpoint"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            message = error.get("msg", "invalid").removeprefix("Value error, ")
            if error.get("type") == "json_invalid":
                return _error(400, f"the body is not valid JSON: {error.get('ctx', {}).get('error', message)}")
            problems.append(f"{where}: {message}" if where else message)
        return _error(422, "; ".join(problems[:5]) or "invalid request")

    @app.exception_handler(InputError)
    async def bad_input(_: Request, exc: InputError) -> JSONResponse:
        return _error(404 if str(exc).startswith("no entity") else 400, str(exc))

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        app.state.service.metrics.refused.inc()
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(BackendError)
    async def backend_failed(_: Request, exc: BackendError) -> JSONResponse:
        return _error(502, f"the backend failed: {exc}")

    @app.exception_handler(KGCError)
    async def kgc_error(_: Request, exc: KGCError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def failed(_: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("kgc.serve").exception("request failed")
        return _error(500, f"the server failed: {type(exc).__name__}: {str(exc)[:300]}")


class _Observed:
    """ASGI middleware: count every request by route and status, and time it."""

    def __init__(self, app: Any, service: Service):
        self.app, self.service = app, service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(page)"
            self.service.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
