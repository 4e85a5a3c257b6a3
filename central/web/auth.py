"""Who may see the pages. The app takes any FastAPI dependency that admits a request or raises 401 (central's
per-store API tokens, or `static_token` below for `shelfwatch web --token-file`). A person logs in once: the
login page keeps the token in an HttpOnly cookie, and `CookieToken` hands it on as the `Authorization: Bearer`
header that API-token dependencies read, so pages, their API and fetches from the page pass the same check.

A dependency may return who was admitted; if that has a `store` (str) or `stores` (collection), the dashboard
shows only those stores."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "shelfwatch_token"


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
DEFAULT_PORTS = {"http": 80, "https": 443}


class CookieToken:
    """ASGI middleware: a request without an Authorization header but with the login cookie gets the header.

    A browser sends the cookie with every request to this host, whichever page makes it, and SameSite does not
    tell ports apart (another port of the same host is the same site): so a state-changing request (POST and the
    like) made with the cookie must also come from one of this site's own pages, as its Origin (or, without one,
    its Referer) says; otherwise it is refused (403) before anything reads it. A request with its own
    Authorization header is a script's, which no other page can make a browser send: it is not checked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if b"authorization" not in headers and b"cookie" in headers:
                token = _cookie(headers[b"cookie"].decode("latin-1"), COOKIE)
                if token:
                    if scope["method"] not in SAFE_METHODS and not same_origin(scope, headers):
                        await _forbidden(send, "a request made with the login cookie from another site's page is "
                                         "refused (its Origin is not this site)")  # fmt: skip
                        return
                    scope = {**scope, "headers": [*scope["headers"], (b"authorization", f"Bearer {token}".encode())]}
        await self.app(scope, receive, send)


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an Origin or Referer; None when it has none (`null`, garbage)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def same_origin(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """The request's Origin (else its Referer) is this site: the scheme it was served over (https behind a proxy
    that says so with X-Forwarded-Proto, which uvicorn takes from the addresses in FORWARDED_ALLOW_IPS, by default
    127.0.0.1) and the Host it was sent to."""
    claimed = headers.get(b"origin") or headers.get(b"referer")
    if not claimed:
        return False
    theirs = _origin(claimed.decode("latin-1"))
    ours = _origin(f"{scope.get('scheme', 'http')}://{headers.get(b'host', b'').decode('latin-1')}")
    return theirs is not None and theirs == ours


async def _forbidden(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
