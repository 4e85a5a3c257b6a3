"""Actions over a gated stream (`edge.action.ActionStream`) with the shipped model: frames are scored while the
motion gate is open, a closed gate or lost frames close the running segment, and nothing is scored meanwhile."""

import numpy as np

from edge.action import ActionRecognizer, ActionStream
from edge.bundle import load_bundle
from edge.segments import Segmenter
from edge.video import Frame
from tests.edge.test_agent_delivery import DEMO_BUNDLE


def stream() -> ActionStream:
    return ActionStream(ActionRecognizer(load_bundle(DEMO_BUNDLE), DEMO_BUNDLE, threads=1), Segmenter())


def frames(start: int, n: int, after_gap: bool = False) -> list[Frame]:
    rng = np.random.default_rng(start)
    return [Frame(i, i / 30, rng.integers(0, 255, (480, 640, 3), np.uint8), after_gap and i == start)
            for i in range(start, start + n)]  # fmt: skip


def test_frames_are_scored_only_while_the_gate_is_open_and_segments_cover_what_was_scored():
    actions = stream()
    closed = []
    for f in frames(0, 5):
        closed += actions.update(f, active=False)
        assert actions.label is None  # nothing scored
    delay = actions.delay
    for f in frames(5, 30):
        closed += actions.update(f, active=True)
    assert actions.label is not None  # scoring, after the model's delay
    for f in frames(35, 5):
        closed += actions.update(f, active=False)
    assert actions.label is None
    # The scored frames 5..34 are covered exactly, by one or more segments, whatever the model called them.
    covered = sorted(i for seg in closed for i in range(seg.start, seg.end))
    assert covered == list(range(5, 35)) and delay >= 0


def test_lost_frames_close_the_running_segment_and_scoring_starts_afresh():
    actions = stream()
    closed = []
    for f in frames(0, 30):
        closed += actions.update(f, active=True)
    # The source lost frames before frame 30 (frame indices count the frames handed out, so they go on).
    closed += actions.update(frames(30, 1, after_gap=True)[0], active=True)
    assert closed and max(seg.end for seg in closed) == 30  # what ran before the loss is closed
    assert actions.delay > 0 and actions.label is None  # the LSTM starts afresh: its delay passes first


def test_a_still_picture_carries_on_the_action_seen_before_it_for_a_while():
    actions = ActionStream(ActionRecognizer(load_bundle(DEMO_BUNDLE), DEMO_BUNDLE, threads=1), Segmenter(),
                           still_frames=20)  # fmt: skip
    closed = []
    for f in frames(0, 30):
        closed += actions.update(f, active=True)
    label = actions.label
    for f in frames(30, 15):  # the gate closes: nothing moves, the shopper still stands there
        closed += actions.update(f, active=False)
        assert actions.label == label  # carried on, not scored
    for f in frames(45, 20):  # still for longer than 20 frames: the segment closes
        closed += actions.update(f, active=False)
    assert actions.label is None
    covered = sorted(i for seg in closed for i in range(seg.start, seg.end))
    assert covered == list(range(50))  # 30 frames scored and 20 carried on; the rest is a gap
