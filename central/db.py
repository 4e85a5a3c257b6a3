"""Central storage through SQLAlchemy Core: SQLite by default (embedded, nothing to install), PostgreSQL by URL.

Writes are idempotent and order-independent: an event is keyed by its `event_id` (a replay inserts
nothing), and everything derived from events (each box's highest seq, its open gaps) is recomputed from
the stored set, so replaying the same events twice, or in any order, leaves the same state.

A box's seq counts within an *epoch*: a box whose outbox is replaced (re-imaged, disk swapped) starts again
at 1. Every seq up to the box's highest is either stored or inside an open gap of the current epoch, so a
new event whose seq is neither above the highest nor in a gap has a seq already used by another event: it
starts the next epoch, and gaps are tracked per epoch. (A late event of an earlier epoch that arrives after
the next one began is stored, and counted in the epoch it arrives in: a rare miscount of gaps, never a loss.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from edge.errors import ShelfWatchError
from edge.times import as_utc

# The database is away or busy: the same write will succeed later. Any other error is about what was written.
TRANSIENT_DB = (OperationalError, InterfaceError)

metadata = MetaData()

events = Table(
    "events", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("store", String(64), nullable=False, index=True),
    Column("box", String(64), nullable=False),
    Column("epoch", Integer, nullable=False),  # the box's epoch: 1, then one more each time its seq restarts
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False, index=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("sku", String(64)),
    Column("quantity", Integer),
    Column("shopper", BigInteger),  # the schema bounds every integer to 2^53 - 1
    Column("confidence", Float),
    Column("payload", JSON, nullable=False),
    Column("familiar", Boolean),  # from footage like the model's training; NULL: unknown (a box without a guard)
    Index("events_by_box_seq", "store", "box", "epoch", "seq"),
)  # fmt: skip

boxes = Table(
    "boxes", metadata,
    Column("store", String(64), primary_key=True),
    Column("box", String(64), primary_key=True),
    Column("online", Boolean, nullable=False, default=False),
    Column("state", String(16)),
    Column("status_ts", DateTime(timezone=True)),
    Column("status", JSON),
    Column("epoch", Integer, nullable=False, default=1),  # the current epoch (its seq restarted epoch - 1 times)
    Column("max_seq", BigInteger, nullable=False, default=0),  # highest seq of the epoch, in an event or a status
    # Since when every heartbeat's unfamiliar_share has reached central's warning share (NULL: the latest did not)
    Column("unfamiliar_since", DateTime(timezone=True)),
)  # fmt: skip

gaps = Table(
    "gaps", metadata,
    Column("store", String(64), primary_key=True),
    Column("box", String(64), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("first_seq", BigInteger, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)  # fmt: skip

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),  # mqtt or http
    Column("topic", String(256)),
    Column("payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
)  # fmt: skip

transactions = Table(
    "pos_transactions", metadata,
    # Keyed per store: one store's POS cannot claim (or collide with) another store's transaction ids.
    Column("store", String(64), primary_key=True),
    Column("transaction_id", String(64), primary_key=True),
    Column("lane", String(64), nullable=False),
    Column("opened", DateTime(timezone=True), nullable=False),
    Column("closed", DateTime(timezone=True)),
    Column("paid", Float),
)  # fmt: skip

scans = Table(
    "pos_items", metadata,
    Column("store", String(64), primary_key=True),
    Column("message_id", String(64), primary_key=True),  # the POS's own id: a re-sent scan counts once
    Column("transaction_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Index("pos_items_by_transaction", "store", "transaction_id"),
)  # fmt: skip

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(256), primary_key=True),  # deterministic: store, transaction, SKU and unit
    Column("store", String(64), nullable=False),
    Column("lane", String(64), nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("unit", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("box", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    # unscanned: the box surely saw it taken; unsure: only events from unfamiliar footage counted it ("box unsure")
    Column("kind", String(16), nullable=False, server_default="unscanned"),
    # A manager's verdict (issue 29): confirmed or wrong (NULL: open), their note, their token id and when
    Column("verdict", String(16)),
    Column("verdict_note", Text),
    Column("verdict_by", String(16)),
    Column("verdict_at", DateTime(timezone=True)),
)  # fmt: skip

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_id", String(16), primary_key=True),  # public: names the token in lists and revocations
    Column("secret_sha256", String(64), nullable=False),  # the secret itself is shown once and never stored
    Column("store", String(64)),  # NULL: an admin (chain-wide) token
    Column("box", String(64)),  # set: a box's own token (uploads for that box, downloads addressed to it; nothing else)
    Column("name", String(128), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True)),
)  # fmt: skip


files = Table(
    "files", metadata,
    # A file a box uploaded (direction "up": clips, snapshots) or central addressed to it ("down": bundles, configs).
    Column("store", String(64), primary_key=True),
    Column("box", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("direction", String(4), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),  # relative to central's data directory
    Column("created", DateTime(timezone=True), nullable=False),
    Column("covers", JSON),  # the ids of the events an uploaded clip shows
    Column("analysis", String(16)),  # a box's clip: the analysis central made of it for the editor (issue 29)
)  # fmt: skip

controls = Table(
    "controls", metadata,
    # The latest control message of each name central addressed to a box (also retained at the broker).
    Column("store", String(64), primary_key=True),
    Column("box", String(64), primary_key=True),
    Column("name", String(16), primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("sent", DateTime(timezone=True), nullable=False),
)  # fmt: skip


review_clips = Table(
    "review_clips", metadata,
    # A clip a person reviews (issue 27): taken out of the web pages' work folder into the data directory when its
    # first correction is saved, kept until someone deletes it. Its id is the analysis's.
    Column("clip_id", String(16), primary_key=True),
    Column("store", String(64), nullable=False, index=True),
    Column("name", String(256), nullable=False),  # the video's name as uploaded or found in clips_dir
    Column("state", String(16), nullable=False),  # in_review or verified ("predicted": no row yet)
    Column("fps", Float, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC) it was recorded, or analysed: splits go by it
    Column("bundle", String(128), nullable=False),  # the id of the model bundle that predicted it
    Column("catalog", JSON, nullable=False),  # SKU -> name: what a pick may name
    Column("path", Text, nullable=False),  # its folder, relative to central's data directory
    Column("video", String(64), nullable=False),  # the original video's file name in that folder
    Column("video_sha256", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("verified", DateTime(timezone=True)),
    Column("verified_by", String(16)),  # the token id
    Column("verified_version", Integer),
)  # fmt: skip

label_versions = Table(
    "label_versions", metadata,
    # Every labels version of a reviewed clip, never overwritten: 0 is the box's prediction, then each save.
    Column("clip_id", String(16), ForeignKey("review_clips.clip_id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("labels", JSON, nullable=False),  # a ShelfWatch labels JSON (training.labels.LabelFile)
    Column("token_id", String(16)),  # who saved it (None: the prediction)
    Column("saved", DateTime(timezone=True), nullable=False),
    Column("based_on", Integer),
)  # fmt: skip


rollouts = Table(
    "rollouts", metadata,
    # A bundle or a config rolled out across boxes (central.rollout): canary first, then a rate that doubles.
    Column("rollout_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # bundle or config
    Column("target", String(128), nullable=False),  # the bundle id, or the config's digest
    Column("source", Text, nullable=False),  # the folder or file it was started from (for people)
    Column("file_name", String(128)),  # a bundle: the tar's name as boxes fetch it, kept once under blobs/<sha256>
    Column("file_sha256", String(64)),
    Column("config", JSON),  # a config: the mapping sent to each box (its store and box set per box)
    Column("params", JSON, nullable=False),  # central.rollout.Params
    Column("gate", JSON),  # the `eval compare` verdict it was started on, if any
    Column("state", String(16), nullable=False, index=True),  # running, aborting, aborted, done
    Column("reason", Text),  # why it stopped
    Column("credit", Float, nullable=False),  # boxes the rate allows now (sent one by one)
    Column("credit_at", DateTime(timezone=True)),  # when the credit was counted (NULL: canaries still out)
    Column("created", DateTime(timezone=True), nullable=False),
    Column("updated", DateTime(timezone=True), nullable=False),
)  # fmt: skip

rollout_boxes = Table(
    "rollout_boxes", metadata,
    Column("rollout_id", Integer, ForeignKey("rollouts.rollout_id", ondelete="CASCADE"), primary_key=True),
    Column("store", String(64), primary_key=True),
    Column("box", String(64), primary_key=True),
    Column("position", Integer, nullable=False),  # its turn (canaries are the first boxes sent)
    Column("canary", Boolean, nullable=False),
    Column("state", String(16), nullable=False),  # pending, sent, staged, running, failed, reverted, cancelled
    Column("sent_at", DateTime(timezone=True)),
    Column("done_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("previous", JSON),  # the box's `desired` message before this rollout's (what abort sets back)
    Column("previous_bundle", String(128)),  # the bundle it reported running when it was sent this one
)  # fmt: skip


def connect(url: str) -> Engine:
    """`sqlite:///path.db` (the default backend) or `postgresql://user@host/db`, upgraded to the current schema
    (`central.migrate`)."""
    from central import migrate  # its migrations import this module's tables

    engine = engine_for(url)
    try:
        migrate.upgrade(engine)
    except OperationalError as exc:
        raise ShelfWatchError(f"cannot open the database {url!r}: {_first_line(exc)}") from None
    return engine


def engine_for(url: str) -> Engine:
    """An engine for the URL, checked to be reachable and not older than migrations can upgrade."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
        existing = inspect(engine)
        if existing.has_table("events") and "epoch" not in {c["name"] for c in existing.get_columns("events")}:
            raise ShelfWatchError(f"{url}: the database was made by an older central (events without epochs), "
                                  "before its schema had migrations; start from a new database")  # fmt: skip
    except (ArgumentError, OperationalError, ModuleNotFoundError) as exc:
        raise ShelfWatchError(f"cannot open the database {url!r}: {_first_line(exc)}") from None
    return engine


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200]


