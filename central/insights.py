"""Shopper insights: traffic and dwell, the engagement funnel per SKU, and shelf attention without sales, per
store, box, shelf zone and SKU over a time range, in hourly or daily buckets, on SQLite and PostgreSQL alike.

The numbers come from the boxes' `visit` events (one per shopper at a shelf: edge/report.py). Central's writer
rolls each new visit event, in the transaction that stores it, into three narrow tables (`record`), so a query
reads one row per visit (or per visit and zone, or per visit and product) instead of the dozen events a visit
is made of, with the hour and the day already cut:

- `insight_visits`: one row per visit (traffic and dwell per store and box);
- `insight_visit_zones`: one row per visit and zone it touched (traffic and attention per zone);
- `insight_visit_products`: one row per visit and product (the funnel).

Medians and p90s are nearest-rank percentiles computed in SQL (the smallest value whose rank reaches p x n): on
PostgreSQL with `percentile_disc` in the same GROUP BY as the counts, on SQLite with window functions (ROW_NUMBER
over each group); the same numbers either way, and nothing loops over rows in Python.
Buckets are UTC hours and days.

A visit from footage unlike the box model's training (`familiar: false`) is no sure fact and is left out of every
insight (a box with a guard sends a visit only when a familiar shelf action was reported, so this is a consumer's
guard, not a filter that usually bites); visits without the field (boxes without a guard) count as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from central import db
from edge.schema import Strict
from edge.times import as_utc

metadata = MetaData()

visits = Table(
    "insight_visits", metadata,
    Column("event_id", String(64), primary_key=True),  # the visit event's
    Column("store", String(64), nullable=False),
    Column("box", String(64), nullable=False),
    Column("shopper", Integer, nullable=False),
    Column("start_ts", DateTime(timezone=True), nullable=False),
    Column("hour", DateTime(timezone=True), nullable=False),
    Column("day", DateTime(timezone=True), nullable=False),
    Column("dwell_s", Float, nullable=False),
    Column("inspect_shelf_s", Float, nullable=False),
    Column("picked", Integer, nullable=False),  # units, over every product of the visit
    Column("put_back", Integer, nullable=False),
    Index("insight_visits_store_ts", "store", "start_ts"),
    Index("insight_visits_ts", "start_ts"),
)  # fmt: skip

visit_zones = Table(
    "insight_visit_zones", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("zone", String(64), primary_key=True),
    Column("store", String(64), nullable=False),
    Column("box", String(64), nullable=False),
    Column("start_ts", DateTime(timezone=True), nullable=False),
    Column("hour", DateTime(timezone=True), nullable=False),
    Column("day", DateTime(timezone=True), nullable=False),
    Column("dwell_s", Float, nullable=False),  # the whole visit's
    Column("inspect_shelf_s", Float, nullable=False),  # the visit's, shared evenly among its zones
    Column("picked", Integer, nullable=False),  # units of products taken from this zone
    Index("insight_visit_zones_store_ts", "store", "start_ts"),
    Index("insight_visit_zones_ts", "start_ts"),
)  # fmt: skip

visit_products = Table(
    "insight_visit_products", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("store", String(64), nullable=False),
    Column("box", String(64), nullable=False),
    Column("zone", String(64), nullable=False),  # "" when the box did not know it
    Column("start_ts", DateTime(timezone=True), nullable=False),
    Column("hour", DateTime(timezone=True), nullable=False),
    Column("day", DateTime(timezone=True), nullable=False),
    Column("reached", Integer, nullable=False),
    Column("inspected", Integer, nullable=False),
    Column("inspect_s", Float, nullable=False),
    Column("picked", Integer, nullable=False),
    Column("put_back", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # kept, put_back or looked
    Index("insight_visit_products_store_ts", "store", "start_ts"),
    Index("insight_visit_products_ts", "start_ts"),
)  # fmt: skip

TABLES = (visits, visit_zones, visit_products)
Bucket = Literal["hour", "day", "total"]
GroupBy = Literal["store", "box", "zone"]


# -- writing: each new visit event becomes its rollup rows, in the transaction that stored it ------------------


def rows_for(event: Any) -> dict[Table, list[dict]]:
    """The rollup rows of one visit event (an `edge.events.VisitEvent`, its ts in UTC)."""
    start = as_utc(event.start_ts)
    hour = start.replace(minute=0, second=0, microsecond=0)
    common = {"event_id": event.event_id, "store": event.store, "box": event.box, "start_ts": start, "hour": hour,
              "day": hour.replace(hour=0)}  # fmt: skip
    products = list(event.products)
    zones = list(event.zones) or sorted({p.zone for p in products if p.zone}) or [""]
    looked = event.inspect_shelf_s
    # A visit split over several events (its products did not fit one payload) counts once, from its part 1; its
    # products come from every part. The visit's and its zones' picked units are part 1's: the box puts the products
    # picked and put back first, so they are all there but for a visit of more than eight of them.
    first = (getattr(event, "part", None) or 1) == 1
    visit_row = {**common, "shopper": event.shopper, "dwell_s": event.dwell_s, "inspect_shelf_s": looked,
                 "picked": sum(p.picked for p in products), "put_back": sum(p.put_back for p in products)}  # fmt: skip
    zone_rows = [{**common, "zone": z, "dwell_s": event.dwell_s, "inspect_shelf_s": looked / len(zones),
                  "picked": sum(p.picked for p in products if (p.zone or zones[0]) == z)} for z in zones]  # fmt: skip
    out: dict[Table, list[dict]] = {
        visits: [visit_row] if first else [],
        visit_zones: zone_rows if first else [],
        visit_products: [{**common, "sku": p.sku, "zone": p.zone or zones[0], "reached": p.reached,
                          "inspected": p.inspected, "inspect_s": p.inspect_s, "picked": p.picked,
                          "put_back": p.put_back, "outcome": p.outcome} for p in products],
    }  # fmt: skip
    return out


def record(conn: Connection, new_events: Iterable[Any]) -> int:
    """Roll the visit events among `new_events` (events stored for the first time) into the insight tables.
    Idempotent all the same: a row already there is left alone."""
    batch: dict[Table, list[dict]] = {t: [] for t in TABLES}
    n = 0
    for event in new_events:
        if getattr(event, "kind", None) != "visit" or getattr(event, "familiar", None) is False:
            continue
        n += 1
        for table, rows in rows_for(event).items():
            batch[table] += rows
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for table, rows in batch.items():
        if rows:  # executemany: one cached statement, sent in batches ("insertmanyvalues")
            conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
    return n


def rebuild(conn: Connection) -> int:
    """Roll every stored visit event into the insight tables again (after a restore, or for visit events stored
    before these tables existed); returns how many visits."""
    from edge.events import VisitEvent

    n = 0
    rows = conn.execute(select(db.events.c.payload).where(db.events.c.kind == "visit")).yield_per(5000)
    chunk: list[Any] = []
    for (payload,) in rows:
        chunk.append(VisitEvent.model_validate(payload if isinstance(payload, dict) else json.loads(payload)))
        if len(chunk) == 5000:
            n += record(conn, chunk)
            chunk = []
    return n + record(conn, chunk)


# -- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What to count: stores (empty: every store of the chain), [start, end), the bucket and the grouping."""

    stores: tuple[str, ...]
    start: datetime
    end: datetime
    bucket: Bucket = "day"
    by: tuple[GroupBy, ...] = ("store",)


