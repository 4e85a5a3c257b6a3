"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json): the point of sale reports transactions, and
alerts, shrink reports, boxes and gaps are served."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from central import db, insights_api
from central.pos import Alert, PosMessage, ShrinkRow
from central.reconcile import shrink_report
from central.service import Central


class Accepted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accepted: bool
    alerts: list[Alert]


class Rejected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detail: str


def create_app(central: Central) -> FastAPI:
    app = FastAPI(title="ShelfWatch central", version="1.0",
                  description="Checkout (POS) integration and the item-count cross-checks.")  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def rejected(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        reason = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        if request.url.path == "/pos":
            body = (await request.body()).decode("utf-8", "replace")
            central._dead("http", "/pos", body, reason)
        return JSONResponse(status_code=422, content={"detail": reason})

    @app.post("/pos", response_model=Accepted, status_code=202,
              responses={409: {"model": Rejected}, 422: {"model": Rejected}})  # fmt: skip
    def pos(message: Annotated[PosMessage, Body()]) -> Accepted:
        """One POS message: basket_open, item, payment or basket_close. Closing a basket reconciles it."""
        alerts, problem = central.pos(message, "http", "/pos")
        if alerts is None:
            raise HTTPException(status_code=409, detail=problem)
        return Accepted(accepted=True, alerts=alerts)

    @app.get("/alerts", response_model=list[Alert])
    def alerts(store: str | None = None, transaction_id: str | None = None) -> list[Alert]:
        query = select(db.alerts).order_by(db.alerts.c.created, db.alerts.c.alert_id)
        if store:
            query = query.where(db.alerts.c.store == store)
        if transaction_id:
            query = query.where(db.alerts.c.transaction_id == transaction_id)
        with central.engine.connect() as conn:
            return [Alert(**{**r._mapping, "created": db._aware(r.created)}) for r in conn.execute(query)]

    @app.get("/reports/shrink", response_model=list[ShrinkRow])
    def shrink(store: str, start: Annotated[datetime | None, Query()] = None,
               end: Annotated[datetime | None, Query()] = None) -> list[ShrinkRow]:  # fmt: skip
        """Per SKU over [start, end) (default: the last 24 hours): shelf picks minus put-backs against sales."""
        end = (end or datetime.now(timezone.utc)).astimezone(timezone.utc)
        start = (start or end - timedelta(days=1)).astimezone(timezone.utc)
        with central.engine.connect() as conn:
            return shrink_report(conn, store, start, end)

    @app.get("/boxes")
    def boxes() -> list[dict]:
        with central.engine.connect() as conn:
            rows = db.box_rows(conn)
            for r in rows:
                r["gaps"] = db.open_gaps(conn, r["store"], r["box"])
            return rows

    app.include_router(insights_api.build_router(central))

    @app.get("/health")
    def health() -> dict:
        return {"ok": True, **central.counts}

    return app
