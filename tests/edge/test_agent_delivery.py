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
    lines = (folder / "events.jsonl").read_text().splitlines()
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
    # Played in real time from now on the clip's clock: the events' own times are the wall clock's.
    started = datetime.now(timezone.utc).isoformat()
    proc = agent(box_yaml(tmp_path, broker.port, sample(tmp_path, 600, seed=12)), "--realtime", "--start-time", started)
    time.sleep(4)
    broker.stop()
    down = time.time()
    time.sleep(10)
    broker.start()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    produced = jsonl_events(tmp_path)
    during = [e for e in produced if down <= _epoch(e["ts"]) <= down + 10]
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
    while time.monotonic() < deadline and _stored(db) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    accepted = jsonl_events(tmp_path)
    assert len(accepted) >= 3 and _stored(db) == len(accepted)
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
    time.sleep(3)
    config = tmp_path / "box.yaml"
    health = subprocess.run(shelfwatch_command("edge", "health", "--config", config), capture_output=True, text=True)
    assert health.returncode == 0 and health.stdout.startswith("healthy: running"), health.stderr
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sub.wait_for(lambda: sub.payloads("status")[-1]["state"] == "stopped")
    assert _stored(tmp_path / "outbox.sqlite") == 0  # everything acknowledged before it left
    health = subprocess.run(shelfwatch_command("edge", "health", "--config", config), capture_output=True, text=True)
    assert health.returncode == 2 and "unhealthy: last status 'stopped'" in health.stderr
    later = Subscriber(broker.port, client_id="late-joiner")  # the retained status tells newcomers
    assert later.wait_for(lambda: any(s["state"] == "stopped" for s in later.payloads("status")))
    sub.close()
    later.close()


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        try:
            return c.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]
        except sqlite3.Error:
            return 0


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.fixture(autouse=True)
def _needs_the_demo_bundle():
    assert (DEMO_BUNDLE / "manifest.json").is_file(), "models/demo is committed; rebuild it with `make models`"
