"""Shopper insights at chain scale: load synthetic events into the machine's PostgreSQL (10 million by default: a
chain of 10 stores x 8 boxes over 60 days, about 12 events a visit), then time each /insights endpoint through
the HTTP app for one store over 30 days (and the whole chain), median of several runs. For comparison, the same
traffic and funnel as plain queries over the events table (the visit events' JSON), with and without an index
made for them.

    python bench/insights_speed.py                      # load 10 M events (once; reused while the count matches)
    python bench/insights_speed.py --events 200000 --reload
    python bench/insights_speed.py --database shelfwatch_bench_smoke --events 20000 --stores 2 --boxes 2 --days 31 \
        --runs 1 --ingest-visits 30      # the smoke test's size (tests/bench/test_bench_smoke.py)

The load goes through COPY with the events table's indexes dropped and rebuilt after (what a bulk import would
do); the insight rollup rows are made by `central.insights.rows_for`, exactly what central's writer stores for
each visit event as it arrives. The ingest price of the rollups is measured separately: events stored through
`Central.events` in batches, with the rollups and without.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = "postgresql://postgres@127.0.0.1:5432"
ADMIN = f"{SERVER}/postgres"
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
EVENT_COLUMNS = ("event_id", "store", "box", "epoch", "seq", "kind", "ts", "sku", "quantity", "shopper", "confidence",
                 "payload")  # fmt: skip
EPOCH = 1  # every synthetic box keeps its outbox: its seq never restarts
KIND, PAYLOAD = EVENT_COLUMNS.index("kind"), EVENT_COLUMNS.index("payload")


def ensure_database(name: str) -> str:
    import psycopg

    with psycopg.connect(ADMIN, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    return f"{SERVER}/{name}"


class Chain:
    """A chain's synthetic shoppers: every visit as the events a box would send (actions with zone and product,
    picks, put-backs, baskets, the visit)."""

    EVENTS_PER_VISIT = 11.3  # what `visit` makes, on average

    def __init__(self, stores: int, boxes: int, days: int, seed: int = 14, events: int = 10_000_000) -> None:
        self.rng = random.Random(seed)
        # Visits a box a day, on average; a fraction at small sizes, so that every day of the range has visits.
        self.per_day = events / (stores * boxes * days * self.EVENTS_PER_VISIT)
        self.stores = [f"s{i:02d}" for i in range(1, stores + 1)]
        self.boxes = [f"box{j}" for j in range(1, boxes + 1)]
        self.days = days
        self.seq: dict[tuple[str, str], int] = {}
        # Each box watches two zones of six SKUs each; each SKU has its own appeal (how often it is kept).
        self.skus = {(b, z): [f"sku{(j * 2 + z) * 6 + k:03d}" for k in range(6)] for j, b in enumerate(self.boxes)
                     for z in range(2)}  # fmt: skip
        self.appeal = {sku: self.rng.uniform(0.1, 0.9) for skus in self.skus.values() for sku in skus}

    def visits(self) -> Iterator[tuple[str, str, datetime]]:
        """(store, box, start) of every visit, day by day, in shop hours; endless (the caller stops)."""
        day = END - timedelta(days=self.days)
        while True:
            for store in self.stores:
                for box in self.boxes:
                    mean = self.rng.uniform(0.7, 1.3) * self.per_day
                    for _ in range(int(mean) + (self.rng.random() < mean - int(mean))):
                        yield store, box, day + timedelta(hours=8, seconds=self.rng.uniform(0, 14 * 3600))
            day += timedelta(days=1)
            if day >= END:
                day = END - timedelta(days=self.days)

    def visit(self, store: str, box: str, start: datetime) -> tuple[list[tuple], object]:
        """One visit's event rows (for COPY) and its VisitEvent."""
        from edge.events import VisitEvent, VisitProduct

        rng = self.rng
        zone_index = rng.randrange(2)
        zone = f"{box}-z{zone_index + 1}"
        shopper = rng.randrange(1, 10**6)
        rows: list[tuple] = []
        t = start
        shelf_s = 0.0
        products = []

        def emit(kind: str, ts: datetime, body: str, sku: str | None = None, quantity: int | None = None,
                 confidence: float = 0.9) -> None:  # fmt: skip
            seq = self.seq[(store, box)] = self.seq.get((store, box), 0) + 1
            eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            iso = ts.isoformat().replace("+00:00", "Z")
            payload = (f'{{"v":1,"event_id":"{eid}","seq":{seq},"ts":"{iso}","store":"{store}","box":"{box}",'
                       f'"kind":"{kind}",{body}}}')  # fmt: skip
            rows.append((eid, store, box, EPOCH, seq, kind, iso, sku, quantity, shopper, confidence, payload))

        def action(name: str, seconds: float, sku: str | None = None) -> None:
            nonlocal t
            begin, t = t, t + timedelta(seconds=seconds)
            product = f',"sku":"{sku}","sku_confidence":0.8' if sku else ""
            frames, first, last = int(seconds * 30), begin.isoformat(), t.isoformat()
            emit("action", t, f'"action":"{name}","start":0,"end":{frames},"start_ts":"{first}","end_ts":"{last}",'
                 f'"confidence":0.9,"shopper":{shopper},"zone":"{zone}"{product}', sku)  # fmt: skip

        if rng.random() < 0.8:
            seconds = rng.uniform(2, 25)
            shelf_s += seconds
            action("inspect_shelf", seconds)
        for sku in rng.sample(self.skus[(box, zone_index)], rng.choice((1, 1, 1, 2, 2, 3))):
            action("reach_to_shelf", rng.uniform(0.3, 1))
            action("hand_in_shelf", rng.uniform(0.5, 2), sku)
            taken = rng.random() < 0.75
            inspect_s = 0.0
            if taken:
                action("retract_from_shelf", rng.uniform(0.3, 1), sku)
                if rng.random() < 0.6:
                    inspect_s = rng.uniform(1, 15)
                    action("inspect_product", inspect_s, sku)
            kept = taken and rng.random() < self.appeal[sku]
            put_back = taken and not kept
            if taken:
                emit("pick", t, f'"sku":"{sku}","quantity":1,"shopper":{shopper},"frame":0,"confidence":0.9,'
                     f'"zone":"{zone}"', sku, 1)  # fmt: skip
                emit("basket", t, f'"shopper":{shopper},"items":{{"{sku}":1}},"reason":"change","confidence":0.9')
            if put_back:
                t += timedelta(seconds=rng.uniform(1, 5))
                emit("putback", t, f'"sku":"{sku}","quantity":1,"shopper":{shopper},"frame":0,"confidence":0.9,'
                     f'"zone":"{zone}"', sku, 1)  # fmt: skip
            outcome = "kept" if kept else "put_back" if put_back else "looked"
            products.append(VisitProduct(sku=sku, zone=zone, reached=1, inspected=int(inspect_s > 0),
                                         inspect_s=round(inspect_s, 2), picked=int(taken), put_back=int(put_back),
                                         outcome=outcome))  # fmt: skip
        end = t
        emit("basket", end, f'"shopper":{shopper},"items":{{}},"reason":"left","confidence":1.0')
        seq = self.seq[(store, box)] = self.seq[(store, box)] + 1
        visit = VisitEvent(event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), seq=seq, ts=end, store=store,
                           box=box, shopper=shopper, start_ts=start, end_ts=end,
                           dwell_s=round((end - start).total_seconds(), 2), zones=[zone],
                           inspect_shelf_s=round(shelf_s, 2), actions=len(rows), products=products)  # fmt: skip
        rows.append((visit.event_id, store, box, EPOCH, seq, "visit", end.isoformat(), None, None, shopper, None,
                     visit.model_dump_json(exclude_none=True)))  # fmt: skip
        return rows, visit


