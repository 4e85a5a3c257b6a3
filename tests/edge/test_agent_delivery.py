"""The agent against a real Mosquitto: every event arrives (at least once; exactly once after removing
duplicates by event_id; in seq order), through a broker outage, a kill -9 and a SIGTERM."""

import json
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from edge.events import decode
from tests.conftest import Subscriber, shelfwatch_command
from training.synth.generate import VideoSpec, write_video

DEMO_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "demo"


def sample(folder: Path, frames: int, seed: int = 11, index: int = 0) -> Path:
    labels = write_video(VideoSpec(seed=seed, index=index, frames=frames, width=640, height=480), folder)[0]
    return labels.with_name(labels.name.replace(".labels.json", ".mp4"))


def box_yaml(folder: Path, port: int, source: Path) -> Path:
    path = folder / "box.yaml"
    path.write_text(
        f"store: store-1\nbox: box-a\ncamera: {{source: {source}}}\nbundle: {DEMO_BUNDLE}\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}, reconnect_max_s: 1}}\n"
        f"outbox: {{path: {folder / 'outbox.sqlite'}}}\nheartbeat_s: 1\nthreads: 1\n"
    )
    return path


def agent(config: Path, *args: object) -> subprocess.Popen:
    jsonl = config.parent / "events.jsonl"
    command = shelfwatch_command("edge", "run", "--config", config, "--events-jsonl", jsonl, *args)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def jsonl_events(folder: Path) -> list[dict]:
    """The box's own log of what it produced, without heartbeats (a line still being written is not read yet)."""
    lines = (folder / "events.jsonl").read_text().split("\n")[:-1]
    return [e for e in map(json.loads, lines) if e["kind"] != "status"]


def delivered(sub: Subscriber) -> list[dict]:
    """First copy of each event, in arrival order; every payload must follow the schema."""
    seen, out = set(), []
    for event in sub.payloads():
        decode(json.dumps(event))
        if event["kind"] != "status" and event["event_id"] not in seen:
            seen.add(event["event_id"])
            out.append(event)
    return out


def test_every_event_arrives_once_after_deduplication_in_seq_order(broker, tmp_path):
    sub = Subscriber(broker.port)
    proc = agent(box_yaml(tmp_path, broker.port, sample(tmp_path, 450)))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    produced = jsonl_events(tmp_path)
    assert any(e["kind"] == "action" for e in produced)
    assert sub.wait_for(lambda: len(delivered(sub)) >= len(produced))
    got = delivered(sub)
    assert [e["event_id"] for e in got] == [e["event_id"] for e in produced]
    assert [e["seq"] for e in got] == list(range(1, len(produced) + 1))
    assert got == produced  # same content as the box's own log
    statuses = sub.payloads("status")
    assert statuses[-1]["state"] == "stopped" and statuses[-1]["seq"] == len(produced)
    assert all(len(json.dumps(e)) < 1024 for e in sub.payloads())
    sub.close()


def test_a_broker_outage_of_ten_seconds_loses_nothing(broker, tmp_path):
    sub = Subscriber(broker.port)
    # Played in real time, so that the outage falls in the middle of the clip whatever the machine's load.
    started = datetime.now(timezone.utc).isoformat()
    proc = agent(box_yaml(tmp_path, broker.port, sample(tmp_path, 600, seed=12)), "--realtime", "--start-time", started)
    assert sub.wait_for(lambda: len(delivered(sub)) >= 1, timeout=120), "the box never published"
    broker.stop()
    before = len(jsonl_events(tmp_path))
    down = time.monotonic()
    # Down for ten seconds, and until the box has produced events it cannot send (or the clip has ended).
    while proc.poll() is None and (time.monotonic() - down < 10 or len(jsonl_events(tmp_path)) == before):
        time.sleep(0.2)
    during = jsonl_events(tmp_path)[before:]
    broker.start()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    produced = jsonl_events(tmp_path)
    assert during, "the outage should have held back some events"
    assert sub.wait_for(lambda: len(delivered(sub)) >= len(produced), timeout=60)
    assert sorted(e["seq"] for e in delivered(sub)) == [e["seq"] for e in produced]
    assert [e["seq"] for e in delivered(sub)] == sorted(e["seq"] for e in delivered(sub))
    sub.close()


