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
import time
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
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

from edge.errors import ShelfWatchError

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
)  # fmt: skip

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_id", String(16), primary_key=True),  # public: names the token in lists and revocations
    Column("secret_sha256", String(64), nullable=False),  # the secret itself is shown once and never stored
    Column("store", String(64)),  # NULL: an admin (chain-wide) token
    Column("name", String(128), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True)),
)  # fmt: skip


def connect(url: str) -> Engine:
    """`sqlite:///path.db` (the default backend) or `postgresql://user@host/db`."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
        existing = inspect(engine)
        if existing.has_table("events") and "epoch" not in {c["name"] for c in existing.get_columns("events")}:
            raise ShelfWatchError(f"{url}: the database was made by an older central (events without epochs); "
                                  "start from a new database")  # fmt: skip
        _create_tables(engine)
    except (ArgumentError, OperationalError, ModuleNotFoundError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ShelfWatchError(f"cannot open the database {url!r}: {first}") from None
    return engine


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Create what is missing. Consumers of a group may start together on a new database: when another one
    creates a table between our check and our CREATE, look again."""
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if ("already exists" not in str(exc) and "duplicate key" not in str(exc)) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


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


def store_status(conn: Connection, status: Any) -> None:
    """A heartbeat or last will: online/offline, and the box's highest issued seq (a missing tail is a gap)."""
    epoch, top = _lock_box(conn, status.store, status.box)
    if status.seq > top:
        _open_gap(conn, status.store, status.box, epoch, top + 1, status.seq)
        _set_top(conn, status.store, status.box, epoch, status.seq)
    # The broker's last will (offline) was written when the box connected, so its ts is old: it counts from
    # when it arrives. Other statuses count from their own ts; an older one arriving late changes nothing.
    ts = now() if status.state == "offline" else status.ts
    current = conn.execute(select(boxes.c.status_ts).where(boxes.c.store == status.store,
                                                            boxes.c.box == status.box)).scalar()  # fmt: skip
    if current is not None and _aware(current) > ts:
        return
    conn.execute(update(boxes).where(boxes.c.store == status.store, boxes.c.box == status.box).values(
        online=status.state == "running", state=status.state, status_ts=ts,
        status=json.loads(status.model_dump_json(exclude_none=True))))  # fmt: skip


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)  # SQLite hands back naive datetimes


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


def dead_letter(conn: Connection, source: str, topic: str | None, payload: bytes | str, reason: str) -> None:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    text = text.replace("\x00", "\ufffd")  # PostgreSQL's text refuses NUL; the dead letter must still be kept
    conn.execute(dead_letters.insert().values(received=now(), source=source, topic=topic, payload=text[:10000],
                                              reason=reason[:2000]))  # fmt: skip


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
        return _aware(value).isoformat()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value
