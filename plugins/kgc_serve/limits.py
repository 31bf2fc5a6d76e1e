"""Refuse request bodies over a size limit (413, a JSON error), whether they say their length or stream it."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException


class _TooLarge(HTTPException):
    """Raised while the app reads a streamed body that grew over the limit (FastAPI passes it on)."""


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413 before the app reads it all."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"the request body is over the server's limit of {self.limit:,} bytes"

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": self._message()}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