def test_kill_9_loses_no_accepted_event_and_seq_continues(broker, tmp_path):
    broker.stop()  # events pile up in the outbox
    config = box_yaml(tmp_path, broker.port, sample(tmp_path, 600, seed=13))
    proc = agent(config, "--realtime")
    db = tmp_path / "outbox.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _pending_once_created(db) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    accepted = jsonl_events(tmp_path)
    # Every accepted event is in the outbox, none acknowledged (no broker), and the seq counter says so too.
    assert len(accepted) >= 3 and _pending(db) == len(accepted) and _last_seq(db) == accepted[-1]["seq"]
    broker.start()
    sub = Subscriber(broker.port)
    again = agent(config, "--max-frames", 150)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert sub.wait_for(lambda: {e["event_id"] for e in accepted} <= {e["event_id"] for e in delivered(sub)})
    after = jsonl_events(tmp_path)[len(accepted) :]
    assert all(e["seq"] > accepted[-1]["seq"] for e in after)
    seqs = [e["seq"] for e in delivered(sub)]
    assert seqs == sorted(seqs) and seqs[: len(accepted)] == [e["seq"] for e in accepted]
    sub.close()


def test_sigterm_flushes_and_publishes_stopped(broker, tmp_path):
    sub = Subscriber(broker.port)
    proc = agent(box_yaml(tmp_path, broker.port, sample(tmp_path, 600, seed=14)), "--realtime")
    assert sub.wait_for(lambda: any(s["state"] == "running" for s in sub.payloads("status")))
    # Stopped once the box has sent something (stopped before its first event, there is nothing to flush; this test
    # used to stop it 3 s in, before any, and so checked nothing).
    assert sub.wait_for(lambda: any(e["kind"] != "status" for e in sub.payloads()), timeout=120)
    config = tmp_path / "box.yaml"
    health = subprocess.run(shelfwatch_command("edge", "health", "--config", config), capture_output=True, text=True)
    assert health.returncode == 0 and health.stdout.startswith("healthy: running"), health.stderr
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sub.wait_for(lambda: sub.payloads("status")[-1]["state"] == "stopped")
    outbox = tmp_path / "outbox.sqlite"
    assert _last_seq(outbox) > 0, "the agent stored no event: nothing was there to acknowledge"
    assert _pending(outbox) == 0  # everything acknowledged before it left
    health = subprocess.run(shelfwatch_command("edge", "health", "--config", config), capture_output=True, text=True)
    assert health.returncode == 2 and "unhealthy: last status 'stopped'" in health.stderr
    later = Subscriber(broker.port, client_id="late-joiner")  # the retained status tells newcomers
    assert later.wait_for(lambda: any(s["state"] == "stopped" for s in later.payloads("status")))
    sub.close()
    later.close()


def _pending(db: Path) -> int:
    """Events in the outbox not yet acknowledged by the broker. A missing or broken outbox is an error here, never
    0 (`Outbox` would create a missing one)."""
    with sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30) as c:
        return c.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def _pending_once_created(db: Path) -> int:
    """`_pending` while the agent may still be creating its outbox (no file yet, or no table yet: 0)."""
    try:
        return _pending(db) if db.exists() else 0
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise


def _last_seq(db: Path) -> int:
    """The highest seq the outbox ever issued (acknowledged or not)."""
    with sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30) as c:
        return c.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]


@pytest.fixture(autouse=True)
def _needs_the_demo_bundle():
    assert (DEMO_BUNDLE / "manifest.json").is_file(), "models/demo is committed: `git checkout models/demo` restores it"
