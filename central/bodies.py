"""What a request body may cost the server: `BodyLimit` refuses a body over its route's limit, from its
Content-Length before a byte is read and, chunked or not, the moment the bytes received pass the limit. Routes
never take their body as a parameter when they need a token (FastAPI reads such a body before it runs the
dependencies); they check the caller first and read the body themselves (see `central.api` and
`central.web.analyses`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 16 * 1024  # a POS message or a form is well under 1 KB


@dataclass(frozen=True)
class Limit:
    bytes: int
    detail: str = ""  # the refusal's words (default: the bytes)


SMALL = Limit(MAX_BODY_BYTES)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: Limit) -> None:
        super().__init__(413, limit.detail or f"the body is over {limit.bytes} bytes")


class BodyLimit:
    """ASGI middleware: `limit_for(path)` gives the most a request's body may have there (None: no limit from this
    middleware)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], Limit | None]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared and (not declared.isdigit() or int(declared) > limit.bytes):
            await _refuse(send, BodyTooLarge(limit))
            return
        received, started = 0, False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except BodyTooLarge as exc:  # raised where nothing turned it into the answer
            if not started:
                await _refuse(send, exc)


async def _refuse(send: Send, exc: HTTPException) -> None:
    body = json.dumps({"detail": exc.detail}).encode()
    await send({"type": "http.response.start", "status": exc.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
