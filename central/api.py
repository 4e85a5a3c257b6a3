"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json): the point of sale reports transactions, and
alerts, shrink reports, boxes and gaps are served. Every route but /health and the docs needs an API token
(`Authorization: Bearer swt_…`, see central/auth.py): a store's token sees and writes only that store."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from central import auth, channel, db, insights_api, rollout_api, verdicts
from central.auth import Principal
from central.bodies import SMALL, BodyLimit
from central.files import FileStore
from central.insights import ReportTime
from central.insights_api import CSV, Format, to_csv
from central.pos import POS_ADAPTER, Alert, ShrinkRow
from central.reconcile import shrink_report
from central.service import Central
from central.verdicts import AlertView
from edge.schema import Strict
from edge.times import as_utc


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


BOX_TOKEN_REFUSED = HTTPException(
    status_code=403, detail="a box's token may only upload that box's files and download what is addressed to it"
)


def principal_dependency(central: Central, *, boxes: bool = False) -> Callable[..., Principal]:
    """A FastAPI dependency giving the caller's Principal (401 without a valid token); every page and route
    that needs a caller uses it, and checks `principal.may(store)`. A box's own token is refused (403) unless
    `boxes`: only the channel's file routes take it."""

    def principal(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        found = auth.authenticate(central.engine, credentials.credentials) if credentials is not None else None
        if found is None:
            raise UNAUTHORIZED
        if found.box is not None and not boxes:
            raise BOX_TOKEN_REFUSED
        return found

    return principal


def forbid_unless(principal: Principal, store: str) -> None:
    if not principal.may(store):
        raise HTTPException(status_code=403, detail=f"this API token is for store {principal.store}, not {store}")


POS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/PosMessage"}}}}}  # fmt: skip
AUTH_RESPONSES: dict = {401: {"model": Rejected}, 403: {"model": Rejected}}


def document_pos_body(app: FastAPI) -> None:
    """/pos reads its body itself (after the token): its schema goes into the OpenAPI document by hand."""
    generated = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generated()
            pos = POS_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(pos.pop("$defs", {}))
            components["PosMessage"] = pos
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _own_limit(path: str) -> bool:
    """Paths whose bodies another bound covers: the pages' (`central.web.app` bounds each of them, the video upload
    by the web config) and a box's files (`/boxes/<store>/<box>/files/...`: by the kind's own limit, checked by
    `central.files` while it streams, once the box's token was checked)."""
    return path.startswith("/web/") or (path.startswith("/boxes/") and "/files/" in path)


def create_app(central: Central, files: FileStore | None = None, bundles_dir: Path | None = None) -> FastAPI:
    """The API; with `files` (central's data directory), also the box-central channel's routes."""
    app = FastAPI(title="ShelfWatch central", version="1.0",
                  description="Checkout (POS) integration, the item-count cross-checks, insights, and the "
                  "channel that carries files between boxes and central.")  # fmt: skip
    who = principal_dependency(central)
    document_pos_body(app)

    # A POS message is well under 1 KB: a bigger body could only be an attack on memory, refused while it streams.
    # The pages' video upload has the web config's limit instead (`central.web.app`), a box's upload its kind's.
    app.add_middleware(BodyLimit, limit_for=lambda path: None if _own_limit(path) else SMALL)

    Caller = Annotated[Principal, Depends(who)]

    @app.post("/pos", response_model=Accepted, status_code=202, openapi_extra=POS_BODY,
              responses={409: {"model": Rejected}, 413: {"model": Rejected}, 415: {"model": Rejected},
                         422: {"model": Rejected},
                         **AUTH_RESPONSES})  # fmt: skip
    async def pos(request: Request, caller: Caller) -> Accepted:
        """One POS message: basket_open, item, payment or basket_close. Closing a basket reconciles it."""
        # The body is read here, after the token is checked (a body parameter would be read before it, by anyone).
        # JSON only: the types a browser may send from another site's page without asking (text/plain, forms) are not.
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            raise HTTPException(status_code=415, detail="send the POS message as JSON (Content-Type: application/json)")
        body = await request.body()
        try:
            message = POS_ADAPTER.validate_json(body)
        except ValidationError as error:
            reason = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors())
            await run_in_threadpool(central.dead_letter, "http", "/pos", body.decode("utf-8", "replace"),
                                    f"{reason} (token {caller.token_id})")  # fmt: skip
            raise HTTPException(status_code=422, detail=reason) from None
        forbid_unless(caller, message.store)
        alerts, problem = await run_in_threadpool(central.pos, message, "http", "/pos")
        if alerts is None:
            raise HTTPException(status_code=409, detail=problem)
        return Accepted(accepted=True, alerts=alerts)

    @app.get("/alerts", response_model=list[AlertView], responses={**AUTH_RESPONSES, **CSV})
    def alerts(caller: Caller, store: str | None = None, transaction_id: str | None = None,
               verdict: Literal["open", "confirmed", "wrong"] | None = None,
               format: Format = "json") -> Any:  # fmt: skip
        """Alerts, oldest first, with a manager's verdict (open, confirmed or wrong, and the note) and the clip the
        box kept of the picks they cite; a store's token gets only its store's. `format=csv` for a spreadsheet."""
        if store:
            forbid_unless(caller, store)
        store = store or caller.store
        query = select(db.alerts).order_by(db.alerts.c.created, db.alerts.c.alert_id)
        if store:
            query = query.where(db.alerts.c.store == store)
        if transaction_id:
            query = query.where(db.alerts.c.transaction_id == transaction_id)
        if verdict is not None:
            query = query.where(db.alerts.c.verdict.is_(None) if verdict == "open" else db.alerts.c.verdict == verdict)
        with central.engine.connect() as conn:
            rows = [verdicts.view(conn, r, central.names) for r in conn.execute(query)]
        if format == "csv":
            return Response(to_csv(rows, AlertView), media_type="text/csv")
        return rows

    @app.get("/reports/shrink", response_model=list[ShrinkRow], responses=AUTH_RESPONSES)
    def shrink(caller: Caller, store: str, start: Annotated[ReportTime | None, Query()] = None,
               end: Annotated[ReportTime | None, Query()] = None) -> list[ShrinkRow]:  # fmt: skip
        """Per SKU over [start, end) (default: the last 24 hours): shelf picks minus put-backs against sales."""
        forbid_unless(caller, store)
        end = as_utc(end or datetime.now(timezone.utc))
        start = as_utc(start or end - timedelta(days=1))
        with central.engine.connect() as conn:
            return shrink_report(conn, store, start, end, central.names)

    @app.get("/boxes", responses=AUTH_RESPONSES)
    def boxes(caller: Caller) -> list[dict]:
        """Every box (a store's token: its store's) with its status, epoch and open gaps."""
        with central.engine.connect() as conn:
            rows = [r for r in db.box_rows(conn) if caller.may(r["store"])]
            for r in rows:
                r["gaps"] = db.all_gaps(conn, r["store"], r["box"])
            return rows

    app.include_router(insights_api.build_router(central, auth_dependency=who))
    app.include_router(rollout_api.build_router(central, who))
    if files is not None:
        app.include_router(channel.router(central, files, bundles_dir, who, principal_dependency(central, boxes=True)))

    @app.get("/health", responses={503: {"description": "central cannot go on (the reason is in `problem`)"}})
    def health() -> JSONResponse:
        problem = central.problem or (f"database unavailable, retrying: {central.waiting_for_db}"
                                      if central.waiting_for_db else None)  # fmt: skip
        if problem:
            return JSONResponse(status_code=503, content={"ok": False, "problem": problem, **central.counts})
        return JSONResponse(content={"ok": True, **central.counts})

    return app
