"""The web app: `mount_web` adds the pages to central's app (`shelfwatch central run`: the dashboard and the
analysis page), `create_web_app` makes an app of the analysis page alone (`shelfwatch web`).

The routes live in rooms of their own, each built from one `Site`: `pages` (HTML), `analyses` (the analyses'
JSON API), `login`, `review` (labels versions and verification: the result page's editor), `zones` (the
installer's zone editor), `dashboard` (its live stream), `alerts` (a manager's verdict) and `review_queue`
(`/review`: what is worth a reviewer's minute). Every route but the login page and the static files
depends on the site's auth dependency when one is given; a page that is refused sends the browser to the login
page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from central.bodies import SMALL, BodyLimit, Limit
from central.catalog import names_from
from central.web import alerts, analyses, dashboard, login, pages, review, review_queue, zones
from central.web.analyses import UPLOAD_PATH
from central.web.auth import COOKIE, CookieToken
from central.web.config import WebConfig, no_bundle
from central.web.jobs import JobQueue
from central.web.review import MAX_LABELS_BYTES
from central.web.site import STATIC, Site
from central.web.upload import FORM_OVERHEAD
from edge.errors import ShelfWatchError

HERE = Path(__file__).parent


def mount_web(
    app: FastAPI, config: WebConfig, *, central: Any | None = None, auth_dependency: Callable[..., Any] | None = None,
    reviews: Any | None = None, files: Any | None = None,
) -> JobQueue:  # fmt: skip
    """Add the pages to `app`; returns the analysis queue (close it on shutdown). With `reviews` (central's
    `central.review.Reviews`), clips can be corrected and verified on their result page; with `files` (central's
    `central.files.FileStore`), the zone editor shows the snapshots and clips boxes uploaded."""
    site = Site(config, JobQueue(config), Jinja2Templates(directory=HERE / "templates"), central, auth_dependency,
                reviews, files)  # fmt: skip
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="web-static")
    for room in (pages, analyses, login, review, zones):
        app.include_router(room.router(site))
    if central is not None:
        app.include_router(dashboard.router(site))
        app.include_router(alerts.router(site))
        if reviews is not None:
            app.include_router(review_queue.router(site))
        # Names for what a person reads: the bundles and box configs offered here (configs win: a store's own SKUs).
        central.names.update(names_from(site.bundles().values(), site.box_configs().values()))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:  # what a browser asks for on a page without <link rel=icon> (a video, a JSON)
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    app.add_middleware(CookieToken)
    # Every body of the pages is bounded while it streams: a video upload by the web config (plus its form), a labels
    # correction and a zone layout by their own limits, the rest by 16 KB. (Inside `central run`, the API bounds its
    # own paths.)
    too_large = f"the file is larger than the limit of {config.max_upload_mb:g} MB"
    upload = Limit(config.max_upload_bytes + FORM_OVERHEAD, too_large)
    labels = Limit(MAX_LABELS_BYTES, f"a labels JSON is at most {MAX_LABELS_BYTES // (1024 * 1024)} MB")
    layout = Limit(zones.MAX_LAYOUT_BYTES, f"a zone layout is at most {zones.MAX_LAYOUT_BYTES // 1024} KB")

    def limit_for(path: str) -> Limit | None:
        if path == UPLOAD_PATH or zones.is_upload(path):
            return upload
        if path.startswith("/web/api/analyses/") and path.endswith("/labels"):
            return labels
        if path.startswith("/web/api/zones/"):
            return layout
        return SMALL if path.startswith("/web/") or path in ("/login", "/logout") else None

    app.add_middleware(BodyLimit, limit_for=limit_for)

    async def refused(request: Request, exc: Exception) -> Response:
        """A page the browser asked for and was refused: the login page. An API call gets the JSON error."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/login?next={quote(request.url.path)}&refused={int(COOKIE in request.cookies)}",
                                    status_code=303)  # fmt: skip
        return await http_exception_handler(request, exc)

    app.add_exception_handler(HTTPException, refused)
    return site.jobs


def create_web_app(config: WebConfig, auth_dependency: Callable[..., Any] | None = None) -> tuple[FastAPI, JobQueue]:
    """The analysis page alone, no broker and no database (`shelfwatch web`)."""
    app = FastAPI(title="ShelfWatch: analyse a clip", version="1.0")
    problem = no_bundle(config)
    if problem is not None:
        raise ShelfWatchError(problem)
    jobs = mount_web(app, config, auth_dependency=auth_dependency)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app, jobs
