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


class Clock:
    """perf_counter and monotonic of a box whose camera delivers 30 frames a second."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now

    monotonic = perf_counter

    def time(self) -> float:
        return 1_800_000_000 + self.now


def test_a_paced_box_reports_the_cameras_rate_and_its_spare_capacity(tmp_path, monkeypatch):
    """At 30 fps with 8 ms of work a frame, the box is busy a quarter of the time: its processing rate (125 fps)
    says what it could do, the camera's rate and the spare share what it does."""
    import edge.telemetry

    clock = Clock()
    monkeypatch.setattr(edge.telemetry, "time", clock)
    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    t = Telemetry(Emitter("store-1", "box-a", outbox), "bundle-1", heartbeat_s=3600)
    assert t.camera_fps is None and t.busy is None  # no frame yet: nothing to say
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(90):
        started = 100.0 + i / 30
        clock.now = started + 0.008
        t.frame_done(Frame(i, i / 30, image), active=True, started=started)
    assert round(t.camera_fps, 3) == 30.0 and round(t.fps) == 125 and abs(t.busy - 0.24) < 0.01
    t.heartbeat("stopped", publish=False)
    status = json.loads((tmp_path / "outbox.status.json").read_text())
    assert (status["camera_fps"], round(status["busy"], 2), round(status["fps"])) == (30.0, 0.24, 125)
    outbox.close()


def test_a_paced_file_that_stalls_and_catches_up_still_reads_at_its_cameras_rate(tmp_path, monkeypatch):
    """A paced file source sleeps until each frame is due: after a stall the late frames come at once. The camera's
    rate is on the frames' own clock, so the burst does not read as a faster camera."""
    import edge.telemetry

    clock = Clock()
    monkeypatch.setattr(edge.telemetry, "time", clock)
    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    t = Telemetry(Emitter("store-1", "box-a", outbox), "bundle-1", heartbeat_s=3600)
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(61):
        # a stall of half a second: the 15 frames it held back come within 15 ms, then each frame when it is due
        started = 100.0 + (0.48 + i * 0.001 if i < 15 else i / 30)
        clock.now = started + 0.001
        t.frame_done(Frame(i, 1_700_000_000 + i / 30, image), active=True, started=started)
    arrivals = (len(t.arrivals) - 1) / (t.arrivals[-1] - t.arrivals[0])
    assert arrivals > 39 and round(t.camera_fps, 6) == 30.0  # by arrival it would say 39.5 fps
    outbox.close()
