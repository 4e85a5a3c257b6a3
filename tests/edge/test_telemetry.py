"""How the agent is doing (`edge.telemetry.Telemetry`): frames, frames lost, the status heartbeat written beside
the outbox, and the progress hook a CLI or web worker follows."""

import json
import time

import numpy as np

from edge.emitter import Emitter
from edge.outbox import Outbox
from edge.telemetry import Progress, Telemetry
from edge.video import Frame


def test_frames_heartbeat_and_progress(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    emitter = Emitter("store-1", "box-a", outbox)
    seen: list[Progress] = []
    t = Telemetry(emitter, "bundle-1", heartbeat_s=3600, total=10, on_progress=seen.append)
    t.reconnects = 2
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(10):
        t.frame_done(Frame(i, 0.0, image, after_gap=i == 5), active=i % 2 == 0, started=time.perf_counter())
    assert (t.frames, t.active_frames, t.dropped) == (10, 5, 1)
    assert t.motion_skip == 0.5 and t.fps > 0
    # The first frame sent a heartbeat and a progress report; the next come only after their intervals.
    status = json.loads((tmp_path / "outbox.status.json").read_text())
    assert status["state"] == "running" and status["frames"] == 1 and status["bundle_id"] == "bundle-1"
    assert status["source_reconnects"] == 2
    assert seen and seen[0].frames == 1 and seen[0].total == 10 and seen[0].fraction == 0.1
    final = t.progress(done=True)
    assert final.frames == 10 and final.fraction == 1.0 and final.done
    t.heartbeat("stopped", publish=False)
    status = json.loads((tmp_path / "outbox.status.json").read_text())
    assert status["state"] == "stopped" and status["frames"] == 10 and status["dropped_frames"] == 1
    outbox.close()


def test_a_live_stream_has_no_fraction():
    assert Progress(frames=100, total=None, events=3, fps=30.0).fraction is None
