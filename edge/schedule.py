"""When the product detector runs: only when it matters, since it costs more than everything else on a frame.

While something moves it runs on every DETECT_STRIDE-th frame of a hand in the shelf, a retract or an inspection
(the product in the hand matters then) and refreshes every `refresh_frames`; a shelf recount asks for it on the
frames it needs (`Look.detections`). Each frame's detections are computed at most once, whoever asks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from edge.classes import Action
from edge.detector import Detection
from edge.video import Frame

# Actions during which the products in hands matter enough to detect on every few frames.
DETECT_DURING = {Action.HAND_IN_SHELF, Action.RETRACT_FROM_SHELF, Action.INSPECT_PRODUCT}
DETECT_STRIDE = 3
TAIL_FRAMES = 7  # kept for a recount when the stream ends: three samples three frames apart (edge.shelf)
HISTORY = 300  # detection runs remembered (about ten seconds of a hand at the shelf): what a closing action held


class Look:
    """One frame's product detections: `wanted` by the schedule, or asked for by a stage that needs them. `image`:
    the frame itself (BGR), where the shelf's look at rest is compared with the last recount's (edge.shelf)."""

    def __init__(self, detect: Callable[[], list[Detection]], wanted: bool, image: np.ndarray | None = None) -> None:
        self._detect, self.wanted, self.image = detect, wanted, image
        self._detections: list[Detection] | None = None

    def detections(self) -> list[Detection]:
        if self._detections is None:
            self._detections = self._detect()
        return self._detections

    @property
    def ran(self) -> bool:
        return self._detections is not None


class DetectionSchedule:
    def __init__(
        self, detector: Callable[[np.ndarray], list[Detection]], refresh_frames: int, sku_of: dict[str, str]
    ) -> None:
        self.detector, self.refresh_frames, self.sku_of = detector, refresh_frames, sku_of
        self.last_frame = -(10**9)
        self.latest: list[Detection] = []  # the most recent detections, for the annotated video
        self.history: deque[tuple[int, list[Detection]]] = deque(maxlen=HISTORY)  # (frame, detections), in order
        self.runs = 0
        self.recent: deque[np.ndarray] = deque(maxlen=TAIL_FRAMES)  # the last frames, for a count at the very end

    def look(self, frame: Frame, active: bool, action: int | None) -> Look:
        self.recent.append(frame.image)
        during = active and action in DETECT_DURING and frame.index % DETECT_STRIDE == 0
        periodic = active and frame.index - self.last_frame >= self.refresh_frames
        return Look(lambda: self._run(frame), wanted=during or periodic, image=frame.image)

    def _run(self, frame: Frame) -> list[Detection]:
        self.latest = self.detect(frame.image)
        self.last_frame = frame.index
        self.history.append((frame.index, self.latest))
        self.runs += 1
        return self.latest

    def last_frames(self, samples: int, spacing: int) -> list[np.ndarray]:
        """The last frames seen, `spacing` apart, newest last (fewer where the stream was shorter)."""
        return list(self.recent)[::-1][::spacing][:samples][::-1]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections with the box config's SKU names (a store names the detector's classes its own way)."""
        found = self.detector(image)
        if not self.sku_of:
            return found
        return [Detection(d.box, d.class_index, self.sku_of.get(d.sku, d.sku), d.confidence) for d in found]

    def between(self, start: int, end: int) -> list[tuple[int, list[Detection]]]:
        """The detections made on frames [start, end), oldest first."""
        return [(i, ds) for i, ds in self.history if start <= i < end]
