"""Item counting at the shelf: what left it and what came back, per SKU.

Each shelf zone is recounted with the product detector once it has been quiet for a moment after
activity (a hand in the shelf): the median of a few detections, per SKU, against the last settled count.
One fewer SKU X on the shelf is a pick of X, one more is a put-back. Counting the shelf at rest is what
makes this robust: hands, arms and motion blur never hide products while the count is taken, and a
product seen in a hand only has to be recognised on the shelf, where the detector sees it best.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.config import Zone
from edge.detector import Detection
from edge.scene import Foreground

SAMPLES = 3  # detections per recount
SPACING = 3  # frames between them


@dataclass(frozen=True)
class ShelfChange:
    kind: Literal["pick", "putback"]
    sku: str
    quantity: int
    zone: str
    x: float | None  # where along the shelf the activity was (frame pixels)
    y: float  # the zone's front edge (its lowest point in the picture)
    frame: int
    confidence: float


@dataclass
class _ZoneState:
    zone: Zone
    settled: Counter | None = None
    confidence: dict[str, float] = field(default_factory=dict)
    disturbed: bool = False
    touched: bool = False  # a hand was recognised at the shelf during this disturbance
    quiet: int = 0
    activity_x: list[float] = field(default_factory=list)
    samples: list[Counter] = field(default_factory=list)
    sample_conf: list[dict[str, float]] = field(default_factory=list)


class ShelfCounter:
    def __init__(self, zones: list[Zone], quiet_frames: int, motion_fraction: float, min_confidence: float) -> None:
        self.states = [_ZoneState(z) for z in zones]
        self.quiet_frames, self.motion_fraction, self.min_confidence = quiet_frames, motion_fraction, min_confidence
        self.contours = {z.name: np.array(z.polygon, np.float32) for z in zones}

    def observe(self, fg: Foreground, busy: bool = False) -> bool:
        """Follow each zone's activity; True when a recount wants a detection on this frame.

        `busy`: the action model sees a hand at or in the shelf (reach, hand in shelf, retract). A still hand
        inside a shelf is only a few pixels of motion, so the recognised action keeps a recount from
        counting around it.
        """
        want = False
        for s in self.states:
            name = s.zone.name
            if busy or fg.zones.get(name, 0.0) > self.motion_fraction:
                s.disturbed, s.quiet = True, 0
                s.touched = s.touched or busy
                s.samples.clear()
                s.sample_conf.clear()
                if fg.zone_x.get(name) is not None:
                    s.activity_x.append(fg.zone_x[name])
                continue
            s.quiet += 1
            due = s.quiet >= self.quiet_frames and (s.quiet - self.quiet_frames) % SPACING == 0
            if due and (s.settled is None or s.disturbed) and len(s.samples) < SAMPLES:
                want = True
        return want

    def inside(self, zone: str, d: Detection) -> bool:
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        return cv2.pointPolygonTest(self.contours[zone], (float(cx), float(cy)), False) >= 0

    def counted(self, frame: int, detections: list[Detection]) -> list[ShelfChange]:
        """A detection made on a frame `observe` asked for; returns the changes it settles."""
        changes: list[ShelfChange] = []
        for s in self.states:
            ready = s.quiet >= self.quiet_frames and (s.settled is None or s.disturbed) and len(s.samples) < SAMPLES
            if not ready:
                continue
            mine = [d for d in detections if d.confidence >= self.min_confidence and self.inside(s.zone.name, d)]
            s.samples.append(Counter(d.sku for d in mine))
            conf: dict[str, list[float]] = {}
            for d in mine:
                conf.setdefault(d.sku, []).append(d.confidence)
            s.sample_conf.append({k: float(np.mean(v)) for k, v in conf.items()})
            if len(s.samples) == SAMPLES:
                changes += self._settle(s, frame)
        return changes

    def _settle(self, s: _ZoneState, frame: int) -> list[ShelfChange]:
        skus = set().union(*s.samples)
        now = Counter({k: int(np.median([c[k] for c in s.samples])) for k in skus})
        # How sure: the detector's confidence on the SKU, times how many samples agreed on the count.
        conf = {k: float(np.mean([c.get(k, 0.0) for c in s.sample_conf])) for k in skus}
        changes = []
        # Only a recognised hand at the shelf takes or returns products; without one (a passer-by's shadow, a
        # flicker of the lamp) a different count is the detector's noise, and the count stays as it was.
        # A count the samples do not all agree on stays as it was too.
        if s.settled is not None and not s.touched:
            now = s.settled
        elif s.settled is not None:
            now = Counter({k: now[k] if all(c[k] == now[k] for c in s.samples) else s.settled[k]
                           for k in skus | set(s.settled)})  # fmt: skip
        if s.settled is not None:
            x = float(np.median(s.activity_x)) if s.activity_x else None
            for sku in sorted(skus | set(s.settled)):
                delta = now[sku] - s.settled[sku]
                if delta == 0:
                    continue
                agree = np.mean([c[sku] == now[sku] for c in s.samples])
                base = conf.get(sku) or s.confidence.get(sku, 0.5)
                changes.append(ShelfChange("pick" if delta < 0 else "putback", sku, abs(delta), s.zone.name, x,
                                           max(p[1] for p in s.zone.polygon), frame,
                                           float(np.clip(base * agree, 0, 1))))  # fmt: skip
        s.settled, s.disturbed, s.touched = +now, False, False
        s.confidence = {**s.confidence, **conf}
        s.activity_x.clear()
        s.samples.clear()
        s.sample_conf.clear()
        return changes

    def finish(self, frame: int, detections: list[Detection]) -> list[ShelfChange]:
        """The stream ends: a zone still waiting to be recounted after a hand was at the shelf is counted once
        on the last frame (a file may end before the shelf has been quiet long enough)."""
        changes: list[ShelfChange] = []
        for s in self.states:
            if s.settled is None or not (s.disturbed and s.touched):
                continue
            mine = [d for d in detections if d.confidence >= self.min_confidence and self.inside(s.zone.name, d)]
            s.samples = [Counter(d.sku for d in mine)]
            s.sample_conf = [{d.sku: d.confidence for d in mine}]
            changes += self._settle(s, frame)
        return changes

    def counts(self) -> dict[str, Counter]:
        return {s.zone.name: s.settled or Counter() for s in self.states}
