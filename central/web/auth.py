"""Who may see the pages. The app takes any FastAPI dependency that admits a request or raises 401 (central's
per-store API tokens, or `static_token` below for `shelfwatch web --token-file`). A person logs in once: the
login page keeps the token in an HttpOnly cookie, and `CookieToken` hands it on as the `Authorization: Bearer`
header that API-token dependencies read, so pages, their API and fetches from the page pass the same check.

A dependency may return who was admitted; if that has a `store` (str) or `stores` (collection), the dashboard
shows only those stores."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "shelfwatch_token"


class CookieToken:
    """ASGI middleware: a request without an Authorization header but with the login cookie gets the header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if b"authorization" not in headers and b"cookie" in headers:
                token = _cookie(headers[b"cookie"].decode("latin-1"), COOKIE)
                if token:
                    scope = {**scope, "headers": [*scope["headers"], (b"authorization", f"Bearer {token}".encode())]}
        await self.app(scope, receive, send)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def static_token(token: str) -> Callable[[Request], None]:
    """One shared token (for a laptop or a test): compared in constant time."""
    expected = token.encode()

    def check(request: Request) -> None:
        given = bearer(request)
        if given is None or not secrets.compare_digest(given.encode(), expected):
            raise HTTPException(
                status_code=401, detail="a valid token is needed", headers={"WWW-Authenticate": "Bearer"}
            )

    return check


def stores_of(principal: Any) -> set[str] | None:
    """The stores a principal may see; None: all of them."""
    if principal is None:
        return None
    if isinstance(getattr(principal, "store", None), str):
        return {principal.store}
    stores = getattr(principal, "stores", None)
    return set(stores) if stores is not None else None
