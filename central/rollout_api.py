"""Rollouts over HTTP, read-only: `GET /rollouts` (the latest first) and `GET /rollouts/{id}`, what `shelfwatch central
rollout status --json` prints. A store's token sees its store's boxes only (and no rollout that reaches none of
them); a chain-wide token sees everything. Rollouts are started and aborted with `shelfwatch central rollout` on
central's database, and carried out by `central run` (`central.rollout`)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from central import rollout
from central.auth import Principal
from central.service import Central


def build_router(central: Central, auth_dependency: Callable[..., Principal]) -> APIRouter:
    routes = APIRouter(tags=["rollouts"])
    Caller = Annotated[Principal, Depends(auth_dependency)]

    def stores(caller: Principal) -> set[str] | None:
        return None if caller.store is None else {caller.store}

    @routes.get("/rollouts", response_model=list[rollout.RolloutView])
    def listing(caller: Caller, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> list[dict]:
        """The latest rollouts, newest first: progress per state, and each box's state and reason."""
        with central.engine.connect() as conn:
            return rollout.visible(rollout.summary(conn, limit=limit), stores(caller))

    @routes.get("/rollouts/{rollout_id}", response_model=rollout.RolloutView)
    def one(rollout_id: int, caller: Caller) -> dict:
        with central.engine.connect() as conn:
            found = rollout.visible(rollout.summary(conn, rollout_id), stores(caller))
        if not found:
            raise HTTPException(404, f"no rollout {rollout_id} that reaches this token's store")
        return found[0]

    return routes
