"""The event path under faults, end to end with real processes: a Mosquitto with persistence, `shelfwatch
central run`, and two boxes publishing as the agent does (edge.emitter -> edge.outbox -> edge.publisher).
While they publish: the broker is killed (-9) twice, central is stopped (SIGTERM) and killed (-9), one box is
re-imaged (its outbox deleted: its seq starts again at 1), and twice poisoned messages arrive (a 300-character
topic level on a box's prefix, a POS lane of 300 characters: they once stopped central on PostgreSQL at every
restart). Then every event a box accepted is looked for in central's database, and each poisoned message among
its dead letters.

    python bench/fault_run.py [--seconds 40] [--rate 25] [--postgres]

Prints sent (events the boxes committed to their outboxes), stored, lost (sent, never stored), stored
twice (impossible by construction: event_id is the key), redelivered (duplicates central received and
dropped, as counted by each central process's /health before it went away), and the poisoned messages found
among the dead letters.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def box_main(args: argparse.Namespace) -> int:
    """One box: emits pick events at --rate until --count or SIGTERM, then flushes its outbox and stops."""
    from edge.config import MqttConfig
    from edge.emitter import Emitter
    from edge.events import StatusEvent, encode
    from edge.outbox import Outbox
    from edge.publisher import Publisher

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    outbox = Outbox(Path(args.outbox))
    emitter = Emitter("bench", args.box, outbox, jsonl=Path(args.log))
    will = StatusEvent(event_id=f"will-{args.box}-{uuid.uuid4().hex[:8]}", seq=outbox.last_seq(),
                       ts=datetime.now(timezone.utc), store="bench", box=args.box, state="offline")  # fmt: skip
    config = MqttConfig(host="127.0.0.1", port=args.port, reconnect_max_s=2)
    publisher = Publisher(outbox, config, f"shelfwatch-bench-{args.box}", emitter.topic("status"), encode(will))
    emitter.publisher = publisher
    publisher.start()
    for i in range(args.count):
        if stop.is_set():
            break
        emitter.emit("pick", sku=f"sku{i % 10:02d}", quantity=1, shopper=i % 7, frame=i, confidence=0.9)
        stop.wait(1 / args.rate)
    stop.wait()  # the bench says when to go (the outbox may still hold a backlog)
    flushed = publisher.flush(60)
    publisher.stop(emitter.status("stopped", publish=False))
    print(json.dumps({"box": args.box, "flushed": flushed, "left": outbox.depth()}), flush=True)
    return 0


class Proc:
    def __init__(self, name: str, command: list[str], work: Path) -> None:
        self.name, self.command, self.work = name, command, work
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with (self.work / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40, help="how long the boxes publish (default 40)")
    parser.add_argument("--rate", type=float, default=25, help="events per second per box (default 25)")
    parser.add_argument("--postgres", action="store_true", help="central on PostgreSQL (default SQLite)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print it")
    parser.add_argument("--box", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--outbox", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.box:
        return box_main(args)

    from sqlalchemy import func, select

    from central import db
    from tests.conftest import Broker, free_port

    work = Path(tempfile.mkdtemp(prefix="shelfwatch-fault-"))
    pg_name = None
    if args.postgres:
        import psycopg

        pg_name = f"shelfwatch_fault_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{pg_name}"')
        url = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
    else:
        url = f"sqlite:///{work / 'central.db'}"
    # As deployed: persistence on, saved every second; no cap on what is queued for an absent consumer. (The test
    # broker keeps root where it runs as root: mosquitto's own user could not write in a private tmp folder.)
    broker = Broker(work / "broker", extra="max_queued_messages 0\n")
    broker.start()
    http = free_port()
    central = Proc("central", [sys.executable, "-m", "shelfwatch", "central", "run", "--mqtt",
                               f"mqtt://127.0.0.1:{broker.port}", "--db", url, "--http", f"127.0.0.1:{http}",
                               "--client-id", "fault-central"], work)  # fmt: skip
    counts: list[dict] = [{}]  # the last /health counts of each central process
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=1) as r:
                    counts[-1] = json.loads(r.read())
            except OSError:
                pass
            watching.wait(0.2)

    def box(name: str, incarnation: int, count: int) -> Proc:
        outbox, sent_log = work / f"outbox-{name}.sqlite", work / f"sent-{name}-{incarnation}.jsonl"
        files = ["--outbox", str(outbox), "--log", str(sent_log)]
        return Proc(f"box-{name}-{incarnation}", [sys.executable, __file__, "--box", name, "--port", str(broker.port),
                    *files, "--count", str(count), "--rate", str(args.rate)], work)  # fmt: skip

    count = int(args.seconds * args.rate)

    def wait_for_central() -> None:
        """Until /health answers, which it does once central has subscribed."""
        deadline = time.monotonic() + 60
        while not counts[-1] and time.monotonic() < deadline:
            time.sleep(0.1)
        if not counts[-1]:
            sys.exit(f"central did not answer /health within 60 s; its log: {work / 'central.log'}")

    def sent_ids() -> set[str]:
        """Every event the boxes have committed to their outboxes so far."""
        sent: set[str] = set()
        for f in work.glob("sent-*.jsonl"):
            sent |= {e["event_id"] for e in map(json.loads, f.read_text().splitlines()) if e["kind"] != "status"}
        return sent

    def stored_ids() -> set[str]:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(select(db.events.c.event_id))}

    def wait_until_stored(ids: set[str], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not ids <= stored_ids() and time.monotonic() < deadline:
            time.sleep(0.2)

    central.start()
    threading.Thread(target=watch, daemon=True).start()
    wait_for_central()  # what boxes publish before central's first subscription has no session to wait in
    engine = db.connect(url)
    boxes = {"a": box("a", 1, count), "b": box("b", 1, count)}
    for b in boxes.values():
        b.start()
    step = args.seconds / 6
    log = []

    def at(t: float, what: str) -> None:
        time.sleep(max(0.0, t - (time.monotonic() - t0)))
        log.append(f"{time.monotonic() - t0:5.1f} s  {what}")
        print(log[-1], flush=True)

    def kill_broker() -> None:
        # One fault at a time: central first stores what the boxes have sent. A broker killed while central is still
        # catching up loses what it accepted since its last autosave (Mosquitto's own window, see the README): on a
        # busy machine, or a short run, that is what "lost" would count.
        wait_until_stored(sent_ids())
        broker.proc.kill()
        broker.proc.wait()
        time.sleep(1)
        broker.start()

    poisoned: list[str] = []

    def poison() -> None:
        """What once stopped central on PostgreSQL at every restart (issue 21.1): each must end as a dead letter
        while the boxes' events go on being stored."""
        import paho.mqtt.client as mqtt

        from tests.central.events import box_events

        pick = box_events("bench", "a", 2, start_seq=5001)[1][1]  # a valid event, on a topic it does not match
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"poisoner-{len(poisoned)}")
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        for topic, payload in ((f"shelfwatch/v1/bench/a/{'x' * 300}", pick),
                               (f"shelfwatch/pos/v1/bench/{'l' * 300}", b'{"type": "basket_open"}')):  # fmt: skip
            c.publish(topic, payload, qos=1).wait_for_publish(10)
            poisoned.append(topic)
        c.disconnect()
        c.loop_stop()

    def restart_central(sig: signal.Signals) -> None:
        central.signal(sig)
        counts.append({})
        central.start()
        wait_for_central()

    t0 = time.monotonic()
    at(step * 1, "broker kill -9, restarted 1 s later")
    kill_broker()
    at(step * 1.5, "poisoned messages: a box's 300-character topic level, a POS lane of 300 characters")
    poison()
    at(step * 2, "central SIGTERM, restarted")
    restart_central(signal.SIGTERM)
    at(step * 3, "broker kill -9, restarted 1 s later")
    kill_broker()
    at(step * 3.5, "poisoned messages again")
    poison()
    at(step * 4, "central kill -9, restarted")
    restart_central(signal.SIGKILL)
    at(step * 5, "box b re-imaged: stopped, outbox deleted, started again (seq from 1)")
    boxes["b"].signal(signal.SIGTERM)
    for f in work.glob("outbox-b.*"):
        f.unlink()
    boxes["b2"] = box("b", 2, int(step * args.rate))
    boxes["b2"].start()
    # The new epoch must have sent something before the boxes stop (on a busy machine its start alone takes seconds).
    deadline, log_b2 = time.monotonic() + 60, work / "sent-b-2.jsonl"

    def b2_sent() -> bool:
        lines = log_b2.read_text().split("\n")[:-1] if log_b2.is_file() else []  # a line being written is not read
        return any(json.loads(line)["kind"] != "status" for line in lines)

    while not b2_sent() and time.monotonic() < deadline:
        time.sleep(0.2)
    at(args.seconds + 2, "boxes stopped (each flushes its outbox)")
    for name in ("a", "b2"):
        boxes[name].signal(signal.SIGTERM)

    sent = sent_ids()
    wait_until_stored(sent)
    time.sleep(1)  # the last /health sample
    watching.set()
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(select(db.events.c.event_id))}
        rows = conn.execute(select(func.count()).select_from(db.events)).scalar()
        epochs = sorted({(r.box, r.epoch) for r in conn.execute(select(db.events.c.box, db.events.c.epoch))})
        letters = [r.topic or "" for r in conn.execute(select(db.dead_letters.c.topic))]
        gaps = [(b["box"], db.all_gaps(conn, b["store"], b["box"])) for b in db.box_rows(conn)]
    central.signal(signal.SIGTERM)
    broker.stop()
    engine.dispose()
    lost = sent - stored
    redelivered = sum(c.get("duplicate", 0) for c in counts)
    print(f"\ncentral on {'PostgreSQL' if args.postgres else 'SQLite'}; two boxes at {args.rate:g} events/s each "
          f"for {args.seconds:g} s")  # fmt: skip
    print(f"sent {len(sent)}  stored {len(stored & sent)}  lost {len(lost)}  "
          f"stored twice {rows - len(stored)}  redelivered {redelivered} "
          "(dropped as duplicates; the kill -9'd central's count is its last /health)")  # fmt: skip
    print(f"epochs {epochs}  open gaps {gaps}")
    # A topic is kept cut to its column (256 characters, the last one "…"): matched by the first 255.
    caught = sum(1 for t in poisoned if any(t[:255] == letter[:255] for letter in letters))
    print(f"poisoned messages {len(poisoned)}  dead-lettered {caught} (dead letters in all: {len(letters)})")
    if pg_name:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    if args.keep:
        print(f"logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if lost or caught < len(poisoned) else 0


if __name__ == "__main__":
    sys.exit(main())
