"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json): the point of sale reports transactions, and
alerts, shrink reports, boxes and gaps are served. Every route but /health and the docs needs an API token
(`Authorization: Bearer swt_…`, see central/auth.py): a store's token sees and writes only that store."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from central import auth, db, insights_api
from central.auth import Principal
from central.pos import Alert, PosMessage, ShrinkRow
from central.reconcile import shrink_report
from central.service import Central
from edge.schema import Strict


class Accepted(Strict):
    accepted: bool
    alerts: list[Alert]


class Rejected(Strict):
    detail: str


UNAUTHORIZED = HTTPException(
    status_code=401,
    detail="an API token is required (Authorization: Bearer swt_…); unknown or revoked tokens are refused",
    headers={"WWW-Authenticate": "Bearer"},
)
_bearer = HTTPBearer(auto_error=False, description="an API token: `shelfwatch central token create`")


def principal_dependency(central: Central) -> Callable[..., Principal]:
    """A FastAPI dependency giving the caller's Principal (401 without a valid token); every page and route
    that needs a caller uses it, and checks `principal.may(store)`."""

    def principal(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        found = auth.authenticate(central.engine, credentials.credentials) if credentials is not None else None
        if found is None:
            raise UNAUTHORIZED
        return found

    return principal


def forbid_unless(principal: Principal, store: str) -> None:
    if not principal.may(store):
        raise HTTPException(status_code=403, detail=f"this API token is for store {principal.store}, not {store}")


MAX_BODY_BYTES = 16 * 1024
UPLOAD_PATHS = ("/web/api/analyses",)  # the pages' video uploads, bounded by the web config instead
AUTH_RESPONSES: dict = {401: {"model": Rejected}, 403: {"model": Rejected}}


def create_app(central: Central) -> FastAPI:
    app = FastAPI(title="ShelfWatch central", version="1.0",
                  description="Checkout (POS) integration and the item-count cross-checks.")  # fmt: skip
    who = principal_dependency(central)

    @app.middleware("http")
    async def bounded(request: Request, call_next: Callable) -> JSONResponse:
        # A POS message is well under 1 KB; refuse bodies that could only be an attack on memory. Video uploads to
        # the analysis page are the pages' business: their own limit (web config max_upload_mb) is checked there.
        size = request.headers.get("content-length", "0")
        upload = request.url.path.startswith(UPLOAD_PATHS)
        if not upload and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            return JSONResponse(status_code=413, content={"detail": f"the body is over {MAX_BODY_BYTES} bytes"})
        return await call_next(request)

    Caller = Annotated[Principal, Depends(who)]

    @app.exception_handler(RequestValidationError)
    async def rejected(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A malformed body is refused before the route's dependencies run: check the caller here, so that
        # nobody without a token is told about the schema or can fill the dead letters.
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        caller = auth.authenticate(central.engine, token.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            return JSONResponse(status_code=401, content={"detail": UNAUTHORIZED.detail}, headers=UNAUTHORIZED.headers)
        errors = exc.errors()
        reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        if request.url.path == "/pos":
            body = (await request.body()).decode("utf-8", "replace")
            central._dead("http", "/pos", body, f"{reason} (token {caller.token_id})")
        return JSONResponse(status_code=422, content={"detail": reason})

    @app.post("/pos", response_model=Accepted, status_code=202,
              responses={409: {"model": Rejected}, 422: {"model": Rejected}, **AUTH_RESPONSES})  # fmt: skip
    def pos(message: Annotated[PosMessage, Body()], caller: Caller) -> Accepted:
        """One POS message: basket_open, item, payment or basket_close. Closing a basket reconciles it."""
        forbid_unless(caller, message.store)
        alerts, problem = central.pos(message, "http", "/pos")
        if alerts is None:
            raise HTTPException(status_code=409, detail=problem)
        return Accepted(accepted=True, alerts=alerts)

    @app.get("/alerts", response_model=list[Alert], responses=AUTH_RESPONSES)
    def alerts(caller: Caller, store: str | None = None, transaction_id: str | None = None) -> list[Alert]:
        """Alerts, oldest first; a store's token gets only its store's."""
        if store:
            forbid_unless(caller, store)
        store = store or caller.store
        query = select(db.alerts).order_by(db.alerts.c.created, db.alerts.c.alert_id)
        if store:
            query = query.where(db.alerts.c.store == store)
        if transaction_id:
            query = query.where(db.alerts.c.transaction_id == transaction_id)
        with central.engine.connect() as conn:
            return [Alert(**{**r._mapping, "created": db._aware(r.created)}) for r in conn.execute(query)]

    @app.get("/reports/shrink", response_model=list[ShrinkRow], responses=AUTH_RESPONSES)
    def shrink(caller: Caller, store: str, start: Annotated[datetime | None, Query()] = None,
               end: Annotated[datetime | None, Query()] = None) -> list[ShrinkRow]:  # fmt: skip
        """Per SKU over [start, end) (default: the last 24 hours): shelf picks minus put-backs against sales."""
        forbid_unless(caller, store)
        end = (end or datetime.now(timezone.utc)).astimezone(timezone.utc)
        start = (start or end - timedelta(days=1)).astimezone(timezone.utc)
        with central.engine.connect() as conn:
            return shrink_report(conn, store, start, end)

    @app.get("/boxes", responses=AUTH_RESPONSES)
    def boxes(caller: Caller) -> list[dict]:
        """Every box (a store's token: its store's) with its status, epoch and open gaps."""
        with central.engine.connect() as conn:
            rows = [r for r in db.box_rows(conn) if caller.may(r["store"])]
            for r in rows:
                r["gaps"] = db.all_gaps(conn, r["store"], r["box"])
            return rows

    app.include_router(insights_api.build_router(central, auth_dependency=who))

    @app.get("/health", responses={503: {"description": "central cannot go on (the reason is in `problem`)"}})
    def health() -> JSONResponse:
        problem = central.problem or (f"database unavailable, retrying: {central.waiting_for_db}"
                                      if central.waiting_for_db else None)  # fmt: skip
        if problem:
            return JSONResponse(status_code=503, content={"ok": False, "problem": problem, **central.counts})
        return JSONResponse(content={"ok": True, **central.counts})

    return app