def _line(values: tuple) -> str:
    return "\t".join("\\N" if v is None else str(v) for v in values) + "\n"


def load(url: str, target: int, stores: int, boxes: int, days: int) -> tuple[int, float, float]:
    """COPY `target` events and their rollups; returns (events, seconds to load, seconds to index)."""
    import psycopg
    from sqlalchemy import text

    from central import db, insights

    engine = db.connect(url)  # migrated: the rollup tables are there
    tables = (db.events, *insights.TABLES)
    with engine.begin() as conn:
        for table in tables:
            conn.execute(text(f"TRUNCATE {table.name}"))
            for index in table.indexes:
                conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
        for table in tables:
            conn.execute(text(f"ALTER TABLE {table.name} DROP CONSTRAINT IF EXISTS {table.name}_pkey"))
    chain = Chain(stores, boxes, days, events=target)
    raw = url.replace("postgresql://", "postgresql://", 1)
    n = 0
    started = time.perf_counter()
    roll_columns = {t: [c.name for c in t.columns] for t in insights.TABLES}
    with psycopg.connect(raw) as pg:
        pg.execute("SET synchronous_commit = off")
        buffers = {t: io.StringIO() for t in tables}
        last_report = started

        def flush() -> None:
            for table, buf in buffers.items():
                if buf.tell():
                    cols = EVENT_COLUMNS if table is db.events else roll_columns[table]
                    with pg.cursor().copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                        copy.write(buf.getvalue())
                    buf.seek(0)
                    buf.truncate()
            pg.commit()

        for store, box, start in chain.visits():
            rows, visit = chain.visit(store, box, start)
            out = buffers[db.events]
            for r in rows:
                out.write(_line(r))
            for table, rolled in insights.rows_for(visit).items():
                cols = roll_columns[table]
                for r in rolled:
                    buffers[table].write(_line(tuple(r[c].isoformat() if isinstance(r[c], datetime) else r[c]
                                                     for c in cols)))  # fmt: skip
            n += len(rows)
            if out.tell() > 64 * 2**20:
                flush()
                now = time.perf_counter()
                if now - last_report > 30:
                    print(f"  {n:,} events loaded, {n / (now - started):,.0f}/s", flush=True)
                    last_report = now
            if n >= target:
                break
        flush()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '1GB'"))
        conn.execute(text("ALTER TABLE events ADD PRIMARY KEY (event_id)"))
        for table in insights.TABLES:
            keys = ", ".join(c.name for c in table.primary_key.columns)
            conn.execute(text(f"ALTER TABLE {table.name} ADD PRIMARY KEY ({keys})"))
        for table in tables:
            for index in table.indexes:
                index.create(conn)
        for table in tables:
            conn.execute(text(f"ANALYZE {table.name}"))
    indexed = time.perf_counter() - started
    engine.dispose()
    return n, loaded, indexed


