"""Shopper insights over HTTP: `/insights/traffic`, `/insights/funnel` and `/insights/attention`, JSON by default or
CSV with `?format=csv`. `build_router(central, auth_dependency)` makes the router; `central.api` includes it, and
an authentication dependency given here guards every route of it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel

from central import insights, spreadsheet
from central.insights import AttentionRow, Bucket, FunnelRow, GroupBy, ReportTime, Scope, TrafficRow
from central.service import Central

Stores = Annotated[list[str], Query(description="a store (repeat for several); none: every store of the chain")]
Start = Annotated[ReportTime | None, Query(description="from (inclusive, ISO 8601); default: 30 days before end")]
End = Annotated[ReportTime | None, Query(description="to (exclusive); default: now")]
BucketQ = Annotated[Bucket, Query(description="hour, day (UTC) or total")]
By = Annotated[list[GroupBy], Query(description="group by store, box and/or zone (repeat); default store")]
Format = Annotated[Literal["json", "csv"], Query(description="json, or csv for a spreadsheet")]
CSV = {200: {"content": {"text/csv": {}}, "description": "the rows (JSON), or CSV with format=csv"}}


def _nobody() -> None:
    return None


def build_router(central: Central, auth_dependency: Callable[..., Any] | None = None) -> APIRouter:
    """`auth_dependency` gives the caller (`central.auth.Principal`): a store's token sees only its store (asking for
    none means its own), a chain-wide token every store."""
    router = APIRouter(prefix="/insights", tags=["insights"])
    caller_of = Depends(auth_dependency or _nobody)

    def scope(stores: list[str], start: datetime | None, end: datetime | None, bucket: Bucket,
              by: Sequence[GroupBy], caller: Any) -> Scope:  # fmt: skip
        own = getattr(caller, "store", None)
        if own is not None:
            if any(s != own for s in stores):
                raise HTTPException(status_code=403, detail=f"this API token is for store {own} only")
            stores = [own]
        first, last = insights.default_range(start, end)
        if first >= last:
            raise HTTPException(status_code=422, detail=f"start ({first.isoformat()}) is not before end "
                                f"({last.isoformat()})")  # fmt: skip
        return Scope(tuple(stores), first, last, bucket, tuple(dict.fromkeys(by)))

    @router.get("/traffic", response_model=list[TrafficRow], responses=CSV)
    def traffic(store: Stores = [], start: Start = None, end: End = None,  # noqa: B006
                bucket: BucketQ = "day", by: By = ["store"], format: Format = "json",  # noqa: B006
                caller: Any = caller_of) -> Any:  # fmt: skip
        """Shoppers who stopped at the shelf (visits) and their dwell time, median and p90 (nearest rank)."""
        with central.engine.connect() as conn:
            return _answer(insights.traffic(conn, scope(store, start, end, bucket, by, caller)), TrafficRow, format)

    @router.get("/funnel", response_model=list[FunnelRow], responses=CSV)
    def funnel(store: Stores = [], start: Start = None, end: End = None,  # noqa: B006
               bucket: BucketQ = "total",
               by: Annotated[list[GroupBy], Query(description="also group by store, box and/or zone")] = [],  # noqa: B006
               format: Format = "json", caller: Any = caller_of) -> Any:  # fmt: skip
        """The engagement funnel per SKU: reached for -> inspected -> picked -> kept; conversion and put-back rates;
        the median inspection time of the product when kept and when put back."""
        with central.engine.connect() as conn:
            rows = insights.funnel(conn, scope(store, start, end, bucket, by, caller))
        named = [r.model_copy(update={"name": central.names.get(r.sku)}) for r in rows]
        return _answer(named, FunnelRow, format)

    @router.get("/attention", response_model=list[AttentionRow], responses=CSV)
    def attention(store: Stores = [], start: Start = None, end: End = None,  # noqa: B006
                  bucket: BucketQ = "total",
                  by: By = ["store"], format: Format = "json",  # noqa: B006
                  threshold_s: Annotated[float, Query(gt=0, description="inspect-shelf seconds per pick above which "
                                                      "a zone is flagged without_sales")] = 60.0,
                  caller: Any = caller_of) -> Any:  # fmt: skip
        """Shelf attention without sales: per zone, inspect-shelf seconds against units picked, most attention per
        pick first."""
        with central.engine.connect() as conn:
            rows = insights.attention(conn, scope(store, start, end, bucket, by, caller), threshold_s)
        return _answer(rows, AttentionRow, format)

    return router


def _answer(rows: list[BaseModel], model: type[BaseModel], format: str) -> Any:
    if format == "json":
        return rows
    return Response(to_csv(rows, model), media_type="text/csv")


def to_csv(rows: list[BaseModel], model: type[BaseModel]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(model.model_fields)
    writer.writerow(names)
    for r in rows:
        values = [getattr(r, n) for n in names]
        writer.writerow(spreadsheet.row(["" if v is None else v.isoformat() if isinstance(v, datetime) else v
                                          for v in values]))  # fmt: skip
    return out.getvalue()
