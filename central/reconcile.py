"""Cross-checking item counts with the checkout.

(a) Per checkout lane: when a transaction closes, the items the lane's box counted while it was open
    (picks minus put-backs per SKU, by event time) against the items scanned: one alert per unscanned unit.
(b) Per SKU and period: shelf picks minus put-backs over every box of a store against the units sold.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from central import db
from central.pos import Alert, ShrinkRow


def lane_alerts(conn: Connection, store: str, transaction_id: str, box: str) -> list[Alert]:
    """The alerts for one closed transaction (stored idempotently; the same ones on every call)."""
    this = (db.transactions.c.store == store, db.transactions.c.transaction_id == transaction_id)
    t = conn.execute(select(db.transactions).where(*this)).first()
    if t is None or t.closed is None:
        return []
    counted, confidence = _counted(conn, t.store, box, t.opened, t.closed)
    scanned: Counter = Counter()
    for sku, qty in conn.execute(select(db.scans.c.sku, db.scans.c.quantity).where(
            db.scans.c.store == store, db.scans.c.transaction_id == transaction_id)):  # fmt: skip
        scanned[sku] += qty
    out = []
    for sku in sorted(counted):
        for unit in range(1, counted[sku] - scanned[sku] + 1):
            alert = Alert(alert_id=f"{store}/{transaction_id}:{sku}:{unit}", store=t.store, lane=t.lane,
                          transaction_id=transaction_id, sku=sku, unit=unit, confidence=round(confidence[sku], 4),
                          box=box, created=db._aware(t.closed))  # fmt: skip
            db.insert_ignore(conn, db.alerts, alert.model_dump())
            out.append(alert)
    return out


def _counted(conn: Connection, store: str, box: str, start: datetime, end: datetime) -> tuple[Counter, dict]:
    """Picks minus put-backs per SKU at the lane's box while the transaction was open. A put-back with no shopper
    (nobody was seen taking that item) is the shelf's business, not a basket's: it offsets no pick, as on the box,
    where no basket goes below zero."""
    e = db.events.c
    rows = conn.execute(select(e.kind, e.sku, e.quantity, e.confidence).where(
        and_(e.store == store, e.box == box, e.ts >= start, e.ts <= end,
             (e.kind == "pick") | ((e.kind == "putback") & e.shopper.is_not(None)))))  # fmt: skip
    counted: Counter = Counter()
    confidences: dict[str, list[float]] = defaultdict(list)
    for kind, sku, qty, conf in rows:
        counted[sku] += qty if kind == "pick" else -qty
        if kind == "pick":
            confidences[sku].append(conf or 0.0)
    return counted, {k: sum(v) / len(v) for k, v in confidences.items()} | {
        k: 0.0 for k in counted if k not in confidences
    }


def shrink_report(conn: Connection, store: str, start: datetime, end: datetime) -> list[ShrinkRow]:
    picked: Counter = Counter()
    returned: Counter = Counter()
    for kind, sku, qty in conn.execute(select(db.events.c.kind, db.events.c.sku, db.events.c.quantity).where(
            and_(db.events.c.store == store, db.events.c.kind.in_(("pick", "putback")), db.events.c.ts >= start,
                 db.events.c.ts < end))):  # fmt: skip
        (picked if kind == "pick" else returned)[sku] += qty
    sold: Counter = Counter()
    query = select(db.scans.c.sku, db.scans.c.quantity).join(
        db.transactions, and_(db.scans.c.store == db.transactions.c.store,
                              db.scans.c.transaction_id == db.transactions.c.transaction_id)).where(
        and_(db.transactions.c.store == store, db.transactions.c.closed.is_not(None), db.scans.c.ts >= start,
             db.scans.c.ts < end))  # fmt: skip
    for sku, qty in conn.execute(query):
        sold[sku] += qty
    rows = []
    for sku in sorted(set(picked) | set(returned) | set(sold)):
        taken = picked[sku] - returned[sku]
        rows.append(ShrinkRow(sku=sku, picked=picked[sku], put_back=returned[sku], taken=taken, sold=sold[sku],
                              unexplained=taken - sold[sku]))  # fmt: skip
    return rows
