"""What central does with each message, wherever it came from (MQTT or HTTP): validate, store
idempotently, reconcile; anything invalid goes to the dead-letter table with its reason, and nowhere else."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from central import db, insights
from central.pos import POS_ADAPTER, POS_TOPIC_ROOT, Alert, BasketClose, BasketOpen, ItemScanned, Payment, PosMessage
from central.reconcile import lane_alerts
from edge.events import TOPIC_ROOT, PayloadTooLarge, StatusEvent, decode
from edge.schema import describe


def utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc)


class Central:
    def __init__(
        self, engine: Engine, lane_boxes: dict[str, str] | None = None,
        publish_alert: Callable[[Alert], None] | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        insights.create(engine)  # the insight rollups, kept up to date as visit events are stored
        self.lane_boxes = lane_boxes or {}  # "store/lane" -> box; by default a lane's box has the lane's name
        self.publish_alert = publish_alert
        self.counts = {"stored": 0, "duplicate": 0, "dead": 0, "status": 0, "pos": 0, "alerts_published": 0,
                       "alerts_refused": 0}  # fmt: skip
        self.problem: str | None = None  # set when central cannot go on (its writer stopped): /health fails
        self.waiting_for_db: str | None = None  # the database error the writer is retrying after, if any

    def event(self, topic: str, payload: bytes) -> str:
        """One message from a box's topic -> stored, duplicate, status or dead."""
        return self.events([(topic, payload)])[0]

    def events(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """Many messages in one transaction (one commit: what makes ingest fast); an outcome for each."""
        outcomes: list[str] = [""] * len(messages)
        sequenced: list[tuple[int, object]] = []
        with self.engine.begin() as conn:
            statuses = []
            for i, (topic, payload) in enumerate(messages):
                event, reason = self._valid(topic, payload)
                if event is None:
                    db.dead_letter(conn, "mqtt", topic, payload, reason)
                    outcomes[i] = "dead"
                elif isinstance(event, StatusEvent):
                    statuses.append((i, event))
                else:
                    sequenced.append((i, event))
            stored = db.store_events(conn, [e for _, e in sequenced]) if sequenced else []
            for (i, _), new in zip(sequenced, stored, strict=True):
                outcomes[i] = "stored" if new else "duplicate"
            insights.record(conn, [e for (_, e), new in zip(sequenced, stored, strict=True) if new])
            for i, status in statuses:
                db.store_status(conn, status)
                outcomes[i] = "status"
        for outcome in outcomes:
            self.counts[outcome] += 1
        return outcomes

    @staticmethod
    def _valid(topic: str, payload: bytes) -> tuple[object | None, str]:
        try:
            event = decode(payload)
        except ValidationError as error:
            return None, describe(error, every=True)
        except PayloadTooLarge as error:
            return None, str(error)
        expected = f"{TOPIC_ROOT}/{event.store}/{event.box}/{event.kind}"
        if topic != expected:
            return None, f"topic does not match the payload (expected {expected})"
        return event.model_copy(update={"ts": utc(event.ts)}), ""

    def _dead(self, source: str, topic: str | None, payload: bytes | str, reason: str) -> str:
        with self.engine.begin() as conn:
            db.dead_letter(conn, source, topic, payload, reason)
        self.counts["dead"] += 1
        return "dead"

    def pos_payload(self, source: str, topic: str | None, payload: bytes | str) -> tuple[list[Alert] | None, str]:
        """A POS message as raw JSON: (alerts, "") when applied, (None, reason) when rejected."""
        try:
            message = POS_ADAPTER.validate_json(payload)
        except ValidationError as error:
            reason = describe(error, every=True)
            self._dead(source, topic, payload, reason)
            return None, reason
        expected = f"{POS_TOPIC_ROOT}/{message.store}/{message.lane}"
        if topic is not None and source == "mqtt" and topic != expected:  # the broker's ACL is per topic
            reason = f"topic does not match the message (expected {expected})"
            self._dead(source, topic, payload, reason)
            return None, reason
        return self.pos(message, source, topic)

    def pos(
        self, message: PosMessage, source: str = "http", topic: str | None = None
    ) -> tuple[list[Alert] | None, str]:
        alerts: list[Alert] = []
        with self.engine.begin() as conn:
            this = (
                db.transactions.c.store == message.store,
                db.transactions.c.transaction_id == message.transaction_id,
            )
            t = conn.execute(select(db.transactions).where(*this)).first()
            problem = self._pos_problem(message, t)
            if problem:
                db.dead_letter(conn, source, topic, message.model_dump_json(), problem)
                self.counts["dead"] += 1
                return None, problem
            ts = utc(message.ts)
            if isinstance(message, BasketOpen):
                db.insert_ignore(conn, db.transactions, {"transaction_id": message.transaction_id,
                                 "store": message.store, "lane": message.lane, "opened": ts})  # fmt: skip
            elif isinstance(message, ItemScanned):
                scan = {"store": message.store, "message_id": message.message_id,
                        "transaction_id": message.transaction_id}  # fmt: skip
                scan |= {"sku": message.sku, "quantity": message.quantity, "ts": ts}
                db.insert_ignore(conn, db.scans, scan)
            elif isinstance(message, Payment):
                conn.execute(update(db.transactions).where(*this).values(paid=message.amount))
            elif isinstance(message, BasketClose):
                if t.closed is None:
                    conn.execute(update(db.transactions).where(*this).values(closed=ts))
                box = self.lane_boxes.get(f"{message.store}/{message.lane}", message.lane)
                alerts = lane_alerts(conn, message.store, message.transaction_id, box)
        self.counts["pos"] += 1
        if self.publish_alert is not None:
            for alert in alerts:
                self.publish_alert(alert)
        return alerts, ""

    @staticmethod
    def _pos_problem(message: PosMessage, t: object | None) -> str:
        if isinstance(message, BasketOpen):
            if t is not None and (t.store, t.lane) != (message.store, message.lane):
                return f"transaction {message.transaction_id} is already open at {t.store}/{t.lane}"
            return ""
        if t is None:
            return f"transaction {message.transaction_id} was never opened"
        if (t.store, t.lane) != (message.store, message.lane):
            return f"transaction {message.transaction_id} belongs to {t.store}/{t.lane}"
        if isinstance(message, ItemScanned) and t.closed is not None:
            return f"transaction {message.transaction_id} is closed"
        return ""


def alert_payload(alert: Alert) -> bytes:
    return json.dumps(json.loads(alert.model_dump_json())).encode()