def timed(call, runs: int) -> float:
    call()  # warm the cache: a dashboard asks again and again
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def endpoints(url: str, runs: int) -> list[tuple[str, float, int]]:
    from fastapi.testclient import TestClient

    from central import auth
    from central.api import create_app
    from central.db import connect
    from central.service import Central

    central = Central(connect(url))
    client = TestClient(create_app(central))
    token_id, token = auth.create(central.engine, None, "bench/insights_speed.py")  # chain-wide, as a dashboard's
    client.headers["Authorization"] = f"Bearer {token}"
    month = {"start": (END - timedelta(days=30)).isoformat(), "end": END.isoformat()}
    cases = [
        ("traffic", "daily", {"store": "s01", "bucket": "day"}),
        ("traffic", "per box, daily", {"store": "s01", "bucket": "day", "by": ["store", "box"]}),
        ("traffic", "per zone, hourly", {"store": "s01", "bucket": "hour", "by": "zone"}),
        ("funnel", "per SKU", {"store": "s01"}),
        ("funnel", "per SKU and box, daily", {"store": "s01", "bucket": "day", "by": "box"}),
        ("funnel", "per SKU, CSV", {"store": "s01", "format": "csv"}),
        ("attention", "per zone", {"store": "s01"}),
        ("attention", "per zone, daily", {"store": "s01", "bucket": "day"}),
        ("traffic", "chain: per store, daily", {"bucket": "day"}),
        ("funnel", "chain: per SKU", {}),
        ("attention", "chain: per zone", {}),
    ]
    out = []
    for what, name, params in cases:
        path = f"/insights/{what}"
        answer = client.get(path, params={**params, **month})
        assert answer.status_code == 200, answer.text
        rows = len(answer.json()) if params.get("format") != "csv" else answer.text.count("\n") - 1
        out.append((f"{path}: {name}", timed(lambda p=path, q=params: client.get(p, params={**q, **month}), runs),
                    rows))  # fmt: skip
    auth.revoke(central.engine, token_id)
    central.engine.dispose()
    return out


PLAIN_TRAFFIC = """
SELECT date_trunc('day', ts) AS day, count(*),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY (payload->>'dwell_s')::float),
       percentile_disc(0.9) WITHIN GROUP (ORDER BY (payload->>'dwell_s')::float)
FROM events WHERE store = 's01' AND kind = 'visit' AND ts >= :start AND ts < :end GROUP BY 1"""
PLAIN_FUNNEL = """
SELECT p->>'sku' AS sku, sum(((p->>'reached')::int > 0)::int), sum(((p->>'inspected')::int > 0)::int),
       sum(((p->>'picked')::int > 0)::int), sum((p->>'outcome' = 'kept')::int),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY (p->>'inspect_s')::float)
FROM events, json_array_elements(payload->'products') AS p
WHERE store = 's01' AND kind = 'visit' AND ts >= :start AND ts < :end GROUP BY 1"""


