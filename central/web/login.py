"""Logging in and out: the login page keeps the token in an HttpOnly cookie (see `central.web.auth`)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations.
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from central.web.auth import COOKIE
from central.web.site import Site

COOKIE_MAX_AGE_S = 12 * 3600  # a working day: staff log in once per shift


def router(site: Site) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/", refused: bool = False) -> HTMLResponse:
        return site.page(request, "login.html", next=local(next), refused=refused)

    @routes.post("/login")
    def login(request: Request, token: Annotated[str, Form(max_length=512)],
              next: Annotated[str, Form(max_length=512)] = "/"):  # fmt: skip
        response = RedirectResponse(local(next), status_code=303)
        # Secure when served over HTTPS (directly, or behind a proxy that says so with X-Forwarded-Proto: https,
        # trusted from FORWARDED_ALLOW_IPS): the browser then never sends the token over plain HTTP.
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", max_age=COOKIE_MAX_AGE_S,
                            secure=request.url.scheme == "https")  # fmt: skip
        return response

    @routes.post("/logout")
    def logout(request: Request) -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, secure=request.url.scheme == "https", httponly=True, samesite="strict")
        return response

    return routes


def local(url: str) -> str:
    """Only a path on this site: a login page must not redirect elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"
