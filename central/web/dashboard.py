"""The store dashboard's data, read straight from central's tables: boxes with their latest heartbeat and open
seq gaps, the latest events, alerts with their evidence (the transaction, what was scanned, the box's picks
and put-backs of that SKU while it was open) and the shrink report. The page gets it as server-sent events:
a snapshot whenever it changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from central import db
from central.reconcile import shrink_report

FEED = 30  # latest events shown
ALERTS = 20
KEEPALIVE_S = 15.0
SHRINK_EVERY_S = 15.0  # the shrink report sums a day of events: not on every tick


def _iso(ts: datetime | None) -> str | None:
    return db._aware(ts).isoformat() if ts is not None else None


def boxes(engine: Engine, stores: set[str] | None) -> list[dict]:
    with engine.connect() as conn:
        out = []
        for r in db.box_rows(conn):
            if stores is not None and r["store"] not in stores:
                continue
            status = r["status"] or {}
            gaps = db.open_gaps(conn, r["store"], r["box"])
            out.append({
                "store": r["store"], "box": r["box"], "state": r["state"] or "unknown", "online": bool(r["online"]),
                "heartbeat": _iso(r["status_ts"]), "fps": status.get("fps"), "outbox_depth": status.get("outbox_depth"),
                "dropped_frames": status.get("dropped_frames"), "frames": status.get("frames"),
                "bundle_id": status.get("bundle_id"), "gaps": len(gaps), "missing": sum(b - a + 1 for a, b in gaps),
            })  # fmt: skip
        return out


def feed(engine: Engine, stores: set[str] | None) -> list[dict]:
    query = select(db.events.c.payload).where(db.events.c.kind != "status")
    if stores is not None:
        query = query.where(db.events.c.store.in_(stores))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(db.events.c.ts.desc(), db.events.c.seq.desc()).limit(FEED))
        return [r.payload if isinstance(r.payload, dict) else json.loads(r.payload) for r in rows]


def alerts(engine: Engine, stores: set[str] | None) -> list[dict]:
    query = select(db.alerts).order_by(db.alerts.c.created.desc(), db.alerts.c.alert_id).limit(ALERTS)
    if stores is not None:
        query = query.where(db.alerts.c.store.in_(stores))
    out = []
    with engine.connect() as conn:
        for a in conn.execute(query):
            t = conn.execute(
                select(db.transactions).where(db.transactions.c.transaction_id == a.transaction_id)
            ).first()
            scans = conn.execute(select(db.scans.c.sku, db.scans.c.quantity).where(
                db.scans.c.transaction_id == a.transaction_id)).all()  # fmt: skip
            evidence = []
            if t is not None and t.closed is not None:
                evidence = [dict(r._mapping) | {"ts": _iso(r.ts)} for r in conn.execute(
                    select(db.events.c.kind, db.events.c.ts, db.events.c.shopper, db.events.c.confidence,
                           db.events.c.event_id).where(and_(
                        db.events.c.store == a.store, db.events.c.box == a.box, db.events.c.sku == a.sku,
                        db.events.c.kind.in_(("pick", "putback")), db.events.c.ts >= t.opened,
                        db.events.c.ts <= t.closed)).order_by(db.events.c.ts))]  # fmt: skip
            out.append({
                "alert_id": a.alert_id, "store": a.store, "lane": a.lane, "box": a.box, "sku": a.sku, "unit": a.unit,
                "confidence": a.confidence, "created": _iso(a.created), "transaction_id": a.transaction_id,
                "opened": _iso(t.opened) if t else None, "closed": _iso(t.closed) if t else None,
                "scanned": [{"sku": s, "quantity": q} for s, q in scans], "evidence": evidence,
            })  # fmt: skip
    return out


def shrink(engine: Engine, stores: set[str] | None) -> dict[str, list[dict]]:
    end = datetime.now(timezone.utc)
    with engine.connect() as conn:
        known = sorted({r["store"] for r in db.box_rows(conn)} | {s for (s,) in conn.execute(
            select(db.transactions.c.store).distinct())})  # fmt: skip
        return {s: [r.model_dump() for r in shrink_report(conn, s, end - timedelta(days=1), end)]
                for s in known if stores is None or s in stores}  # fmt: skip


async def snapshots(
    engine: Engine, stores: set[str] | None, disconnected: Callable, every_s: float = 1.0
) -> AsyncIterator[str]:
    """Server-sent events: the whole snapshot at once, then again whenever it changes (checked every second)."""
    last, shrunk, shrink_at, quiet_since = None, {}, 0.0, 0.0
    loop = asyncio.get_running_loop()
    yield "retry: 2000\n\n"
    while not await disconnected():
        if loop.time() >= shrink_at:
            shrunk = await run_in_threadpool(shrink, engine, stores)
            shrink_at = loop.time() + SHRINK_EVERY_S
        data = {"boxes": await run_in_threadpool(boxes, engine, stores),
                "feed": await run_in_threadpool(feed, engine, stores),
                "alerts": await run_in_threadpool(alerts, engine, stores), "shrink": shrunk}  # fmt: skip
        text = json.dumps(data, default=str)
        if text != last:
            yield f"event: snapshot\ndata: {text}\n\n"
            last, quiet_since = text, loop.time()
        elif loop.time() - quiet_since > KEEPALIVE_S:
            yield ": still here\n\n"  # keeps proxies from closing an idle stream
            quiet_since = loop.time()
        await asyncio.sleep(every_s)