class TrafficRow(Strict):
    bucket: datetime = Field(description="the UTC hour or day (total: the range's start)")
    store: str | None = None
    box: str | None = None
    zone: str | None = None
    shoppers: int = Field(description="visits: shoppers who stopped at the shelf and did something there")
    dwell_median_s: float | None
    dwell_p90_s: float | None


class FunnelRow(Strict):
    bucket: datetime
    store: str | None = None
    box: str | None = None
    zone: str | None = None
    sku: str
    name: str | None = Field(default=None, description="the product's name from the store's catalogue, if known")
    reached: int = Field(description="visits in which a hand reached for the product's slot")
    inspected: int = Field(description="visits in which the product was inspected in the hand")
    picked: int = Field(description="visits in which it was taken off the shelf")
    kept: int = Field(description="visits that ended with it taken (not put back)")
    put_back: int = Field(description="visits in which it was put back")
    picked_units: int
    put_back_units: int
    inspect_rate: float | None = Field(description="inspected / reached")
    pick_rate: float | None = Field(description="picked / reached")
    keep_rate: float | None = Field(description="kept / picked")
    put_back_rate: float | None = Field(description="put-back units / picked units")
    inspect_median_kept_s: float | None = Field(description="median inspection time of the product when kept")
    inspect_median_put_back_s: float | None = Field(description="median inspection time when put back")


