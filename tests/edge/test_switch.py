"""Switching bundles on a box through the real processes (the channel's fixture: a provisioned store, Mosquitto with
the files provisioning wrote, `central run` over HTTPS, agents from the provisioned box folders): a good signed
bundle is staged, gated and switched to, with its cost measured and every event the box's outbox issued stored by
central; a corrupted download, an unsigned bundle and one failing its reference clip are never switched to; a bundle
that crashes the agent after its switch is abandoned for the old one by itself. The tests play systemd's part: the
agent is started again whenever it exits. (Those two are long; the last test, the switcher on a config without a
broker, is not.)"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import pytest
from sqlalchemy import select

from central import db
from central.files import pack_bundle
from edge.agent import check_bundle
from edge.bundle import load_bundle
from edge.config import load_box_config
from edge.control import Desired, FileRef
from edge.switch import Switcher
from edge.times import parse_iso
from edge.uplink import Refused
from export.signing import keygen, sign_bundle
from tests.central.test_channel import LEFT, STORE, Channel, wait
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.edge.test_gate import crashing_bundle, demo_copy, resealed, shuffled_classes
from tests.edge.test_slots import demo_variant, write_config


class Supervised:
    """The agent kept running as the provisioned systemd unit keeps it (Restart=always): started again whenever it
    exits, its exit codes counted."""

    def __init__(self, c: Channel, box: str, video: Path) -> None:
        self.c, self.box, self.video = c, box, video
        self.exits: list[int] = []
        self._lock = threading.Lock()
        self._stopping = False
        self.proc = c.agent(box, video)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            code = self.proc.wait()
            with self._lock:
                if self._stopping:
                    return
                self.exits.append(code)
                time.sleep(0.5)  # systemd's RestartSec, shortened
                self.proc = self.c.agent(self.box, self.video)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        with self._lock:
            self._stopping = True
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
        code = self.proc.wait(120)
        self._thread.join(10)
        return code


def state(c: Channel, box: str = LEFT) -> Path:
    return c.tmp / f"state-{box}"


def health(c: Channel, box: str = LEFT) -> dict:
    """The status the agent last wrote beside its outbox (what the container's health check reads)."""
    try:
        return json.loads((state(c, box) / "outbox.status.json").read_text())
    except (OSError, ValueError):
        return {}


def controls(c: Channel) -> list[dict]:
    return sorted(c.events("control"), key=lambda e: e["seq"])


def send(c: Channel, name: str) -> dict:
    status, sent = c.request("POST", f"/boxes/{STORE}/{LEFT}/desired", c.staff, json.dumps({"bundle": name}).encode())
    assert status == 202, sent
    return sent


def outcome(c: Channel, bundle_or_file: str, timeout: float = 120) -> dict:
    """The box's last word (refused or done) on a bundle, as central stored it."""

    def found() -> dict | None:
        for event in reversed(controls(c)):
            if event["state"] in ("refused", "done") and bundle_or_file in event.get("detail", ""):
                return event
        return None

    assert wait(lambda: found() is not None, timeout), (controls(c), err(c)[-3000:])
    return found()


def err(c: Channel, box: str = LEFT) -> str:
    return (c.tmp / f"agent-{box}.err").read_text(errors="replace")


def no_event_lost(c: Channel, box: str = LEFT) -> int:
    """Every event the box's outbox issued (seq 1 to its last) is stored by central, once; returns how many."""
    with sqlite3.connect(state(c, box) / "outbox.sqlite") as outbox:
        issued = outbox.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        waiting = outbox.execute("SELECT count(*) FROM events").fetchone()[0]
    assert waiting == 0  # the broker acknowledged them all

    def stored() -> list[int]:
        engine = db.connect(c.db)
        with engine.connect() as conn:
            e = db.events.c
            rows = [r.seq for r in conn.execute(select(e.seq).where(e.store == STORE, e.box == box, e.epoch == 1))]
        engine.dispose()
        return sorted(rows)

    assert wait(lambda: stored() == list(range(1, issued + 1)), 60), (issued, stored()[-5:])
    engine = db.connect(c.db)
    with engine.connect() as conn:
        assert conn.execute(select(db.dead_letters.c.reason)).first() is None  # the new status fields validate
    engine.dispose()
    return issued


@pytest.mark.long
def test_a_good_signed_bundle_is_switched_to_and_bad_ones_never_are(tmp_path):
    chain = keygen(tmp_path / "keys" / "chain")
    provisioned = demo_copy(tmp_path / "provisioned")
    sign_bundle(provisioned, chain.private)
    c = Channel(tmp_path, bundle=provisioned, keys=(chain.public,))
    agent = None
    try:
        bundles = c.bundles
        unsigned = demo_variant(bundles / "unsigned", "2026-12-06T01:00:00+00:00")
        changed = resealed(demo_copy(bundles / "changed"), {"action_step.onnx": shuffled_classes(
            onnx.load(DEMO_BUNDLE / "action_step.onnx"))})  # fmt: skip
        corrupt = demo_variant(bundles / "corrupt", "2026-12-06T02:00:00+00:00")
        good = demo_variant(bundles / "good", "2026-12-06T03:00:00+00:00")
        for folder in (changed, corrupt, good):
            sign_bundle(folder, chain.private)
        # Central serves other bytes than the ones it names: the blob it keeps the tar as is damaged on its disk.
        _, tar = pack_bundle(corrupt)
        blob = c.data / "blobs" / hashlib.sha256(tar).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        middle = len(tar) // 2  # inside a graph (a tar ends in zeros: its end would change nothing)
        blob.write_bytes(tar[:middle] + bytes(b ^ 0xFF for b in tar[middle : middle + 100]) + tar[middle + 100 :])
        before = load_bundle(provisioned).bundle_id
        agent = Supervised(c, LEFT, sample(c.tmp, 900, seed=31))
        assert wait(lambda: health(c).get("bundle_id") == before, 120), err(c)[-2000:]

        send(c, "unsigned")
        assert "unsigned" in outcome(c, "unsigned (no signature.json)")["detail"]
        send(c, "changed")
        refused = outcome(c, f"bundle {load_bundle(changed).bundle_id} refused by the health gate")
        assert "reference clip: " in refused["detail"] and "labelled otherwise" in refused["detail"]
        # The unsigned bundle left the switch "refused" already: wait for the problem to name this one.
        refusal = f"bundle {load_bundle(changed).bundle_id} refused"
        assert wait(lambda: refusal in (health(c).get("problem") or ""), 30), health(c)
        assert health(c)["switch"] == "refused"
        problem = health(c)["problem"]
        assert "health gate: reference clip" in problem
        sent = send(c, "corrupt")
        assert "does not match its size and SHA-256" in outcome(c, sent["file"])["detail"]
        for bad in (unsigned, changed, corrupt):  # staged at most, never run
            assert f"switching to bundle {load_bundle(bad).bundle_id}" not in err(c)
        assert health(c)["bundle_id"] == before and agent.exits == []

        target = load_bundle(good).bundle_id
        send(c, "good")  # the positive control: the same path, a bundle that passes
        done = outcome(c, f"switched to bundle {target}", timeout=180)
        staged = [e for e in controls(c) if e["state"] == "staged" and target in e.get("detail", "")]
        assert staged and f"signed by key {chain.key_id}" in staged[0]["detail"]
        assert wait(lambda: health(c).get("bundle_id") == target and "switch_s" in health(c), 60)
        status = health(c)
        assert status["state"] == "running" and status["switch"] == "trial" and status["switch_bundle"] == target
        assert status["fallback_bundle"] == before and status["bundle_key"] == chain.key_id
        assert status["switch_s"] > 0 and status["switch_frames"] >= 0
        assert f"in {status['switch_s']:.1f} s, about {status['switch_frames']} frames not analysed" in done["detail"]
        assert agent.exits == []  # it replaced itself: to systemd the agent never stopped
        print(f"switch cost: {status['switch_s']} s, {status['switch_frames']} frames not analysed")
        assert agent.stop() == 0
        assert no_event_lost(c) > 0
    finally:
        if agent is not None:
            agent.stop(signal.SIGKILL)  # before the channel goes: nothing starts it again
        c.close()


@pytest.mark.long
def test_a_bundle_that_crashes_the_agent_after_its_switch_is_abandoned_by_itself(tmp_path):
    c = Channel(tmp_path)
    agent = None
    try:
        video = sample(c.tmp, 900, seed=32)
        crash = crashing_bundle(c.bundles / "crash", video, tmp_path)
        target, before = load_bundle(crash).bundle_id, load_bundle(DEMO_BUNDLE).bundle_id
        agent = Supervised(c, LEFT, video)
        assert wait(lambda: health(c).get("bundle_id") == before, 120), err(c)[-2000:]
        send(c, "crash")
        switched = outcome(c, f"switched to bundle {target}", timeout=180)  # it passed its gate, on its dark clip
        back = outcome(c, f"bundle {target} abandoned, back to {before}", timeout=600)
        assert "stopped unexpectedly 3 times within" in back["detail"]
        assert len([code for code in agent.exits if code != 0]) == 3  # three crashes, then the old bundle
        assert "reshape" in err(c).lower()  # what stopped it: ONNX Runtime, on a bright frame
        within = (parse_iso(back["ts"], "ts") - parse_iso(switched["ts"], "ts")).total_seconds()
        assert within < 600
        assert wait(lambda: health(c).get("bundle_id") == before and health(c).get("switch") == "rolled_back", 60)
        assert health(c)["problem"].startswith(f"bundle {target} rolled back: the agent stopped unexpectedly")
        time.sleep(5)
        assert health(c)["state"] == "running" and sum(code != 0 for code in agent.exits) == 3  # the old one runs on
        assert agent.stop() == 0
        assert no_event_lost(c) > 0
    finally:
        if agent is not None:
            agent.stop(signal.SIGKILL)  # before the channel goes: nothing starts it again
        c.close()


def test_a_config_from_central_is_staged_checked_and_run_after_the_switch_at_a_quiet_frame(tmp_path):
    """The switcher without a broker: a `desired` config (as the uplink hands it over, downloaded) for this box, with
    zones inside the camera's 640x480 picture, is staged and, at the first frame with nobody in view, switched to;
    after the restart the agent runs it. One with a zone outside the picture is refused and changes nothing."""
    box = tmp_path / "box"
    box.mkdir()
    config_file = box / "config.yaml"
    config_file.write_text(f"store: store-1\nbox: box-a\ncamera: {{source: camera.mp4}}\nbundle: {DEMO_BUNDLE}\n"
                           f"outbox: {{path: {tmp_path / 'state' / 'outbox.sqlite'}}}\n"
                           "uplink: {url: 'https://central.example.com:8443'}\n")  # fmt: skip
    given = load_box_config(config_file)
    events: list[dict] = []
    switcher = Switcher(given, config_file, lambda kind, **fields: events.append(fields), log=lambda message: None)
    config, bundle = switcher.start(check_bundle)
    assert config == given and bundle.manifest.bundle_id == load_bundle(DEMO_BUNDLE).bundle_id
    switcher.arrived(np.zeros((480, 640, 3), np.uint8), 30.0)  # the camera's picture, from the frame loop
    message = Desired(issued=datetime.now(timezone.utc), config=FileRef(name="c.yaml", size=1, sha256="0" * 64))
    outside = write_config(tmp_path, zones=[{"name": "top", "polygon": [[0, 0], [641, 0], [640, 90]]}])
    with pytest.raises(Refused, match="zone 'top' reaches \\(641, 0\\), outside the camera's 640x480 picture"):
        switcher.desired(message, {"config": outside})
    assert not switcher.due(quiet=True) and events == []
    go = switcher.desired(message, {"config": write_config(tmp_path)})
    assert events[-1]["state"] == "staged" and "with a new config staged in slot A" in events[-1]["detail"]
    go()
    assert not switcher.due(quiet=False) and switcher.due(quiet=True)  # someone in view: it waits
    stopped = Switcher(given, config_file, lambda kind, **fields: None, log=lambda message: None)
    stopped.start(check_bundle)  # the agent was stopped before the quiet frame: after its restart the switch is due
    assert stopped.due(quiet=True) and stopped.switching.slot == "A"
    switcher.switch(last_frame=time.time())
    switcher.ended()
    restarted = Switcher(given, config_file, lambda kind, **fields: events.append(fields), log=lambda message: None)
    config, _ = restarted.start(check_bundle)
    assert [z.name for z in config.zones] == ["top"] and config.mqtt is None and config.outbox == given.outbox
    restarted.arrived(np.zeros((480, 640, 3), np.uint8), 30.0)
    assert events[-1]["state"] == "done" and "frames not analysed" in events[-1]["detail"]
    assert restarted.status()["switch"] == "trial"
