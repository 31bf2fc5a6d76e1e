"""Any OpenAI-compatible HTTP endpoint: OpenAI itself, vLLM's server, llama.cpp's servers, ...

Requests of a batch run concurrently (a thread pool over one thread-safe ``openai.OpenAI``
client) and come back in order. Retries are the ``openai`` client's own: it retries connection
errors, timeouts, 408, 409, 429 and every 5xx with exponential backoff (0.5 s doubling, capped at
8 s, minus up to 25 % random jitter), honours ``Retry-After`` / ``retry-after-ms`` up to two
minutes, and stops after ``max_retries``. That is exactly the policy wanted here, bounded and
maintained upstream, so no second retry layer (tenacity or a hand-written loop) wraps it. Once
retries are spent, :class:`~kgcore.backend.BackendError` names the endpoint, the HTTP status (or
timeout / connection failure) and the number of attempts — never the API key.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kgcore.backend import Backend, BackendError, Generation, GenerationParams, Request
from kgcore.errors import InputError

from .llamacpp import GRAMMAR_CACHE

MODES = ("chat", "completion")
#: How a request's JSON Schema is sent (when ``params.constrained``):
#: ``json_schema``: OpenAI structured outputs, ``{"type": "json_schema", "json_schema": {...}}``
#: (OpenAI, vLLM); ``json_object_schema``: ``{"type": "json_object", "schema": S}`` (llama-cpp-python's
#: server, llama.cpp's ``llama-server``); ``gbnf``: the schema compiled to a GBNF grammar sent as
#: ``grammar`` (llama-cpp-python's server, also for ``/v1/completions``; needs llama-cpp-python on the
#: client); ``none``: unconstrained.
RESPONSE_FORMATS = ("json_schema", "json_object_schema", "gbnf", "none")
OPENAI_BASE_URL = "https://api.openai.com/v1"
#: Key sent to servers that need none (local llama.cpp / vLLM servers without ``--api-key``).
PLACEHOLDER_KEY = "sk-no-key-required"
_SECRET_WORDS = ("key", "secret", "password", "auth")


@dataclass(frozen=True)
class OpenAIOptions:
    model: str
    #: Endpoint root such as ``http://127.0.0.1:8000/v1``; default ``$OPENAI_BASE_URL``, else OpenAI.
    base_url: str | None = None
    #: Prefer ``api_key_env``: an option value can end up in shell history.
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str = "OPENAI_API_KEY"
    mode: str = "chat"
    concurrency: int = 4
    #: Requests sent per second at most (0: no limit); ``--engine ray`` shares it among its actors.
    requests_per_second: float = 0.0
    max_retries: int = 3
    #: Seconds per HTTP attempt (connect, write, and read of the non-streamed answer).
    timeout: float = 60.0
    response_format: str = "json_schema"
    #: ``strict`` flag of the ``json_schema`` style.
    strict: bool = True
    #: JSON object merged into every request body (server-specific fields: ``top_k``, ...).
    extra_body: str | dict | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise InputError("backend 'openai' needs a model name (-m NAME)")
        if self.mode not in MODES:
            raise InputError(f"backend 'openai': mode must be one of {', '.join(MODES)}, got '{self.mode}'")
        if self.response_format not in RESPONSE_FORMATS:
            raise InputError(f"backend 'openai': response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
                             f"got '{self.response_format}'")
        if self.concurrency < 1:
            raise InputError("backend 'openai': concurrency must be at least 1")
        if self.requests_per_second < 0:
            raise InputError("backend 'openai': requests_per_second must be 0 (no limit) or more")
        if self.max_retries < 0:
            raise InputError("backend 'openai': max_retries must be 0 or more")
        if not self.timeout > 0:
            raise InputError("backend 'openai': timeout must be positive")
        _parse_extra_body(self.extra_body)


def _parse_extra_body(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputError(f"backend 'openai': extra_body is not JSON ({exc.msg})") from None
    if not isinstance(parsed, dict):
        raise InputError("backend 'openai': extra_body must be a JSON object")
    return parsed


def _public_url(url: str) -> str:
    """``url`` without user info or query string (either may carry credentials)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _server_message(exc: Any) -> str:
    """The server's own error message (``{"error": {"message": ...}}``), else the client's text."""
    body = exc.body
    if isinstance(body, Mapping):
        body = body.get("error", body)
    if isinstance(body, Mapping):
        body = body.get("message") or body.get("detail")
    if isinstance(body, str) and body.strip():
        return body
    return re.sub(r"^Error code: \d+ - ", "", str(exc.message))