class AttentionRow(Strict):
    bucket: datetime
    store: str | None = None
    box: str | None = None
    zone: str | None = None
    shoppers: int
    inspect_shelf_s: float = Field(description="seconds shoppers spent looking at the shelf")
    picked_units: int
    attention_s_per_pick: float | None = Field(description="inspect-shelf seconds per unit picked (None: no picks)")
    without_sales: bool = Field(description="much attention, few picks: no pick, or attention_s_per_pick over the "
                                "threshold")  # fmt: skip


def _where(table: Table, scope: Scope) -> ColumnElement:
    cond = and_(table.c.start_ts >= as_utc(scope.start), table.c.start_ts < as_utc(scope.end))
    if scope.stores:
        cond = and_(table.c.store.in_(scope.stores), cond)
    return cond


def _keys(table: Table, scope: Scope, extra: Sequence[str] = ()) -> list[Column]:
    """The columns a query groups by: the bucket (none for the total), then the groupings in a fixed order."""
    names = [scope.bucket] if scope.bucket != "total" else []
    names += [name for name in ("store", "box", "zone") if name in scope.by] + list(extra)
    return [table.c[name] for name in names]


def _percentiles(conn: Connection, table: Table, value: str, keys: list[Column], where: ColumnElement,
                 ps: Sequence[float]) -> dict[tuple, list[float | None]]:  # fmt: skip
    """Nearest-rank percentiles of `value` per group, by window functions (both backends)."""
    inner = select(
        *keys,
        table.c[value].label("v"),
        func.row_number().over(partition_by=keys or None, order_by=table.c[value]).label("rn"),
        func.count().over(partition_by=keys or None).label("n"),
    ).where(where).subquery()  # fmt: skip
    outer = select(*[inner.c[k.name] for k in keys],
                   *[func.min(case((inner.c.rn >= p * inner.c.n, inner.c.v))) for p in ps]).group_by(
        *[inner.c[k.name] for k in keys])  # fmt: skip
    return {tuple(_plain(v) for v in r[: len(keys)]): list(r[len(keys) :]) for r in conn.execute(outer)}


def _disc(value: Column, p: float, only: ColumnElement | None = None) -> ColumnElement:
    """PostgreSQL's ordered-set aggregate for the same nearest-rank percentile: one pass with the counts, no window
    (what keeps a chain-wide query fast)."""
    found = func.percentile_disc(p).within_group(value)
    return found.filter(only) if only is not None else found


def traffic(conn: Connection, scope: Scope) -> list[TrafficRow]:
    """Shoppers who stopped (visits) and their dwell, median and p90."""
    table = visit_zones if "zone" in scope.by else visits
    keys, where = _keys(table, scope), _where(table, scope)
    pg = conn.dialect.name == "postgresql"
    inline = [_disc(table.c.dwell_s, p).label(f"dwell_{p}") for p in (0.5, 0.9)] if pg else []
    pct = {} if pg else _percentiles(conn, table, "dwell_s", keys, where, (0.5, 0.9))
    query = select(*keys, func.count().label("shoppers"), *inline).where(where).group_by(*keys).order_by(*keys)
    out = []
    for r in conn.execute(query):
        m = r._mapping
        median, p90 = (m["dwell_0.5"], m["dwell_0.9"]) if pg else pct.get(_key(m, keys), [None, None])
        out.append(TrafficRow(**_group(m, keys, scope), shoppers=m["shoppers"], dwell_median_s=_round(median),
                              dwell_p90_s=_round(p90)))  # fmt: skip
    return out