def plain(url: str, runs: int) -> list[tuple[str, float, int]]:
    """The same numbers straight from the events table, with the indexes it has; then with one made for them."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    month = {"start": END - timedelta(days=30), "end": END}
    out = []
    with engine.connect() as conn:
        for label in ("events' own indexes", "+ index (store, kind, ts)"):
            if label.startswith("+"):
                conn.execute(text("CREATE INDEX IF NOT EXISTS bench_store_kind_ts ON events (store, kind, ts)"))
                conn.execute(text("ANALYZE events"))
            for name, sql in (("traffic, daily", PLAIN_TRAFFIC), ("funnel per SKU", PLAIN_FUNNEL)):
                rows = len(conn.execute(text(sql), month).all())
                ms = timed(lambda s=sql: conn.execute(text(s), month).all(), runs)
                out.append((f"plain SQL on events ({label}): {name}", ms, rows))
        conn.execute(text("DROP INDEX IF EXISTS bench_store_kind_ts"))
        conn.commit()
    engine.dispose()
    return out


def ingest_price(url: str, visits: int = 300, rounds: int = 3) -> tuple[float, float, int, int]:
    """Events a second through Central.events (batches of 500), with the insight rollups and without, alternating
    (the machine is shared: medians of `rounds` each); then the events sent and those stored as new, which must be
    equal: a dead letter or a duplicate would make the rate a rate of something else."""
    from sqlalchemy import text

    from central import insights
    from central.db import connect
    from central.service import Central
    from edge.events import topic

    central = Central(connect(url))
    real = insights.record
    rates: dict[bool, list[float]] = {True: [], False: []}
    sent = stored = 0

    def forget(store: str) -> None:
        with central.engine.begin() as conn:
            for table in ("events", *(t.name for t in insights.TABLES), "boxes", "gaps"):
                conn.execute(text(f"DELETE FROM {table} WHERE store = :store"), {"store": store})

    for n in range(2 * rounds):
        with_rollups = n % 2 == 1
        chain = Chain(1, 2, 1, seed=100 + n, events=visits * 12)
        chain.stores = [f"ingest-bench-{n}"]
        messages = []
        for store, box, start in chain.visits():
            rows, _ = chain.visit(store, box, start)
            messages += [(topic(store, box, r[KIND]), r[PAYLOAD].encode()) for r in rows]
            if len(messages) >= visits * 11:
                break
        forget(chain.stores[0])  # left by a run that stopped half-way: its events would come back as duplicates
        insights.record = real if with_rollups else (lambda conn, events: 0)  # type: ignore[assignment]
        outcomes: list[str] = []
        started = time.perf_counter()
        for i in range(0, len(messages), 500):
            outcomes += central.events(messages[i : i + 500])
        rates[with_rollups].append(len(messages) / (time.perf_counter() - started))
        insights.record = real  # type: ignore[assignment]
        sent, stored = sent + len(messages), stored + outcomes.count("stored")
        forget(chain.stores[0])
    central.engine.dispose()
    return statistics.median(rates[True]), statistics.median(rates[False]), sent, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--boxes", type=int, default=8)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reload", action="store_true", help="load afresh even if the database holds the count")
    parser.add_argument("--skip-ingest", action="store_true", help="leave out the ingest price")
    parser.add_argument("--ingest-visits", type=int, default=300, help="visits sent in each ingest round")
    parser.add_argument(
        "--database",
        default="shelfwatch_bench",
        help="the PostgreSQL database on 127.0.0.1:5432 (made if missing; its tables are the bench's)",
    )
    args = parser.parse_args()
    from sqlalchemy import create_engine, text

    url = ensure_database(args.database)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        have = conn.execute(text("SELECT to_regclass('events') IS NOT NULL")).scalar() and conn.execute(
            text("SELECT count(*) FROM events")).scalar()  # fmt: skip
    engine.dispose()
    if args.reload or not args.events <= (have or 0) < args.events + 100:  # the last visit may run over
        print(f"loading {args.events:,} events into {url} ...", flush=True)
        n, loaded, indexed = load(url, args.events, args.stores, args.boxes, args.days)
        print(f"loaded {n:,} events in {loaded:.0f} s ({n / loaded:,.0f} events/s with their rollups, COPY), "
              f"indexes built in {indexed:.0f} s")  # fmt: skip
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        sizes = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in
                 ("events", "insight_visits", "insight_visit_zones", "insight_visit_products")}  # fmt: skip
        month = conn.execute(text("SELECT count(*) FROM events WHERE store = 's01' AND ts >= :s"),
                             {"s": END - timedelta(days=30)}).scalar()  # fmt: skip
    engine.dispose()
    print("rows: " + ", ".join(f"{t} {n:,}" for t, n in sizes.items()) + f"; store s01 over 30 days: {month:,} events")
    results = endpoints(url, args.runs) + plain(url, args.runs)
    width = max(len(name) for name, _, _ in results)
    print(f"\n{'query (one store over 30 days unless chain)':<{width}}  median ms  rows")
    for name, ms, rows in results:
        print(f"{name:<{width}}  {ms:9.1f}  {rows:4d}")
    if args.skip_ingest:
        return
    with_rollups, without, sent, stored = ingest_price(url, args.ingest_visits)
    print(
        f"\ningest through Central.events: {with_rollups:,.0f} events/s with the rollups, {without:,.0f} without; "
        f"{sent:,} events sent, {stored:,} stored as new"
    )
    if stored != sent:
        raise SystemExit("some events sent through Central.events were not stored as new: the rates above are wrong")


if __name__ == "__main__":
    main()
