"""Sustained ingest into PostgreSQL: many simulated boxes publish on loopback; one consumer, then two
sharing the subscription (separate processes, as deployed), write every event. Measured side by side.

    python bench/central_ingest.py --boxes 50 --events 200

Rate = events stored / time from the first publish to the last row committed (the broker queues what
the consumers have not taken yet, so the rate is the consumers' own).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> float:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(60)
    took = time.perf_counter() - start
    client.loop_stop()
    return took


def run(consumers: int, boxes: int, per_box: int, work: Path) -> tuple[float, float, int]:
    import psycopg
    from sqlalchemy import create_engine, text

    from tests.central.events import box_events
    from tests.conftest import Broker

    name = f"shelfwatch_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    broker = Broker(work / f"broker-{consumers}", extra="max_queued_messages 0\nmax_inflight_messages 1000\n")
    broker.start()
    procs = []
    try:
        from central.db import connect

        connect(url).dispose()  # the schema, before the consumers race to make it
        for i in range(consumers):
            command = [sys.executable, "-m", "shelfwatch", "central", "run", "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
                       "--db", url, "--http", "off", "--group", "central", "--client-id", f"bench-c{i}"]  # fmt: skip
            procs.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:  # each says "consuming" once subscribed: what is published before would reach nobody
            if "consuming" not in p.stdout.readline():
                sys.exit(f"a consumer did not start: {p.communicate(timeout=10)[1].strip()[-2000:]}")
        messages = [m for b in range(boxes) for m in box_events("bench", f"box-{b:04d}", per_box)]
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        start = time.perf_counter()
        publish_s = publish_all(broker.port, messages)
        stored = 0
        while stored < len(messages) and time.perf_counter() - start < 600:
            time.sleep(0.2)
            if any(p.poll() is not None for p in procs):
                sys.exit(f"a consumer stopped: {next(p for p in procs if p.poll() is not None).stderr.read()[-2000:]}")
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM events")).scalar()
        took = time.perf_counter() - start
        engine.dispose()
        return stored / took, len(messages) / publish_s, stored
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        broker.stop()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--events", type=int, default=200, help="events per box")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: run(n, args.boxes, args.events, Path(tmp)) for n in (1, 2)}
    total = args.boxes * args.events
    print(f"{args.boxes} boxes x {args.events} events = {total} events on loopback into PostgreSQL\n")
    for n, (rate, publish_rate, stored) in results.items():
        print(f"  {n} consumer(s): {rate:8.0f} events/s stored ({stored}/{total}); publishing ran at "
              f"{publish_rate:.0f} events/s")  # fmt: skip
    print(f"  two sharing / one: {results[2][0] / results[1][0]:.2f}x")
    # Sizing: a box emits about one event per shopper action plus picks and baskets.
    per_box = 0.2  # events/s at a busy shelf (a closed action every ~5 s, picks and baskets besides)
    chain = 1000 * 10 * per_box
    print(f"\n  sizing: 1,000 stores x 10 boxes at ~{per_box} events/s each = {chain:.0f} events/s sustained; "
          f"one consumer here covers {results[1][0] / chain:.1f}x that")  # fmt: skip


if __name__ == "__main__":
    main()
