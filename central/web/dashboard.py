"""The store dashboard's data, read straight from central's tables: boxes with their latest heartbeat and open
seq gaps, the latest events, alerts with their evidence (the transaction, what was scanned, the box's picks
and put-backs of that SKU while it was open), a manager's verdict on each and the clip the box kept of them, how
many alerts are open, confirmed and wrong, and the shrink report. The page gets it as server-sent events:
a snapshot whenever it changes.

A box whose heartbeats said for `unfamiliar_minutes` (central's --unfamiliar-minutes, 10) that at least
--unfamiliar-share (20 %) of its analysed frames were unlike its model's training gets a warning: its camera's
footage is unlike the model's training, and its clips should be reviewed to adapt it.

Each box's running bundle (and the one staged, the last switch and its problem) comes from its heartbeat; the latest
rollouts (`central.rollout`) show their progress and each box's state and reason, limited to the viewer's stores."""

# No `from __future__ import annotations`: FastAPI reads the stream route's annotations.
import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from central import auth, db, rollout, verdicts
from central.reconcile import in_window, shrink_report, unsure
from central.web.auth import bearer, stores_of
from central.web.site import Site
from edge.times import as_utc

FEED = 30  # latest events shown
ROLLOUTS = 3  # latest rollouts shown
ALERTS = 20
KEEPALIVE_S = 15.0
SHRINK_EVERY_S = 15.0  # the shrink report sums a day of events: not on every tick
RECHECK_S = 2.0  # how often an open stream checks that its token is still valid


def _iso(ts: datetime | None) -> str | None:
    return as_utc(ts).isoformat() if ts is not None else None


UNFAMILIAR_WARNING = "this camera's footage is unlike the model's training: review clips to adapt it"


def boxes(engine: Engine, stores: set[str] | None, unfamiliar_minutes: float = 10.0) -> list[dict]:
    with engine.connect() as conn:
        out = []
        for r in db.box_rows(conn):
            if stores is not None and r["store"] not in stores:
                continue
            status = r["status"] or {}
            gaps = db.open_gaps(conn, r["store"], r["box"])
            since, latest = r["unfamiliar_since"], r["status_ts"]
            long_enough = since is not None and latest is not None and r["state"] == "running" and (
                as_utc(latest) - as_utc(since) >= timedelta(minutes=unfamiliar_minutes))  # fmt: skip
            out.append({
                "store": r["store"], "box": r["box"], "state": r["state"] or "unknown", "online": bool(r["online"]),
                "heartbeat": _iso(r["status_ts"]), "fps": status.get("fps"), "camera_fps": status.get("camera_fps"),
                "busy": status.get("busy"), "outbox_depth": status.get("outbox_depth"),
                "dropped_frames": status.get("dropped_frames"), "frames": status.get("frames"),
                "bundle_id": status.get("bundle_id"), "gaps": len(gaps), "missing": sum(b - a + 1 for a, b in gaps),
                "unfamiliar_share": status.get("unfamiliar_share"), "unfamiliar_since": _iso(since),
                "unfamiliar_warning": UNFAMILIAR_WARNING if long_enough else None,
                "staged_bundle": status.get("staged_bundle"), "switch": status.get("switch"),
                "switch_bundle": status.get("switch_bundle"), "problem": status.get("problem"),
            })  # fmt: skip
        return out


def rollouts(engine: Engine, stores: set[str] | None) -> list[dict]:
    """The latest rollouts (`central.rollout`) that reach these stores, with only these stores' boxes: progress per
    state, and each box's state and reason."""
    with engine.connect() as conn:
        return rollout.visible(rollout.summary(conn, limit=ROLLOUTS), stores)


def named(event: dict, names: Mapping[str, str]) -> dict:
    """An event as the page shows it: the catalogue's name beside each SKU it carries (`name` beside `sku`, a
    visit's products each with theirs, a basket's `names` for its items)."""
    out = dict(event)
    if out.get("sku") in names:
        out["name"] = names[out["sku"]]
    if isinstance(out.get("products"), list):
        out["products"] = [{**p, "name": names[p["sku"]]} if p.get("sku") in names else p for p in out["products"]]
    if isinstance(out.get("items"), dict):
        out["names"] = {k: names[k] for k in out["items"] if k in names}
    return out


def feed(engine: Engine, stores: set[str] | None, names: Mapping[str, str] | None = None) -> list[dict]:
    query = select(db.events.c.payload).where(db.events.c.kind != "status")
    if stores is not None:
        query = query.where(db.events.c.store.in_(stores))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(db.events.c.ts.desc(), db.events.c.seq.desc()).limit(FEED))
        return [named(r.payload if isinstance(r.payload, dict) else json.loads(r.payload), names or {}) for r in rows]


