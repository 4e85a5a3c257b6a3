"""The alerts room (inside `central run`): a manager's verdict on an alert, `POST /web/api/alerts/verdict`
(confirmed or wrong, with a note; `open` takes it back). A store's staff judge only their store's alerts."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from central import verdicts
from central.verdicts import AlertView, VerdictBody
from central.web.auth import stores_of
from central.web.site import Site
from edge.schema import describe

VERDICT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": VerdictBody.model_json_schema()}}}}  # fmt: skip


def router(site: Site) -> APIRouter:
    routes = APIRouter(tags=["web"])
    Principal = Annotated[Any, Depends(site.auth)]

    @routes.post("/web/api/alerts/verdict", response_model=AlertView, openapi_extra=VERDICT_BODY)
    async def verdict(request: Request, principal: Principal) -> AlertView:
        """Confirm an alert or mark it wrong, with a note; a wrong alert enters the review queue."""
        try:  # read after the caller was admitted
            body = VerdictBody.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, describe(exc)) from None
        try:
            return await run_in_threadpool(verdicts.judge, site.central.engine, body,
                                           getattr(principal, "token_id", None), stores_of(principal))  # fmt: skip
        except verdicts.NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    return routes