def insert_ignore(conn: Connection, table: Table, rows: dict | list[dict]) -> int:
    """Insert, skipping rows whose key exists: the idempotent write both backends support."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    # RETURNING tells what was inserted on both backends (psycopg reports no rowcount for ON CONFLICT).
    stmt = dialect.insert(table).values(rows).on_conflict_do_nothing().returning(key)
    return len(conn.execute(stmt).all())


def now() -> datetime:
    return datetime.now(timezone.utc)


def store_events(conn: Connection, batch: list[Any]) -> list[bool]:
    """Sequenced events (not statuses), several boxes mixed: per box one lock, one lookup of the ids already
    stored, one multi-row insert, one gap rewrite per epoch touched. Returns, for each event, whether it was
    new (False: stored before, a duplicate)."""
    result: dict[int, bool] = {}
    by_box: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(batch):
        by_box.setdefault((e.store, e.box), []).append(i)
    for (store, box), indices in sorted(by_box.items()):
        epoch, top = _lock_box(conn, store, box)
        ids = list({batch[i].event_id for i in indices})
        known = {r[0] for r in conn.execute(select(events.c.event_id).where(events.c.event_id.in_(ids)))}
        open_now = open_gaps(conn, store, box, epoch)
        changed: dict[int, list[tuple[int, int]]] = {}  # epoch -> its open gaps, where they changed
        rows = []
        for i in indices:
            e = batch[i]
            result[i] = e.event_id not in known
            if not result[i]:
                continue
            known.add(e.event_id)  # the same event twice in one batch is new once
            if e.seq > top:
                if e.seq > top + 1:
                    open_now.append((top + 1, e.seq - 1))
                top = e.seq
            elif not _fill_in(open_now, e.seq):  # a seq this epoch already used: the box started again
                epoch, top = epoch + 1, e.seq
                open_now = [(1, e.seq - 1)] if e.seq > 1 else []
            changed[epoch] = open_now
            rows.append(_row(e, epoch))
        if rows:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(events).values(rows).on_conflict_do_nothing())
        for ep, open_list in changed.items():
            conn.execute(delete(gaps).where(gaps.c.store == store, gaps.c.box == box, gaps.c.epoch == ep))
            if open_list:
                conn.execute(gaps.insert(), [{"store": store, "box": box, "epoch": ep, "first_seq": a, "last_seq": b}
                                             for a, b in sorted(open_list)])  # fmt: skip
        _set_top(conn, store, box, epoch, top)
    return [result[i] for i in range(len(batch))]


def _row(event: Any, epoch: int) -> dict:
    return {
        "event_id": event.event_id, "store": event.store, "box": event.box, "epoch": epoch, "seq": event.seq,
        "kind": event.kind,
        "ts": event.ts, "sku": getattr(event, "sku", None), "quantity": getattr(event, "quantity", None),
        "shopper": getattr(event, "shopper", None), "confidence": getattr(event, "confidence", None),
        "familiar": getattr(event, "familiar", None),
        "payload": json.loads(event.model_dump_json(exclude_none=True)),
    }  # fmt: skip


def _fill_in(open_now: list[tuple[int, int]], seq: int) -> bool:
    """A late event: shrink, split or close the gap it falls in (in place); False if it falls in none."""
    for k, (first, last) in enumerate(open_now):
        if first <= seq <= last:
            del open_now[k]
            if first < seq:
                open_now.append((first, seq - 1))
            if seq < last:
                open_now.append((seq + 1, last))
            return True
    return False


def store_status(conn: Connection, status: Any, unfamiliar_share: float = 0.2) -> None:
    """A heartbeat or last will: online/offline, the box's highest issued seq (a missing tail is a gap), and since when
    its heartbeats' unfamiliar_share has stayed at or above `unfamiliar_share` (a heartbeat without one, or below,
    ends the stretch; a last will says nothing about it)."""
    epoch, top = _lock_box(conn, status.store, status.box)
    if status.seq > top:
        _open_gap(conn, status.store, status.box, epoch, top + 1, status.seq)
        _set_top(conn, status.store, status.box, epoch, status.seq)
    # The broker's last will (offline) was written when the box connected, so its ts is old: it counts from
    # when it arrives. Other statuses count from their own ts; an older one arriving late changes nothing.
    ts = now() if status.state == "offline" else status.ts
    current, since = conn.execute(select(boxes.c.status_ts, boxes.c.unfamiliar_since).where(
        boxes.c.store == status.store, boxes.c.box == status.box)).one()  # fmt: skip
    if current is not None and as_utc(current) > ts:
        return
    if status.state != "offline":
        share = getattr(status, "unfamiliar_share", None)
        high = share is not None and share >= unfamiliar_share
        since = (since or ts) if high else None
    conn.execute(update(boxes).where(boxes.c.store == status.store, boxes.c.box == status.box).values(
        online=status.state == "running", state=status.state, status_ts=ts, unfamiliar_since=since,
        status=json.loads(status.model_dump_json(exclude_none=True))))  # fmt: skip


def _lock_box(conn: Connection, store: str, box: str) -> tuple[int, int]:
    """The box's row, locked for this transaction (two consumers may hold events of one box): its current
    epoch and that epoch's highest seq."""
    insert_ignore(conn, boxes, {"store": store, "box": box, "online": False, "epoch": 1, "max_seq": 0})
    query = select(boxes.c.epoch, boxes.c.max_seq).where(boxes.c.store == store, boxes.c.box == box)
    epoch, top = conn.execute(query.with_for_update()).one()
    return epoch, top or 0


