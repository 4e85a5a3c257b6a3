"""When the product detector runs (`edge.schedule.DetectionSchedule`): every few frames of a hand in the shelf,
a slow refresh while something moves, never on a still picture unless a stage asks, and at most once a frame."""

import itertools

import numpy as np

from edge.classes import Action
from edge.detector import Detection
from edge.schedule import DETECT_STRIDE, DetectionSchedule
from edge.video import Frame

IMAGE = np.zeros((48, 64, 3), np.uint8)


class CountingDetector:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        return [Detection((1, 2, 3, 4), 0, "class-0", 0.9)]


def frame(index: int) -> Frame:
    return Frame(index, 1000.0 + index / 30, IMAGE)


def wanted(schedule: DetectionSchedule, frames: range, active: bool, action: int | None) -> list[int]:
    """The frames on which the schedule wants detections (and runs them, as the shelf would)."""
    out = []
    for i in frames:
        look = schedule.look(frame(i), active, action)
        if look.wanted:
            look.detections()
            out.append(i)
    return out


def test_a_hand_in_the_shelf_is_looked_at_every_few_frames_and_a_refresh_comes_slowly():
    schedule = DetectionSchedule(CountingDetector(), refresh_frames=60, sku_of={})
    # The first active frame refreshes; then every DETECT_STRIDE-th frame while a hand is in the shelf.
    assert wanted(schedule, range(1, 12), True, Action.HAND_IN_SHELF) == [1, 3, 6, 9]
    # Walking past: only the slow refresh, counted from the last detection.
    assert wanted(schedule, range(12, 200), True, Action.NO_ACTION) == [69, 129, 189]
    # A long stretch of hand in the shelf: one look every DETECT_STRIDE frames, whatever the stride is set to.
    looks = wanted(DetectionSchedule(CountingDetector(), refresh_frames=60, sku_of={}), range(0, 301), True,
                   Action.HAND_IN_SHELF)  # fmt: skip
    assert {b - a for a, b in itertools.pairwise(looks[1:])} == {DETECT_STRIDE} and len(looks) > 300 // DETECT_STRIDE


def test_a_still_picture_is_not_looked_at_unless_a_stage_asks():
    detector = CountingDetector()
    schedule = DetectionSchedule(detector, refresh_frames=10, sku_of={})
    assert wanted(schedule, range(0, 100), False, Action.HAND_IN_SHELF) == []
    look = schedule.look(frame(100), False, None)
    assert not look.wanted and not look.ran
    assert look.detections() == look.detections()  # the shelf asks twice: one run
    assert look.ran and detector.calls == 1 and schedule.runs == 1 and schedule.last_frame == 100


def test_the_store_names_the_detectors_classes():
    schedule = DetectionSchedule(CountingDetector(), refresh_frames=1, sku_of={"class-0": "cola-330"})
    [d] = schedule.look(frame(0), True, None).detections()
    assert d.sku == "cola-330" and d.box == (1, 2, 3, 4) and schedule.latest == [d]
