"""Central's database is upgraded, never replaced: a database made before migrations existed (by commit 4748cef,
kept in tests/central/fixtures as a SQLite file and a pg_dump) is upgraded by `shelfwatch central migrate` with
every row kept, and the newest migration gives exactly the tables the code declares."""

import shutil
import subprocess
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from central import db, insights, migrate
from central.service import Central
from tests.central.events import box_events
from tests.conftest import shelfwatch_command

FIXTURES = Path(__file__).parent / "fixtures"
ROWS = {"events": 80, "boxes": 5, "gaps": 2, "alerts": 3, "dead_letters": 1, "api_tokens": 1, "pos_transactions": 1,
        "pos_items": 1, "insight_visits": 4}  # what the fixture's script stored (counted when it was made)  # fmt: skip


def restore_before_migrations(db_url: str, tmp_path: Path) -> str:
    """The database as central made it before migrations: the SQLite file, or the dump loaded into the fresh
    PostgreSQL database of the test."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "central.db"
        shutil.copy(FIXTURES / "before_migrations.sqlite", path)
        return f"sqlite:///{path}"
    name = db_url.rsplit("/", 1)[1]
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", name, "-f",
                    str(FIXTURES / "before_migrations.pg.sql")], check=True, capture_output=True)  # fmt: skip
    return db_url


def raw_rows(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every table (of the given columns: later migrations add some), read with plain SQL (no model of
    ours in between), sorted."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        names = columns or {t: [c["name"] for c in inspect(conn).get_columns(t)]
                            for t in inspect(conn).get_table_names() if t != "alembic_version"}  # fmt: skip
        out = {}
        for table, cols in names.items():
            quoted = ", ".join(f'"{c}"' for c in cols)
            out[table] = sorted(map(tuple, conn.execute(text(f'SELECT {quoted} FROM "{table}"'))), key=repr)
    engine.dispose()
    return out


def column_names(url: str) -> dict[str, list[str]]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        out = {t: [c["name"] for c in inspect(conn).get_columns(t)] for t in inspect(conn).get_table_names()}
    engine.dispose()
    return out


def test_a_database_made_before_migrations_is_upgraded_with_every_row_kept(db_url, tmp_path, shelfwatch):
    url = restore_before_migrations(db_url, tmp_path)
    columns = column_names(url)
    before = raw_rows(url, columns)
    assert {t: len(before[t]) for t in ROWS} == ROWS
    upgraded = shelfwatch("central", "migrate", "--db", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"central: upgraded the database from before migrations to {migrate.head()}"
    assert raw_rows(url, columns) == before  # nothing lost, nothing changed
    again = shelfwatch("central", "migrate", "--db", url)
    assert again.stdout.strip() == f"central: the database is at the current schema ({migrate.head()})"
    # And central goes on where the old one stopped. Box s1/a sent seq 1-40 (18 missing), then two visit events
    # of seq 1 and 2 (the fixture's, a box restarted): epoch 2 at seq 2. Its seq 41 follows on in epoch 2.
    central = Central(db.connect(url))
    (next_event,) = box_events("s1", "a", 1, start_seq=41)
    assert central.event(*next_event) == "stored"
    with central.engine.connect() as conn:
        assert db.count(conn, db.events) == ROWS["events"] + 1
        box = conn.execute(db.boxes.select().where(db.boxes.c.store == "s1", db.boxes.c.box == "a")).one()
        assert (box.epoch, box.max_seq) == (2, 41)
        assert db.open_gaps(conn, "s1", "a") == [(3, 40)]
    central.engine.dispose()


def test_the_newest_migration_gives_the_tables_the_code_declares(db_url):
    """A schema change without its migration fails here (Alembic compares the database with the models)."""
    engine = db.connect(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, [db.metadata, insights.metadata]) == []
        assert context.get_current_revision() == migrate.head()
    engine.dispose()


def test_centrals_starting_together_on_a_new_database_migrate_it_once(db_url):
    """Consumers of a group may start at the same moment on a database nobody has made yet."""
    commands = [shelfwatch_command("central", "migrate", "--db", db_url) for _ in range(4)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    assert [rc for rc, _, _ in results] == [0] * 4, [err for _, _, err in results]
    said = sorted(out.strip() for _, out, _ in results)
    head = migrate.head()
    assert said == sorted([f"central: made the schema ({head}) in an empty database"] +
                          [f"central: the database is at the current schema ({head})"] * 3)  # fmt: skip
    engine = db.engine_for(db_url)
    assert migrate.current(engine) == head
    engine.dispose()