def _set_top(conn: Connection, store: str, box: str, epoch: int, seq: int) -> None:
    conn.execute(update(boxes).where(boxes.c.store == store, boxes.c.box == box).values(epoch=epoch, max_seq=seq))


def _open_gap(conn: Connection, store: str, box: str, epoch: int, first: int, last: int) -> None:
    if last >= first:
        conn.execute(gaps.insert().values(store=store, box=box, epoch=epoch, first_seq=first, last_seq=last))


def open_gaps(conn: Connection, store: str, box: str, epoch: int | None = None) -> list[tuple[int, int]]:
    """The open gaps of one epoch of a box (default: its current one), as (first, last) seq."""
    if epoch is None:
        epoch = conn.execute(select(boxes.c.epoch).where(boxes.c.store == store, boxes.c.box == box)).scalar() or 1
    rows = conn.execute(select(gaps.c.first_seq, gaps.c.last_seq).where(
        gaps.c.store == store, gaps.c.box == box, gaps.c.epoch == epoch).order_by(gaps.c.first_seq))  # fmt: skip
    return [(a, b) for a, b in rows]


def all_gaps(conn: Connection, store: str, box: str) -> list[dict]:
    """Every open gap of a box, of every epoch: what /boxes shows."""
    rows = conn.execute(select(gaps.c.epoch, gaps.c.first_seq, gaps.c.last_seq).where(
        gaps.c.store == store, gaps.c.box == box).order_by(gaps.c.epoch, gaps.c.first_seq))  # fmt: skip
    return [{"epoch": e, "first": a, "last": b} for e, a, b in rows]


