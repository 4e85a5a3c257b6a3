"""The durable outbox: every event is committed to SQLite (WAL) before anyone tries to publish it, and
removed only when the broker has acknowledged it. `seq` comes from here, so it survives restarts.

Bounded by count and age: when full, the oldest events are dropped first and counted (the count is
persisted and reported in the status heartbeat). One connection per thread: the agent's loop writes,
the publisher thread reads and deletes; SQLite's WAL lets them work side by side.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ShelfWatchError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('last_seq', 0), ('dropped', 0);
"""


@dataclass(frozen=True)
class Stored:
    seq: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    def __init__(self, path: Path, max_events: int = 100_000, max_age_s: float = 7 * 24 * 3600) -> None:
        self.path, self.max_events, self.max_age_s = path, max_events, max_age_s
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db().executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ShelfWatchError(f"{path}: cannot open the outbox ({exc})") from None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an accepted event survives a power cut, not only a kill
            self._local.db = db
        return db

    def add(self, topic: str, make_payload: Callable[[int, str], bytes]) -> Stored:
        """Store one event: `make_payload(seq, event_id)` builds it with the seq and id it is given."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            seq = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0] + 1
            event_id = str(uuid.uuid4())
            payload = make_payload(seq, event_id)
            db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (seq,))
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (seq, event_id, topic, payload, time.time()))
            self._enforce_bounds(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return Stored(seq, event_id, topic, payload)

    def _enforce_bounds(self, db: sqlite3.Connection) -> None:
        cutoff = time.time() - self.max_age_s
        old = db.execute("DELETE FROM events WHERE created < ?", (cutoff,)).rowcount
        excess = db.execute("SELECT COUNT(*) FROM events").fetchone()[0] - self.max_events
        if excess > 0:
            db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (excess,))
        dropped = old + max(0, excess)
        if dropped:
            db.execute("UPDATE meta SET value = value + ? WHERE key='dropped'", (dropped,))

    def pending(self, after: int = 0, limit: int = 100) -> list[Stored]:
        """Events not yet acknowledged, in seq order, starting after `after`."""
        rows = self._db().execute(
            "SELECT seq, event_id, topic, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [Stored(*row) for row in rows]

    def acknowledge(self, seq: int) -> None:
        self._db().execute("DELETE FROM events WHERE seq = ?", (seq,))

    def depth(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def last_seq(self) -> int:
        return self._db().execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]

    def dropped(self) -> int:
        return self._db().execute("SELECT value FROM meta WHERE key='dropped'").fetchone()[0]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
