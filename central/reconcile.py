"""Cross-checking item counts with the checkout.

(a) Per checkout lane: when a transaction closes, the items the lane's box counted while it was open
    (picks minus put-backs per SKU, by event time) against the items scanned: one alert per unscanned unit.
(b) Per SKU and period: shelf picks minus put-backs over every box of a store against the units sold.

Events from footage unlike the box model's training (`familiar: false`, issue 25) are no sure facts: they are
counted apart everywhere. A lane's theft alerts (`unscanned`) count only what the box surely saw, and assume every
unsure put-back was real (the fewest units missing); units that only the unsure events could account for (an unsure
pick, or a sure pick that an unsure put-back may have returned) become `unsure` alerts: "box unsure", a clip to
review, not a theft. The shrink report shows unsure picks and put-backs in their own columns.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from central import db
from central.pos import Alert, ShrinkRow
from edge.times import as_utc


def lane_alerts(conn: Connection, store: str, transaction_id: str, box: str,
                names: Mapping[str, str] | None = None) -> list[Alert]:  # fmt: skip
    """The alerts for one closed transaction (stored idempotently; the same ones on every call)."""
    this = (db.transactions.c.store == store, db.transactions.c.transaction_id == transaction_id)
    t = conn.execute(select(db.transactions).where(*this)).first()
    if t is None or t.closed is None:
        return []
    counted, confidence = _counted(conn, t.store, box, t.opened, t.closed)
    picks_unsure, putbacks_unsure = _unsure(conn, t.store, box, t.opened, t.closed)
    scanned: Counter = Counter()
    for sku, qty in conn.execute(select(db.scans.c.sku, db.scans.c.quantity).where(
            db.scans.c.store == store, db.scans.c.transaction_id == transaction_id)):  # fmt: skip
        scanned[sku] += qty
    out = []
    for sku in sorted(set(counted) | set(picks_unsure)):
        surely = max(0, counted[sku] - putbacks_unsure[sku] - scanned[sku])  # even if every unsure put-back was real
        maybe = max(0, counted[sku] + picks_unsure[sku] - scanned[sku])  # if every unsure pick was real too
        for unit in range(1, maybe + 1):
            kind = "unscanned" if unit <= surely else "unsure"
            sure = round(confidence.get(sku, 0.0), 4)  # the sure picks' mean confidence (none: 0)
            alert = Alert(alert_id=f"{store}/{transaction_id}:{sku}:{unit}", store=t.store, lane=t.lane,
                          transaction_id=transaction_id, sku=sku, name=(names or {}).get(sku), unit=unit,
                          confidence=sure, box=box, created=as_utc(t.closed), kind=kind)  # fmt: skip
            db.insert_ignore(conn, db.alerts, alert.model_dump(exclude={"name"}))  # the name: the catalogue's, now
            out.append(alert)
    return out


def in_window(store: str, start: datetime, end: datetime, box: str | None = None) -> ColumnElement[bool]:
    """The one rule for which picks and put-backs belong to a window, used by the lane alerts, the shrink report
    and the dashboard's evidence alike:
    - the window is half-open, [start, end): an event at the very moment a basket closes belongs to the next
      window, so consecutive periods add up and no event counts twice;
    - a put-back with no shopper (nobody was seen taking that item) is the shelf's business, not a basket's: it
      offsets no pick, as on the box, where no basket goes below zero (`edge.baskets`). The shrink report counts
      it apart;
    - an event from footage unlike the model's training (familiar false) is no sure fact: `unsure` counts it
      (NULL, from a box without a guard, counts as before)."""
    e = db.events.c
    where = [e.store == store, e.ts >= start, e.ts < end, e.familiar.is_not(False),
             (e.kind == "pick") | ((e.kind == "putback") & e.shopper.is_not(None))]  # fmt: skip
    if box is not None:
        where.append(e.box == box)
    return and_(*where)


def unsure(store: str, start: datetime, end: datetime, box: str | None = None) -> ColumnElement[bool]:
    """Picks and put-backs from footage unlike the box model's training in the window (any shopper or none)."""
    e = db.events.c
    where = [e.store == store, e.ts >= start, e.ts < end, e.familiar.is_(False), e.kind.in_(("pick", "putback"))]
    if box is not None:
        where.append(e.box == box)
    return and_(*where)


