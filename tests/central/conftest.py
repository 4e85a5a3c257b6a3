"""Central's tests run against both backends: SQLite (a file per test) and the machine's PostgreSQL (a fresh
database per test)."""

import os
import uuid

import pytest

from central.db import connect
from central.service import Central

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'central.db'}"
        return
    import psycopg

    name = f"shelfwatch_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN.replace("postgresql://", "postgresql://", 1), autocommit=True)
    except psycopg.OperationalError as exc:
        # Half of central's tests run on PostgreSQL: without it they must not pass quietly. Skipping them is an
        # explicit choice (and in CI a skip is a failure anyway).
        reason = f"PostgreSQL is not reachable at 127.0.0.1:5432 ({str(exc).strip().splitlines()[0]})"
        if os.environ.get("SHELFWATCH_TESTS_WITHOUT_POSTGRES") == "1":
            pytest.skip(reason)
        pytest.fail(f"{reason}: start it (pg_ctlcluster 15 main start) or set SHELFWATCH_TESTS_WITHOUT_POSTGRES=1 "
                    "to skip central's PostgreSQL half")  # fmt: skip
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def central(db_url):
    c = Central(connect(db_url))
    yield c
    c.engine.dispose()


def api(central: Central, store: str | None = "s1"):
    """A test client of central's HTTP API holding a token for `store` (None: an admin token)."""
    from fastapi.testclient import TestClient

    from central import auth
    from central.api import create_app

    client = TestClient(create_app(central))
    client.headers["Authorization"] = f"Bearer {auth.create(central.engine, store, 'tests')[1]}"
    return client