DEAD_PAYLOAD_CHARS = 10_000  # what a dead letter keeps of a payload: enough to read what was wrong
DEAD_REASON_CHARS = 2_000


def dead_letter(conn: Connection, source: str, topic: str | None, payload: bytes | str, reason: str) -> None:
    """Keep a message that cannot be stored, whatever it holds: text cut to what each column takes (a
    300-character topic once stopped central on PostgreSQL), NUL replaced (PostgreSQL's text refuses it)."""
    conn.execute(dead_letters.insert().values(
        received=now(), source=fit(dead_letters.c.source, source), topic=fit(dead_letters.c.topic, topic),
        payload=fit(dead_letters.c.payload, payload, DEAD_PAYLOAD_CHARS),
        reason=fit(dead_letters.c.reason, reason, DEAD_REASON_CHARS)))  # fmt: skip


def fit(column: Column, value: bytes | str | None, limit: int | None = None) -> str | None:
    """`value` as text the column takes: decoded (invalid UTF-8 replaced), without NUL, at most the column's
    length (or `limit`, the smaller), cut with a trailing "…" so a reader sees it was cut."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.replace("\x00", "\ufffd")
    limits = [n for n in (getattr(column.type, "length", None), limit) if n]
    if not limits or len(text) <= min(limits):
        return text
    return text[: min(limits) - 1] + "…"


def box_rows(conn: Connection) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(select(boxes).order_by(boxes.c.store, boxes.c.box))]


def count(conn: Connection, table: Table) -> int:
    return conn.execute(select(func.count()).select_from(table)).scalar() or 0


def snapshot(conn: Connection, tables: Iterable[Table] = (events, boxes, gaps, alerts)) -> dict[str, list]:
    """The logical state, for comparisons (timestamps of receipt left out)."""
    out = {}
    for table in tables:
        cols = [c for c in table.c if c.name not in ("received", "created")]
        rows = conn.execute(select(*cols).order_by(*table.primary_key.columns))
        out[table.name] = [tuple(_plain(v) for v in r) for r in rows]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value