def _unsure(conn: Connection, store: str, box: str, start: datetime, end: datetime) -> tuple[Counter, Counter]:
    e = db.events.c
    picks: Counter = Counter()
    putbacks: Counter = Counter()
    for kind, sku, qty in conn.execute(select(e.kind, e.sku, e.quantity).where(unsure(store, start, end, box))):
        (picks if kind == "pick" else putbacks)[sku] += qty
    return picks, putbacks


def unattributed_putbacks(store: str, start: datetime, end: datetime) -> ColumnElement[bool]:
    e = db.events.c
    return and_(e.store == store, e.ts >= start, e.ts < end, e.kind == "putback", e.shopper.is_(None),
                e.familiar.is_not(False))  # fmt: skip


def _counted(conn: Connection, store: str, box: str, start: datetime, end: datetime) -> tuple[Counter, dict]:
    """Picks minus put-backs per SKU at the lane's box while the transaction was open, with the picks' mean
    confidence."""
    e = db.events.c
    rows = conn.execute(select(e.kind, e.sku, e.quantity, e.confidence).where(in_window(store, start, end, box)))
    counted: Counter = Counter()
    confidences: dict[str, list[float]] = defaultdict(list)
    for kind, sku, qty, conf in rows:
        counted[sku] += qty if kind == "pick" else -qty
        if kind == "pick":
            confidences[sku].append(conf or 0.0)
    return counted, {k: sum(v) / len(v) for k, v in confidences.items()} | {
        k: 0.0 for k in counted if k not in confidences
    }


def shrink_report(conn: Connection, store: str, start: datetime, end: datetime,
                  names: Mapping[str, str] | None = None) -> list[ShrinkRow]:  # fmt: skip
    e = db.events.c
    picked: Counter = Counter()
    returned: Counter = Counter()
    for kind, sku, qty in conn.execute(select(e.kind, e.sku, e.quantity).where(in_window(store, start, end))):
        (picked if kind == "pick" else returned)[sku] += qty
    unattributed: Counter = Counter()
    for sku, qty in conn.execute(select(e.sku, e.quantity).where(unattributed_putbacks(store, start, end))):
        unattributed[sku] += qty
    picked_unsure: Counter = Counter()
    returned_unsure: Counter = Counter()
    for kind, sku, qty in conn.execute(select(e.kind, e.sku, e.quantity).where(unsure(store, start, end))):
        (picked_unsure if kind == "pick" else returned_unsure)[sku] += qty
    sold: Counter = Counter()
    query = select(db.scans.c.sku, db.scans.c.quantity).join(
        db.transactions, and_(db.scans.c.store == db.transactions.c.store,
                              db.scans.c.transaction_id == db.transactions.c.transaction_id)).where(
        and_(db.transactions.c.store == store, db.transactions.c.closed.is_not(None), db.scans.c.ts >= start,
             db.scans.c.ts < end))  # fmt: skip
    for sku, qty in conn.execute(query):
        sold[sku] += qty
    rows = []
    for sku in sorted(set(picked) | set(returned) | set(sold) | set(unattributed) | set(picked_unsure)
                      | set(returned_unsure)):  # fmt: skip
        taken = picked[sku] - returned[sku]
        rows.append(ShrinkRow(sku=sku, name=(names or {}).get(sku), picked=picked[sku], put_back=returned[sku],
                              taken=taken, sold=sold[sku],
                              unexplained=taken - sold[sku], put_back_unattributed=unattributed[sku],
                              picked_unsure=picked_unsure[sku], put_back_unsure=returned_unsure[sku]))  # fmt: skip
    return rows