def alerts(engine: Engine, stores: set[str] | None, names: Mapping[str, str] | None = None) -> list[dict]:
    names = names or {}
    query = select(db.alerts).order_by(db.alerts.c.created.desc(), db.alerts.c.alert_id).limit(ALERTS)
    if stores is not None:
        query = query.where(db.alerts.c.store.in_(stores))
    out = []
    with engine.connect() as conn:
        for a in conn.execute(query):
            t = conn.execute(
                select(db.transactions).where(
                    db.transactions.c.store == a.store, db.transactions.c.transaction_id == a.transaction_id
                )
            ).first()  # transaction ids are the POS's own: unique per store only
            scans = conn.execute(select(db.scans.c.sku, db.scans.c.quantity).where(
                db.scans.c.store == a.store, db.scans.c.transaction_id == a.transaction_id)).all()  # fmt: skip
            evidence = []
            if t is not None and t.closed is not None:
                evidence = [dict(r._mapping) | {"ts": _iso(r.ts)} for r in conn.execute(
                    select(db.events.c.kind, db.events.c.ts, db.events.c.shopper, db.events.c.confidence,
                           db.events.c.event_id, db.events.c.familiar).where(
                        in_window(a.store, t.opened, t.closed, a.box) | unsure(a.store, t.opened, t.closed, a.box),
                        db.events.c.sku == a.sku).order_by(db.events.c.ts))]  # fmt: skip
            out.append({
                "alert_id": a.alert_id, "kind": a.kind, "store": a.store, "lane": a.lane, "box": a.box, "sku": a.sku,
                "name": names.get(a.sku), "unit": a.unit,
                "confidence": a.confidence, "created": _iso(a.created), "transaction_id": a.transaction_id,
                "opened": _iso(t.opened) if t else None, "closed": _iso(t.closed) if t else None,
                "scanned": [{"sku": s, "name": names.get(s), "quantity": q} for s, q in scans], "evidence": evidence,
                "verdict": a.verdict or "open", "note": a.verdict_note, "verdict_at": _iso(a.verdict_at),
                "clip": _clip(conn, a, [e["event_id"] for e in evidence]),
            })  # fmt: skip
    return out


def _clip(conn: Any, alert: Any, evidence: list[str]) -> dict | None:
    """The clip the box kept of the alert's evidence: where the page opens it in the editor."""
    clip = verdicts.clip_of(conn, alert, evidence)
    if clip is None:
        return None
    return {"box": clip.box, "name": clip.name,
            "open": f"/review/open/{quote(clip.store)}/{quote(clip.box)}/{quote(clip.name)}"}  # fmt: skip


def verdict_counts(engine: Engine, stores: set[str] | None) -> dict[str, int]:
    with engine.connect() as conn:
        return verdicts.counts(conn, stores)


def shrink(engine: Engine, stores: set[str] | None, names: Mapping[str, str] | None = None) -> dict[str, list[dict]]:
    end = datetime.now(timezone.utc)
    with engine.connect() as conn:
        known = sorted({r["store"] for r in db.box_rows(conn)} | {s for (s,) in conn.execute(
            select(db.transactions.c.store).distinct())})  # fmt: skip
        return {s: [r.model_dump() for r in shrink_report(conn, s, end - timedelta(days=1), end, names)]
                for s in known if stores is None or s in stores}  # fmt: skip


async def snapshots(
    engine: Engine, stores: set[str] | None, disconnected: Callable, admitted: Callable[[], bool] = lambda: True,
    every_s: float = 1.0, unfamiliar_minutes: float = 10.0, names: Mapping[str, str] | None = None,
) -> AsyncIterator[str]:  # fmt: skip
    """Server-sent events: the whole snapshot at once, then again whenever it changes (checked every second). The
    caller's token is checked again every RECHECK_S: once it is revoked, a `revoked` event ends the stream."""
    last, shrunk, shrink_at, quiet_since, checked_at, seen = None, {}, 0.0, 0.0, 0.0, ""
    loop = asyncio.get_running_loop()
    yield "retry: 2000\n\n"
    while not await disconnected():
        if loop.time() >= checked_at + RECHECK_S:
            if not await run_in_threadpool(admitted):
                yield "event: revoked\ndata: {}\n\n"
                return
            checked_at = loop.time()
        latest = {"feed": await run_in_threadpool(feed, engine, stores, names),
                  "alerts": await run_in_threadpool(alerts, engine, stores, names)}  # fmt: skip
        # One stream, panels that agree: the shrink report is summed again in the snapshot that brings a new event or
        # alert (a checkout's alert and its "sold" arrive together), and at least every SHRINK_EVERY_S for the rest
        # (a scan outside any alert, a day's window moving on).
        changed = json.dumps(latest, default=str) != seen
        if changed or loop.time() >= shrink_at:
            shrunk = await run_in_threadpool(shrink, engine, stores, names)
            shrink_at = loop.time() + SHRINK_EVERY_S
            seen = json.dumps(latest, default=str)
        data = {"boxes": await run_in_threadpool(boxes, engine, stores, unfamiliar_minutes), **latest,
                "shrink": shrunk, "rollouts": await run_in_threadpool(rollouts, engine, stores),
                "verdicts": await run_in_threadpool(verdict_counts, engine, stores)}  # fmt: skip
        text = json.dumps(data, default=str)
        if text != last:
            yield f"event: snapshot\ndata: {text}\n\n"
            last, quiet_since = text, loop.time()
        elif loop.time() - quiet_since > KEEPALIVE_S:
            yield ": still here\n\n"  # keeps proxies from closing an idle stream
            quiet_since = loop.time()
        await asyncio.sleep(every_s)


def router(site: Site) -> APIRouter:
    """The dashboard's live stream (only inside `central run`, where there is a database)."""
    routes = APIRouter(tags=["web"])
    Principal = Annotated[Any, Depends(site.auth)]

    @routes.get("/web/api/dashboard/stream")
    async def stream(request: Request, principal: Principal) -> StreamingResponse:
        """Server-sent events: `snapshot` (boxes, feed, alerts with evidence, shrink, rollouts) whenever it changes;
        `revoked`
        ends the stream when its token has been revoked."""
        engine, token = site.central.engine, bearer(request) or ""
        return StreamingResponse(snapshots(engine, stores_of(principal), request.is_disconnected,
                                           lambda: auth.authenticate(engine, token) is not None,
                                           unfamiliar_minutes=site.central.unfamiliar_minutes,
                                           names=site.central.names),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-store"})  # fmt: skip

    return routes
