"""Central's database is upgraded, never replaced: every schema change since the baseline is an Alembic migration
(central/migrations/versions), applied in order by `upgrade` — which `central.db.connect` runs, so `central run`
and every other command bring a database to the current schema at start (`shelfwatch central migrate` does it
alone and says what it did).

A database made before migrations existed has today's baseline tables and no `alembic_version`: it is stamped
with the baseline, then upgraded. Several consumers may start together on one database: on PostgreSQL an
advisory lock lets one migrate while the others wait (DDL is transactional there); on SQLite, whose DDL is not,
a lock file beside the database makes them take turns."""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

BASELINE = "0001"
LOCK_KEY = 0x5345_4C46  # pg_advisory_xact_lock's key for "a central is migrating this database"
_IN_PROCESS = threading.Lock()  # Alembic's `context` is one per process: one migration at a time in it


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or BASELINE


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, attempts: int = 5) -> tuple[str, str]:
    """Bring the database to the newest schema: (what it was: a revision, "empty" or "before migrations"; the
    revision now)."""
    for attempt in range(attempts):
        try:
            return _upgrade(engine)
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))  # another central was migrating the same database
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """SQLite's DDL is not transactional: two centrals migrating one file would both see it unstamped. An
    exclusive lock on a file beside it makes them take turns (PostgreSQL uses its advisory lock instead)."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _upgrade(engine: Engine) -> tuple[str, str]:
    config = _config()
    with _IN_PROCESS, _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        was = before or ("before migrations" if inspect(conn).has_table("events") else "empty")
        if was == "before migrations":  # made before migrations existed: today's baseline tables
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        return was, MigrationContext.configure(conn).get_current_revision() or BASELINE
