"""A manager's verdict on an alert: confirmed (it was what the alert said) or wrong (it was not), with a note. A wrong
alert enters the review queue (`central.review_queue`): the box's mistake is worth a reviewer's minute.

An alert cites the picks and put-backs of its SKU that its lane's box saw while the transaction was open (its
evidence, as the dashboard shows it); the clip the box kept around any of them (a box clip whose covered event ids
include one) is attached to the alert."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine, Row

from central import db
from central.pos import Alert
from central.reconcile import in_window, unsure
from edge.schema import Strict
from edge.times import as_utc

VERDICTS = ("confirmed", "wrong")
MAX_NOTE = 1000


class NotFound(Exception):
    pass


class VerdictBody(Strict):
    """What a manager says of an alert (`open` takes a verdict back)."""

    alert_id: str = Field(min_length=1, max_length=256)
    verdict: Literal["confirmed", "wrong", "open"]
    note: str = Field(default="", max_length=MAX_NOTE)


class AlertView(Alert):
    """An alert as `/alerts` serves it: with its verdict and the clip the box kept of its evidence, if any."""

    verdict: Literal["open", "confirmed", "wrong"] = "open"
    note: str | None = None
    verdict_by: str | None = Field(default=None, description="the token id of whoever gave the verdict")
    verdict_at: datetime | None = None
    clip: str | None = Field(default=None, description="the box's clip of the cited picks: <box>/<file name>")


def evidence_ids(conn: Connection, alert: Row) -> list[str]:
    """The ids of the events an alert cites: its lane box's picks and put-backs of its SKU while it was open."""
    x = db.transactions.c
    t = conn.execute(select(x.opened, x.closed).where(x.store == alert.store,
                                                      x.transaction_id == alert.transaction_id)).first()  # fmt: skip
    if t is None or t.closed is None:
        return []
    window = in_window(alert.store, t.opened, t.closed, alert.box) | unsure(alert.store, t.opened, t.closed, alert.box)
    query = select(db.events.c.event_id).where(window, db.events.c.sku == alert.sku).order_by(db.events.c.ts)
    return [r[0] for r in conn.execute(query)]


def box_clips(conn: Connection, store: str, box: str | None = None) -> list[Row]:
    """The clips boxes of a store kept and sent (oldest first)."""
    f = db.files.c
    query = select(db.files).where(f.store == store, f.kind == "clip", f.direction == "up")
    if box is not None:
        query = query.where(f.box == box)
    return list(conn.execute(query.order_by(f.created, f.name)))


def covers_of(row: Row) -> list[str]:
    return list(row.covers or [])


def clip_of(conn: Connection, alert: Row, evidence: list[str] | None = None) -> Row | None:
    """The clip the alert's box kept of any event the alert cites (the newest), or None."""
    cited = set(evidence if evidence is not None else evidence_ids(conn, alert))
    if not cited:
        return None
    found = [r for r in box_clips(conn, alert.store, alert.box) if cited & set(covers_of(r))]
    return found[-1] if found else None


def view(conn: Connection, alert: Row, names: Mapping[str, str] | None = None) -> AlertView:
    """`names`: SKU -> product name (the store's catalogue, `central.catalog`), for the alert's `name`."""
    clip = clip_of(conn, alert)
    m = alert._mapping
    base = {k: m[k] for k in Alert.model_fields if k in m}
    name = (names or {}).get(alert.sku)
    return AlertView(**base | {"created": as_utc(alert.created), "name": name}, verdict=alert.verdict or "open",
                     note=alert.verdict_note, verdict_by=alert.verdict_by,
                     verdict_at=as_utc(alert.verdict_at) if alert.verdict_at is not None else None,
                     clip=f"{clip.box}/{clip.name}" if clip is not None else None)  # fmt: skip


def judge(engine: Engine, body: VerdictBody, token_id: str | None, stores: set[str] | None,
          names: Mapping[str, str] | None = None) -> AlertView:  # fmt: skip
    """Record a verdict (`stores`: those the caller may act for, None: every store); NotFound for an alert the caller
    cannot see."""
    a = db.alerts.c
    with engine.begin() as conn:
        row = conn.execute(select(db.alerts).where(a.alert_id == body.alert_id)).first()
        if row is None or (stores is not None and row.store not in stores):
            raise NotFound(f"no alert {body.alert_id[:80]!r}")
        opened = body.verdict == "open"
        conn.execute(update(db.alerts).where(a.alert_id == body.alert_id).values(
            verdict=None if opened else body.verdict, verdict_note=None if opened else (body.note.strip() or None),
            verdict_by=None if opened else token_id, verdict_at=None if opened else db.now()))  # fmt: skip
        return view(conn, conn.execute(select(db.alerts).where(a.alert_id == body.alert_id)).one(), names)


def counts(conn: Connection, stores: set[str] | None) -> dict[str, int]:
    """How many alerts are open, confirmed and wrong (of the stores given; None: all)."""
    query = select(db.alerts.c.verdict)
    if stores is not None:
        query = query.where(db.alerts.c.store.in_(stores))
    out = dict.fromkeys(("open", *VERDICTS), 0)
    for (verdict,) in conn.execute(query):
        out[verdict or "open"] += 1
    return out
