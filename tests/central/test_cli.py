"""`shelfwatch central run` as deployed, a real process against a real Mosquitto: restarts lose nothing, a
consumer's identity survives them, what cannot work (a wrong password, a port in use, a password in the
URL) stops it at once with one line, and a writer that cannot go on stops the process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import text

from central import db
from tests.central.events import box_events
from tests.conftest import Broker, free_port, saved_after, shelfwatch_command

# Mosquitto's default queue per offline client is 1000 messages; a central that restarts under load needs more.
QUEUE = "max_queued_messages 0\nmax_inflight_messages 0\n"


class CentralProcess:
    def __init__(self, tmp: Path, *args: object, env: dict | None = None, name: str = "central") -> None:
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(shelfwatch_command("central", "run", *args), stdout=out, stderr=err, env=env)

    def wait_consuming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "consuming" not in self.out.read_text():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, "central did not start consuming"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)


def publish(port: int, messages: list[tuple[str, bytes]], pace_s: float = 0.0) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"box-sim-{time.monotonic_ns()}")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for topic, payload in messages:
        infos.append(client.publish(topic, payload, qos=1))
        if pace_s:
            time.sleep(pace_s)
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def stored(url: str) -> int:
    engine = db.connect(url)
    try:
        with engine.connect() as conn:
            return db.count(conn, db.events)
    finally:
        engine.dispose()


def wait(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("group", [(), ("--group", "central")], ids=["plain", "shared"])
def test_a_restart_mid_stream_loses_nothing(tmp_path, group):
    """Issue 17.1: the default identity is the same after a restart, so the session (and what the broker
    queued for it while central was down) is resumed; no share is left with a dead member."""
    broker = Broker(tmp_path / "broker", extra=QUEUE)
    broker.start()
    url = f"sqlite:///{tmp_path / 'central.db'}"
    args = ("--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--db", url, "--http", "off", *group)
    central = CentralProcess(tmp_path, *args)
    central.wait_consuming()
    per_box = [box_events("s1", f"box-{b}", 750) for b in range(4)]
    events = [box[i] for i in range(750) for box in per_box]  # the boxes interleaved, as on the wire
    sender = threading.Thread(target=publish, args=(broker.port, events, 0.002))
    sender.start()
    try:
        assert wait(lambda: stored(url) >= 300, 30)
        assert central.stop() == 0  # SIGTERM mid-stream
        assert stored(url) < len(events)
        central = CentralProcess(tmp_path, *args)
        central.wait_consuming()
        sender.join(60)
        assert wait(lambda: stored(url) == len(events), 60), f"{stored(url)} of {len(events)} stored"
    finally:
        central.stop()
        broker.stop()
    with db.connect(url).connect() as conn:
        assert all(db.open_gaps(conn, "s1", f"box-{b}") == [] for b in range(4))


def test_what_cannot_work_stops_central_at_once_with_one_line(shelfwatch, tmp_path):
    """Issue 17.9: a wrong password, a password in the URL and an HTTP port in use each end central with one
    line and exit 2; the port in use leaves no session behind at the broker."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "central", "right"], check=True)
    broker = Broker(tmp_path / "broker", extra=f"password_file {passwd}\n")
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    url = f"sqlite:///{tmp_path / 'central.db'}"
    base = ("central", "run", "--mqtt", f"mqtt://central@127.0.0.1:{broker.port}", "--db", url)
    try:
        wrong = tmp_path / "wrong"
        wrong.write_text("wrong\n")
        result = shelfwatch(*base, "--mqtt-password-file", wrong, "--http", "off", timeout=60)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1].startswith("shelfwatch: error: the broker at 127.0.0.1:")
        assert "refused central as 'central': Not authorized" in result.stderr and "Traceback" not in result.stderr

        in_url = shelfwatch("central", "run", "--mqtt", f"mqtt://central:right@127.0.0.1:{broker.port}", "--db", url)
        assert in_url.returncode == 2 and "the URL holds a password" in in_url.stderr

        busy = socket.create_server(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        env = {**os.environ, "SHELFWATCH_MQTT_PASSWORD": "right"}
        result = shelfwatch(*base, "--http", f"127.0.0.1:{port}", "--client-id", "c-busy", env=env, timeout=60)
        busy.close()
        assert result.returncode == 2 and "cannot listen there" in result.stderr, result.stderr
        # A broker session left behind would hold a share of the messages for a day; the right password
        # proves the check below can see one.
        assert not session_present(broker.port, "c-busy")

        right = tmp_path / "right"
        right.write_text("right\n")
        central = CentralProcess(tmp_path, *base[2:], "--mqtt-password-file", right, "--http", "off")
        central.wait_consuming()
        assert central.stop() == 0
        assert session_present(broker.port, "shelfwatch-central-" + _host())  # the default id, kept
    finally:
        broker.stop()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]


