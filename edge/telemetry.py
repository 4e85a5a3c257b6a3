"""How the agent is doing, on the side of the frame's way: per-frame time, frames lost, the status heartbeat
(to the broker, and beside the outbox for the container's health check) and a progress hook for whoever
watches a run (the CLI's progress line, a web worker's progress bar)."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edge.emitter import Emitter
from edge.video import Frame

PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class Progress:
    frames: int  # frames done
    total: int | None  # frames the run will take (a file's length, or --max-frames); None for a live stream
    events: int  # events emitted so far
    fps: float  # recent frames per second
    done: bool = False  # the last report of the run

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.frames / self.total) if self.total else None


class Telemetry:
    def __init__(
        self, emitter: Emitter, bundle_id: str, heartbeat_s: float, total: int | None = None,
        on_progress: Callable[[Progress], None] | None = None, bundle_key: str | None = None,
    ) -> None:  # fmt: skip
        self.emitter, self.bundle_id, self.heartbeat_s = emitter, bundle_id, heartbeat_s
        self.bundle_key = bundle_key  # the trusted key that signed the bundle; None: its signature was not checked
        self.total, self.on_progress = total, on_progress
        self.extra_status: Callable[[], dict] | None = None  # more status fields (the uplink's)
        # The familiarity guard's share of the last minute's frames that were unfamiliar (None: no guard)
        self.unfamiliar_share: Callable[[float | None], float | None] | None = None
        self.source_ts: float | None = None  # the latest frame's time on the source's clock
        self.reconnects = 0  # failed attempts to reach the camera
        self.frames = 0
        self.active_frames = 0
        self.dropped = 0  # frames after which the source lost some
        self.latencies: deque[float] = deque(maxlen=300)  # ms per frame
        self.recent: deque[float] = deque(maxlen=60)  # seconds per frame
        self.arrivals: deque[float] = deque(maxlen=61)  # when the last frames came in (perf_counter)
        self.stamps: deque[float] = deque(maxlen=61)  # the times the last frames show, on the source's clock
        self.next_status = time.monotonic()
        self.next_progress = time.monotonic()
        self.started = time.perf_counter()
        self.last_frame_at: float | None = None  # wall-clock time the latest frame was done (a switch's cost)

    @property
    def fps(self) -> float:
        """Recent frames per second (the last 60 frames' processing time)."""
        return len(self.recent) / max(1e-9, sum(self.recent)) if self.recent else 0.0

    @property
    def camera_fps(self) -> float | None:
        """The camera's rate over the last 60 frames, on the source's clock (a live camera's frames are timed as they
        arrive, a file's by its own rate). Not by when the box got them: a paced file that stalls catches up in a
        burst, which would read as a faster camera."""
        if len(self.stamps) < 2 or self.stamps[-1] <= self.stamps[0]:
            return None
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])

    @property
    def busy(self) -> float | None:
        """The share of the time between frames spent working on them (the last 60): 1 - busy is the spare
        capacity a paced box has for a bigger model or a second camera."""
        if len(self.arrivals) < 2 or self.arrivals[-1] <= self.arrivals[0]:
            return None
        work = sum(list(self.recent)[-(len(self.arrivals) - 1) :])
        return min(1.0, work / (self.arrivals[-1] - self.arrivals[0]))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def frame_done(self, frame: Frame, active: bool, started: float) -> None:
        """A frame went all the way through (`started`: its `time.perf_counter()` when it came in)."""
        took = time.perf_counter() - started
        self.last_frame_at = time.time()
        self.frames += 1
        self.source_ts = frame.ts
        self.active_frames += active
        self.dropped += frame.after_gap
        self.latencies.append(took * 1000)
        self.recent.append(took)
        self.arrivals.append(started)
        self.stamps.append(frame.ts)
        self.tick()
        now = time.monotonic()
        if self.on_progress is not None and now >= self.next_progress:
            self.on_progress(self.progress())
            self.next_progress = now + PROGRESS_EVERY_S

    def tick(self) -> None:
        """The heartbeat, when it is due: after each frame, and every moment while the camera is unreachable."""
        now = time.monotonic()
        if now >= self.next_status:
            self.heartbeat("running")
            self.next_status = now + self.heartbeat_s

    def progress(self, done: bool = False) -> Progress:
        return Progress(self.frames, self.total, sum(self.emitter.counts.values()), round(self.fps, 1), done)

    def heartbeat(self, state: str, publish: bool = True) -> bytes:
        share = self.unfamiliar_share(self.source_ts) if self.unfamiliar_share is not None else None
        return self.emitter.status(
            state, fps=round(self.fps, 2), latency_ms=round(statistics.median(self.latencies), 3) if self.latencies
            else 0.0, frames=self.frames, dropped_frames=self.dropped, motion_skip=round(self.motion_skip, 4),
            source_reconnects=self.reconnects, bundle_id=self.bundle_id, bundle_key=self.bundle_key, publish=publish,
            unfamiliar_share=None if share is None else round(share, 4),
            camera_fps=None if self.camera_fps is None else round(self.camera_fps, 2),
            busy=None if self.busy is None else round(self.busy, 4),
            **(self.extra_status() if self.extra_status is not None else {}),
        )  # fmt: skip

    @property
    def motion_skip(self) -> float:
        return 1 - self.active_frames / self.frames if self.frames else 0.0
