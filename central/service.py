"""What central does with each message, wherever it came from (MQTT or HTTP): validate, store
idempotently, reconcile; anything invalid goes to the dead-letter table with its reason, and nowhere else."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from central import db, insights
from central.pos import POS_ADAPTER, POS_TOPIC_ROOT, Alert, BasketClose, BasketOpen, ItemScanned, Payment, PosMessage
from central.reconcile import lane_alerts
from edge.control import Desired, SnapshotRequest, control_topic, encode_control
from edge.events import TOPIC_ROOT, PayloadTooLarge, StatusEvent, decode
from edge.schema import describe
from edge.times import as_utc


class Counts(dict):
    """What central has done, by outcome. The writer thread, HTTP requests and the MQTT client's thread all add to
    it: `+=` on a dict entry is a read and a write, so additions take a lock (reads see a whole number)."""

    def __init__(self, *keys: str) -> None:
        super().__init__(dict.fromkeys(keys, 0))
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self[key] = self.get(key, 0) + n


class Central:
    def __init__(
        self, engine: Engine, lane_boxes: dict[str, str] | None = None,
        publish_alert: Callable[[Alert], None] | None = None, unfamiliar_share: float = 0.2,
        unfamiliar_minutes: float = 10.0, review_random_share: float = 0.1, clip_retention_days: float = 30.0,
    ) -> None:  # fmt: skip
        self.engine = engine  # at the current schema: db.connect migrates it
        # A box whose heartbeats' unfamiliar_share stays at or above this share for this long gets a warning on the
        # dashboard: its camera's footage is unlike the model's training.
        self.unfamiliar_share, self.unfamiliar_minutes = unfamiliar_share, unfamiliar_minutes
        # The review queue (`central.review_queue`): the share of its places drawn at random; box clips are deleted
        # this many days after they arrived (`central.retention`).
        self.review_random_share, self.clip_retention_days = review_random_share, clip_retention_days
        self.names: dict[str, str] = {}  # SKU -> product name, the store's catalogue (central.catalog)
        self.lane_boxes = lane_boxes or {}  # "store/lane" -> box; by default a lane's box has the lane's name
        self.publish_alert = publish_alert
        self.publish_control: Callable[[str, bytes], None] | None = None
        self.counts = Counts("stored", "duplicate", "dead", "status", "pos", "alerts_published", "alerts_refused",
                             "controls_published", "controls_refused")  # fmt: skip
        self.problem: str | None = None  # set when central cannot go on (its writer stopped): /health fails
        self.waiting_for_db: str | None = None  # the database error the writer is retrying after, if any

    def on_alert(self, publish: Callable[[Alert], None]) -> None:
        """Where alerts go once stored (central's MQTT consumer publishes them)."""
        self.publish_alert = publish

    def on_control(self, publish: Callable[[str, bytes], None]) -> None:
        """How control messages reach the boxes: (topic, payload), published retained by central's consumer."""
        self.publish_control = publish

    def send_control(self, store: str, box: str, message: Desired | SnapshotRequest) -> None:
        """Address a control message to one box: kept in the database (the latest of each name), then published
        retained on the box's control topic, so a box that is offline finds it when it connects."""
        with self.engine.begin() as conn:
            topic, payload = self.record_control(conn, store, box, message)
        self.publish(topic, payload)

    @staticmethod
    def record_control(conn: Connection, store: str, box: str, message: Desired | SnapshotRequest) -> tuple[str, bytes]:
        """Keep a control message as the latest of its name for the box (in `conn`'s transaction); the (topic,
        payload) to `publish` once that is committed."""
        payload = encode_control(message)
        row = {"store": store, "box": box, "name": message.name, "payload": json.loads(payload), "sent": db.now()}
        conn.execute(db.controls.delete().where(db.controls.c.store == store, db.controls.c.box == box,
                                                db.controls.c.name == message.name))  # fmt: skip
        conn.execute(db.controls.insert().values(**row))
        return control_topic(store, box, message.name), payload

    def publish(self, topic: str, payload: bytes) -> None:
        """A recorded control message to the broker (retained), when central has one."""
        if self.publish_control is not None:
            self.publish_control(topic, payload)

    def database_waiting(self, reason: str) -> None:
        """The writer is retrying after a database error: /health answers 503 with it until `database_back`."""
        self.waiting_for_db = reason

    def database_back(self) -> None:
        self.waiting_for_db = None

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
                db.store_status(conn, status, self.unfamiliar_share)
                outcomes[i] = "status"
        for outcome in outcomes:
            self.counts.add(outcome)
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
        return event.model_copy(update={"ts": as_utc(event.ts)}), ""

    def dead_letter(self, source: str, topic: str | None, payload: bytes | str, reason: str) -> str:
        """Keep a message that cannot be stored, with the reason. Whatever the message holds, it ends here: a
        dead letter the database refuses as it came (a constraint nobody foresaw) is kept as plain ASCII with no
        topic column. Only a database that refuses even that (it is away, or read-only) raises."""
        try:
            with self.engine.begin() as conn:
                db.dead_letter(conn, source, topic, payload, reason)
        except db.TRANSIENT_DB:
            raise
        except Exception as exc:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            refused = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            with self.engine.begin() as conn:
                db.dead_letter(conn, source, None, ascii(text), f"{reason} [kept as ASCII, topic {ascii(topic)[:300]}: "
                               f"the database refused it as it came ({type(exc).__name__}: {refused})]")  # fmt: skip
        self.counts.add("dead")
        return "dead"

    def pos_payload(self, source: str, topic: str | None, payload: bytes | str) -> tuple[list[Alert] | None, str]:
        """A POS message as raw JSON: (alerts, "") when applied, (None, reason) when rejected."""
        try:
            message = POS_ADAPTER.validate_json(payload)
        except ValidationError as error:
            reason = describe(error, every=True)
            self.dead_letter(source, topic, payload, reason)
            return None, reason
        expected = f"{POS_TOPIC_ROOT}/{message.store}/{message.lane}"
        if topic is not None and source == "mqtt" and topic != expected:  # the broker's ACL is per topic
            reason = f"topic does not match the message (expected {expected})"
            self.dead_letter(source, topic, payload, reason)
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
                self.counts.add("dead")
                return None, problem
            ts = as_utc(message.ts)
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
                alerts = lane_alerts(conn, message.store, message.transaction_id, box, self.names)
        self.counts.add("pos")
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