def session_present(port: int, client_id: str) -> bool:
    """Whether the broker still holds a session for `client_id` (asking ends it)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set("central", "right")
    answer: dict = {}
    client.on_connect = lambda c, u, flags, rc, p: answer.update(present=flags.session_present, rc=rc)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    assert wait(lambda: "present" in answer, 10)
    client.disconnect()
    client.loop_stop()
    assert not answer["rc"].is_failure
    return answer["present"]


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_unstorable_event_is_dead_lettered_and_a_failed_writer_stops_central(broker, tmp_path):
    """Issue 17.3: seq = 2^63 used to raise OverflowError in the writer, which then stored nothing more while
    /health said ok. Now it is refused by the schema; a message the database refuses is dead-lettered and the
    rest stored; and a writer that cannot even dead-letter fails /health and ends the process non-zero."""
    url = f"sqlite:///{tmp_path / 'central.db'}"
    port = free_port()
    central = CentralProcess(tmp_path, "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--db", url,
                             "--http", f"127.0.0.1:{port}", "--client-id", "c3")  # fmt: skip
    central.wait_consuming()
    events = box_events("s1", "a", 6)
    huge = json.loads(events[1][1]) | {"seq": 2**63}
    publish(broker.port, [events[0], (events[1][0], json.dumps(huge).encode()), *events[2:]])
    assert wait(lambda: stored(url) == 5, 30)
    engine = db.connect(url)
    with engine.begin() as conn:
        assert "seq: Input should be less than or equal to 9007199254740991" in conn.execute(
            text("SELECT reason FROM dead_letters")).scalar()  # fmt: skip
        # From now on the database refuses this box's picks (as a full disk or a broken constraint would).
        conn.execute(text("CREATE TRIGGER no_picks BEFORE INSERT ON events WHEN NEW.kind = 'pick' "
                          "BEGIN SELECT RAISE(ABORT, 'no picks today'); END"))  # fmt: skip
    assert health(port)[0] == 200 and health(port)[1]["ok"] is True
    more = box_events("s1", "a", 8, start_seq=7)
    publish(broker.port, more)
    assert wait(lambda: stored(url) == 5 + 6, 30)  # the two picks dead-lettered, the other six stored
    with engine.connect() as conn:
        reasons = [r for (r,) in conn.execute(text("SELECT reason FROM dead_letters ORDER BY id"))]
    assert len(reasons) == 3 and all("not storable" in r and "no picks today" in r for r in reasons[1:])
    assert central.proc.poll() is None and health(port)[1]["ok"] is True
    with engine.begin() as conn:  # now not even a dead letter can be written: the writer cannot go on
        conn.execute(text("CREATE TRIGGER no_dead BEFORE INSERT ON dead_letters "
                          "BEGIN SELECT RAISE(ABORT, 'read-only'); END"))  # fmt: skip
    engine.dispose()
    (pick,) = [e for e in box_events("s1", "a", 4, start_seq=20) if e[0].endswith("/pick")]
    publish(broker.port, [pick])
    try:
        assert central.proc.wait(30) == 2
    finally:
        central.proc.kill()
    err = central.err.read_text().strip().splitlines()
    assert err[-1].startswith("shelfwatch: error: the writer stopped") and "read-only" in err[-1]
    assert "Traceback" not in central.err.read_text()


def kill9_and_restart(broker: Broker) -> None:
    broker.proc.kill()
    broker.proc.wait(10)
    broker.start()


def test_the_broker_queues_for_central_across_central_and_broker_restarts(tmp_path):
    """Issue 17.4 (central's half): central's session is persistent and long-lived, so what boxes publish while
    central is down, or while it reconnects after the broker died, waits for it; nothing depends on central
    resubscribing in time."""
    broker = Broker(tmp_path / "broker", extra=QUEUE)
    broker.start()
    url = f"sqlite:///{tmp_path / 'central.db'}"
    args = ("--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--db", url, "--http", "off", "--client-id", "c4")
    events = box_events("s1", "a", 300)
    central = CentralProcess(tmp_path, *args)
    try:
        central.wait_consuming()
        publish(broker.port, events[:100])
        assert wait(lambda: stored(url) == 100, 30)
        assert central.stop() == 0
        publish(broker.port, events[100:200])  # central is down: queued in its session
        saved_after(broker.folder / "mosquitto.db", time.time_ns())  # the broker's autosave has written the queue
        kill9_and_restart(broker)
        central = CentralProcess(tmp_path, *args)
        central.wait_consuming()
        assert wait(lambda: stored(url) == 200, 30), stored(url)
        kill9_and_restart(broker)  # central is up and must reconnect; boxes publish before it has
        publish(broker.port, events[200:])
        assert wait(lambda: stored(url) == 300, 60), stored(url)
        assert "consuming" in central.out.read_text() and central.proc.poll() is None
    finally:
        central.stop()
        broker.stop()


def test_a_retired_consumer_leaves_no_share_behind(shelfwatch, tmp_path):
    """Issue 17.1: a member that is gone for good must not hold a share; `central leave` stores what was
    queued for it and ends its session, after which the remaining member gets everything."""
    broker = Broker(tmp_path / "broker", extra=QUEUE)
    broker.start()
    url = f"sqlite:///{tmp_path / 'central.db'}"
    mqtt_url = f"mqtt://127.0.0.1:{broker.port}"
    group = ("--mqtt", mqtt_url, "--db", url, "--http", "off", "--group", "central")
    first = CentralProcess(tmp_path, *group, "--client-id", "c1", name="c1")
    second = CentralProcess(tmp_path, *group, "--client-id", "c2", name="c2")
    try:
        first.wait_consuming()
        second.wait_consuming()
        assert second.stop() == 0  # retired: its session, and its share, stay with the broker
        events = box_events("s1", "a", 200)
        publish(broker.port, events[:100])
        assert wait(lambda: stored(url) > 0, 30)
        time.sleep(1)
        assert stored(url) < 100  # half of them wait in the retired member's queue
        left = shelfwatch("central", "leave", *group[:4], "--group", "central", "--client-id", "c2", timeout=60)
        assert left.returncode == 0, left.stderr
        assert wait(lambda: stored(url) == 100, 30)
        assert not session_present(broker.port, "c2")
        publish(broker.port, events[100:])
        assert wait(lambda: stored(url) == 200, 30)
    finally:
        first.stop()
        broker.stop()


POISON_SQL = {
    "postgresql": [
        "ALTER TABLE events ADD CONSTRAINT poison CHECK (box <> 'a' OR seq <> 3)",
        "ALTER TABLE dead_letters ADD CONSTRAINT poison CHECK (topic IS NULL OR topic NOT LIKE '%poison%')",
    ],
    "sqlite": [
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.box = 'a' AND NEW.seq = 3 "
        "BEGIN SELECT RAISE(ABORT, 'poison'); END",
        "CREATE TRIGGER poison_dead BEFORE INSERT ON dead_letters WHEN NEW.topic LIKE '%poison%' "
        "BEGIN SELECT RAISE(ABORT, 'poison'); END",
    ],
}


def test_a_poisoned_message_does_not_stop_the_chain(tmp_path, db_url):
    """Issue 21.1: a box publishing on its own prefix with a 300-character last topic level, a POS lane of 300
    characters, an event the database refuses for a reason nobody foresaw (a constraint poisoned on purpose) and
    a dead letter it refuses as it came: each ends as a dead letter, and central, on either backend, goes on
    storing every other box's events, before and after a restart (the broker redelivers nothing fatal)."""
    engine = db.connect(db_url)
    with engine.begin() as conn:
        for statement in POISON_SQL[engine.dialect.name]:
            conn.execute(text(statement))
    broker = Broker(tmp_path / "broker", extra=QUEUE)
    broker.start()
    args = ("--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--db", db_url, "--http", "off", "--client-id", "c-poison")
    central = CentralProcess(tmp_path, *args)
    pick_payload = box_events("s1", "b", 2)[1][1]
    poisoned = [
        ("shelfwatch/v1/s1/b/" + "x" * 300, pick_payload),
        ("shelfwatch/pos/v1/s1/" + "l" * 300, b'{"type": "basket_open"}'),
        ("shelfwatch/v1/s1/poison/pick", pick_payload),
    ]
    try:
        central.wait_consuming()
        publish(broker.port, box_events("s1", "a", 10) + poisoned + box_events("s1", "c", 10))
        assert wait(lambda: stored(db_url) == 9 + 10, 30), stored(db_url)
        assert central.stop() == 0  # a restart redelivers whatever was not acknowledged
        central = CentralProcess(tmp_path, *args)
        central.wait_consuming()
        publish(broker.port, box_events("s1", "d", 10))
        assert wait(lambda: stored(db_url) == 29, 30), stored(db_url)
        assert central.proc.poll() is None
    finally:
        central.stop()
        broker.stop()
    with engine.connect() as conn:
        letters = list(conn.execute(db.dead_letters.select().order_by(db.dead_letters.c.id)))
    engine.dispose()
    assert len(letters) == 4, [(r.topic, r.reason) for r in letters]
    by_reason = {("poison" in r.reason, r.topic is None) for r in letters}
    assert (True, False) in by_reason  # seq 3 refused by the events' constraint: dead-lettered with the reason
    assert (True, True) in by_reason  # the dead letter refused as it came: kept as ASCII, no topic column
    assert sorted(len(r.topic or "") for r in letters)[-2:] == [256, 256]  # the two long topics, cut
    assert "Traceback" not in central.err.read_text()


def test_a_token_is_made_in_the_database_central_run_uses_by_default(tmp_path, shelfwatch):
    """The five-command path in the README: `central token create` without --db writes where `central run` reads."""
    done = shelfwatch("central", "token", "create", "--store", "demo", "--name", "me", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("swt_") and (tmp_path / "shelfwatch-central.db").is_file()
    listed = shelfwatch("central", "token", "list", cwd=tmp_path)
    assert "demo" in listed.stdout and "me" in listed.stdout, listed.stdout