def funnel(conn: Connection, scope: Scope) -> list[FunnelRow]:
    """Per SKU: visits in which it was reached for, inspected, picked, kept and put back; the rates between; the
    median inspection time of the product when kept and when put back."""
    t = visit_products
    keys, where = _keys(t, scope, extra=("sku",)), _where(t, scope)
    pg = conn.dialect.name == "postgresql"

    def visits_with(col: ColumnElement) -> ColumnElement:
        return func.sum(case((col > 0, 1), else_=0))

    query = select(
        *keys,
        visits_with(t.c.reached).label("reached"),
        visits_with(t.c.inspected).label("inspected"),
        visits_with(t.c.picked).label("picked"),
        func.sum(case((t.c.outcome == "kept", 1), else_=0)).label("kept"),
        visits_with(t.c.put_back).label("put_back"),
        func.sum(t.c.picked).label("picked_units"),
        func.sum(t.c.put_back).label("put_back_units"),
        *[_disc(t.c.inspect_s, 0.5, and_(t.c.inspected > 0, t.c.outcome == outcome)).label(f"median_{outcome}")
          for outcome in ("kept", "put_back") if pg],
    ).where(where).group_by(*keys).order_by(*keys)  # fmt: skip
    kept, returned = {}, {}
    if not pg:
        inspected = and_(where, t.c.inspected > 0)
        kept = _percentiles(conn, t, "inspect_s", keys, and_(inspected, t.c.outcome == "kept"), (0.5,))
        returned = _percentiles(conn, t, "inspect_s", keys, and_(inspected, t.c.outcome == "put_back"), (0.5,))
    out = []
    for r in conn.execute(query):
        m = r._mapping
        key = _key(m, keys)
        if pg:
            kept[key], returned[key] = [m["median_kept"]], [m["median_put_back"]]
        reached, picked = m["reached"], m["picked"]
        out.append(FunnelRow(
            **_group(m, keys, scope), sku=m["sku"], reached=reached, inspected=m["inspected"], picked=picked,
            kept=m["kept"], put_back=m["put_back"], picked_units=m["picked_units"],
            put_back_units=m["put_back_units"], inspect_rate=_ratio(m["inspected"], reached),
            pick_rate=_ratio(picked, reached), keep_rate=_ratio(m["kept"], picked),
            put_back_rate=_ratio(m["put_back_units"], m["picked_units"]),
            inspect_median_kept_s=_round(kept.get(key, [None])[0]),
            inspect_median_put_back_s=_round(returned.get(key, [None])[0]),
        ))  # fmt: skip
    return out


def attention(conn: Connection, scope: Scope, threshold_s: float = 60.0) -> list[AttentionRow]:
    """Attention without sales: per zone (within store or box when asked), inspect-shelf seconds against units
    picked; in each bucket the zones with the most attention per pick first (no pick at all: first of all)."""
    if "zone" not in scope.by:
        scope = Scope(scope.stores, scope.start, scope.end, scope.bucket, (*scope.by, "zone"))
    t = visit_zones
    keys = _keys(t, scope)
    query = select(*keys, func.count().label("shoppers"), func.sum(t.c.inspect_shelf_s).label("seconds"),
                   func.sum(t.c.picked).label("picked")).where(_where(t, scope)).group_by(*keys)  # fmt: skip
    out = []
    for r in conn.execute(query):
        m = r._mapping
        seconds, picked = float(m["seconds"] or 0), int(m["picked"] or 0)
        per_pick = seconds / picked if picked else None
        unsold = seconds > 0 and (per_pick is None or per_pick >= threshold_s)
        row = {"shoppers": m["shoppers"], "inspect_shelf_s": round(seconds, 1), "picked_units": picked}
        out.append(AttentionRow(**_group(m, keys, scope), **row, attention_s_per_pick=_round(per_pick),
                                without_sales=unsold))  # fmt: skip
    out.sort(
        key=lambda a: (a.bucket, a.attention_s_per_pick is not None, -(a.attention_s_per_pick or a.inspect_shelf_s))
    )
    return out


def _key(m: Any, keys: list[Column]) -> tuple:
    return tuple(_plain(m[k.name]) for k in keys)


def _group(m: Any, keys: list[Column], scope: Scope) -> dict:
    """A result row's bucket and groupings, as the response rows name them."""
    out = {k.name: m[k.name] for k in keys if k.name in ("store", "box", "zone")}
    out["bucket"] = _plain(m[scope.bucket]) if scope.bucket != "total" else as_utc(scope.start)
    return out


def _plain(v: Any) -> Any:
    """SQLite hands datetimes back naive (and a literal bucket as text): every bucket as an aware UTC datetime."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return v
    return as_utc(v) if isinstance(v, datetime) else v


EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc)


def report_time(ts: datetime) -> datetime:
    """A report's start or end, in UTC (one without an offset is UTC), within the years 1900 to 9998: 0001-01-01
    at +14:00 has no UTC time, and a range must leave room to count back its default length."""
    try:
        utc = as_utc(ts)
    except OverflowError:
        raise ValueError(f"{ts.isoformat()} is out of range in UTC") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"{ts.isoformat()} is outside the years {EARLIEST.year} to {LATEST.year - 1}")
    return utc


ReportTime = Annotated[datetime, AfterValidator(report_time)]


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 2)


def default_range(start: datetime | None, end: datetime | None, days: int = 30) -> tuple[datetime, datetime]:
    end = as_utc(end or datetime.now(timezone.utc))
    return as_utc(start) if start else end - timedelta(days=days), end