def _is_secret_name(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


class OpenAIBackend(Backend):
    """Chat (``/chat/completions``, the server applies the model's template to ``messages``) or
    completion (``/completions`` with the prompt rendered by a named ``--template``)."""

    name = "openai"
    Options = OpenAIOptions
    supports_json_schema = True
    packages = ("openai",)

    def __init__(self, options: OpenAIOptions):
        super().__init__(options)
        try:
            import openai
        except ImportError:
            raise BackendError("backend 'openai' needs the openai package: pip install 'kgcore[openai]'") from None

        self._openai = openai
        base_url = options.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        self.endpoint = _public_url(base_url)
        key, self._key_source = options.api_key, "option"
        if not key:
            key, self._key_source = os.environ.get(options.api_key_env), f"${options.api_key_env}"
        if not key:
            if urlsplit(base_url).hostname == urlsplit(OPENAI_BASE_URL).hostname:
                raise BackendError(f"openai backend: no API key for {self.endpoint}: set ${options.api_key_env} "
                                   f"(or -O api_key_env=NAME to read another variable)")
            key, self._key_source = PLACEHOLDER_KEY, "placeholder"
        self._key = key
        self._extra_body = _parse_extra_body(options.extra_body)
        self.supports_json_schema = options.response_format != "none"
        self.client = openai.OpenAI(api_key=key, base_url=base_url, timeout=options.timeout,
                                    max_retries=options.max_retries)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._grammars: dict[str, str] = {}
        self._warned_template = False
        self._next_send = 0.0  # monotonic time before which no request is sent (requests_per_second)

    # -- requests -----------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[Generation]:
        calls = [self._call_args(request, params) for request in requests]  # fail before any traffic
        if len(calls) <= 1 or self.options.concurrency == 1:
            return [self._send(*call) for call in calls]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="kgc-openai")
        futures = [self._pool.submit(self._send, *call) for call in calls]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()  # after a failure: drop requests not yet started

    def _call_args(self, request: Request, params: GenerationParams) -> tuple[str, dict[str, Any]]:
        opts = self.options
        kwargs: dict[str, Any] = {"model": opts.model, "max_tokens": params.max_new_tokens,
                                  "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
        if params.stop:
            kwargs["stop"] = list(params.stop)
        extra = dict(self._extra_body)
        schema = request.json_schema if params.constrained else None
        if opts.mode == "chat":
            if request.prompt is not None and not self._warned_template:
                self._warned_template = True
                warnings.warn("openai backend in chat mode sends messages and the server applies the model's own "
                              "template; the named chat template is ignored (use -O mode=completion to send it)",
                              stacklevel=2)
            kwargs["messages"] = [dict(message) for message in request.messages]
        else:
            if request.prompt is None:
                raise BackendError("openai backend: mode=completion sends a rendered prompt; pass a chat template "
                                   "name (--template NAME, see `kgc templates`) or use -O mode=chat")
            kwargs["prompt"] = request.prompt
        if schema is not None and opts.response_format != "none":
            if opts.response_format == "gbnf":
                extra["grammar"] = self._grammar(schema)
            else:
                fmt = ({"type": "json_schema",
                        "json_schema": {"name": "answer", "schema": dict(schema), "strict": opts.strict}}
                       if opts.response_format == "json_schema" else {"type": "json_object", "schema": dict(schema)})
                if opts.mode == "chat":
                    kwargs["response_format"] = fmt
                else:  # not a parameter of the completions API; servers that support it read the body
                    extra["response_format"] = fmt
        if extra:
            kwargs["extra_body"] = extra
        return opts.mode, kwargs

    def _grammar(self, schema: Mapping[str, Any]) -> str:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            try:
                from llama_cpp.llama_grammar import json_schema_to_gbnf
            except ImportError:
                raise BackendError("openai backend: response_format=gbnf compiles schemas with llama-cpp-python; "
                                   "install it or choose another response_format") from None
            self._grammars[key] = json_schema_to_gbnf(json.dumps(schema))
            if len(self._grammars) > GRAMMAR_CACHE:  # answers that quote the text: a schema per text
                del self._grammars[next(iter(self._grammars))]
        return self._grammars[key]

    def _pace(self) -> None:
        """Wait for this request's turn under ``requests_per_second``."""
        if self.options.requests_per_second > 0:
            with self._lock:
                now = time.monotonic()
                turn = max(self._next_send, now)
                self._next_send = turn + 1 / self.options.requests_per_second
            time.sleep(turn - now)

    def _send(self, mode: str, kwargs: dict[str, Any]) -> Generation:
        openai = self._openai
        self._pace()
        path = "/chat/completions" if mode == "chat" else "/completions"
        try:
            if mode == "chat":
                response = self.client.chat.completions.create(**kwargs)
            else:
                response = self.client.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise BackendError(self._failure(path, f"HTTP {exc.status_code} ({self._short(_server_message(exc))})",
                                             exc)) from exc
        except openai.APITimeoutError as exc:
            raise BackendError(self._failure(path, f"timed out (limit {self.options.timeout:g} s per attempt)",
                                             exc)) from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise BackendError(self._failure(path, f"connection failed ({self._short(str(cause))})", exc)) from exc
        if not response.choices:
            raise BackendError(f"openai backend: {self.endpoint}{path} answered without choices")
        choice = response.choices[0]
        text = (choice.message.content if mode == "chat" else choice.text) or ""
        usage = response.usage
        return Generation(text=text, prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
                          completion_tokens=(usage.completion_tokens or 0) if usage else 0,
                          finish_reason=choice.finish_reason or "unknown")

    def _failure(self, path: str, what: str, exc: Exception) -> str:
        attempts = self._attempts(exc)
        return (f"openai backend: {self.endpoint}{path} {what} after {attempts} attempt{'s' * (attempts != 1)} "
                f"(max_retries={self.options.max_retries})")

    def _attempts(self, exc: Exception) -> int:
        """How many times the client sent the request (it stamps retries in a header)."""
        request = getattr(exc, "request", None)
        try:
            return int(request.headers["x-stainless-retry-count"]) + 1
        except (AttributeError, KeyError, TypeError, ValueError):
            status = getattr(exc, "status_code", None)
            retried = status is None or status in (408, 409, 429) or status >= 500
            return self.options.max_retries + 1 if retried else 1

    def _short(self, text: str, limit: int = 200) -> str:
        text = " ".join(str(text).split()).replace(self._key, "***")
        return text if len(text) <= limit else text[:limit - 1] + "…"

    # -- metadata and cleanup -----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        opts = self.options
        return {"backend": self.name, "model": opts.model, "base_url": self.endpoint, "mode": opts.mode,
                "api_key_source": self._key_source, "concurrency": opts.concurrency,
                "max_retries": opts.max_retries, "timeout": opts.timeout, "response_format": opts.response_format,
                "strict": opts.strict,
                "extra_body": {k: v for k, v in self._extra_body.items() if not _is_secret_name(k)}}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.client.close()


__all__ = ["OpenAIBackend", "OpenAIOptions", "PLACEHOLDER_KEY", "RESPONSE_FORMATS"]
