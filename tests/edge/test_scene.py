"""Shoppers as foreground blobs (`edge.scene.ShopperTracker`): one shopper stays one basket while their
blob splits, what a shopper leaves behind does not hold them open, and a shopper who walks out leaves."""

import numpy as np

from edge.scene import MASK_SIZE, ShopperTracker

W, H = MASK_SIZE  # the mask: 160 x 120
FRAME = (640, 480)
AISLE = np.zeros((H, W), bool)
AISLE[44:, :] = True  # the shelf is the top 36% of the picture


def mask(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    for x1, y1, x2, y2 in boxes:
        m[y1:y2, x1:x2] = 255
    return m


def run(tracker: ShopperTracker, frames: list[np.ndarray], t0: float, fps: float = 30.0, moving: bool = True):
    """Feed masks one per frame; returns (time after the last frame, shoppers that left on the way)."""
    left = []
    for i, m in enumerate(frames):
        left += tracker.update(m, t0 + i / fps, m > 0 if moving else np.zeros_like(m, bool))
    return t0 + len(frames) / fps, left


def test_a_blob_that_splits_off_a_shopper_is_still_that_shopper():
    tracker = ShopperTracker(FRAME, AISLE, gone_s=1.0)
    t, _ = run(tracker, [mask((60, 60, 80, 100))] * 10, 0.0)  # one shopper with their cart
    # The shopper steps towards the shelf; the cart stays behind, a separate blob a little apart.
    t, left = run(tracker, [mask((60, 46, 80, 66), (60, 84, 80, 104))] * 10, t)
    assert left == [] and {s.id for s in tracker.tracks.values()} == {1} and len(tracker.tracks) == 2
    t, left = run(tracker, [mask()] * 40, t)  # both gone
    assert left == [1]


def test_someone_appearing_far_away_is_another_shopper():
    tracker = ShopperTracker(FRAME, AISLE, gone_s=1.0)
    t, _ = run(tracker, [mask((20, 60, 40, 100))] * 5, 0.0)
    run(tracker, [mask((20, 60, 40, 100), (120, 60, 140, 100))] * 5, t)
    assert sorted(s.id for s in tracker.tracks.values()) == [1, 2]


def test_a_blob_on_which_nothing_moves_stops_holding_a_shopper_open():
    tracker = ShopperTracker(FRAME, AISLE, gone_s=1.0, still_s=2.0)
    t, _ = run(tracker, [mask((60, 60, 80, 100))] * 10, 0.0)
    # What the slow background model still shows after the shopper walked away: nothing moves on it.
    t, left = run(tracker, [mask((60, 60, 80, 100))] * 30, t, moving=False)
    assert left == []
    t, left = run(tracker, [mask((60, 60, 80, 100))] * 40, t, moving=False)
    assert left == [1] and tracker.tracks == {}


def test_a_shopper_who_walks_out_at_the_edge_leaves_at_once_and_the_next_one_is_new():
    tracker = ShopperTracker(FRAME, AISLE, gone_s=4.0)
    t, _ = run(tracker, [mask((x, 60, x + 20, 100)) for x in range(40, -1, -4)], 0.0)  # walks to the left edge
    t, left = run(tracker, [mask()] * 12, t)  # 0.4 s: far less than gone_s
    assert left == [1]
    run(tracker, [mask((0, 60, 20, 100))] * 3, t)  # someone walks in where the first walked out
    assert [s.id for s in tracker.tracks.values()] == [2]


def test_the_shopper_reaching_closest_to_the_touched_shelf_is_nearest():
    tracker = ShopperTracker(FRAME, AISLE)
    run(tracker, [mask((20, 46, 40, 90), (110, 70, 130, 110))] * 3, 0.0)  # one at the shelf, one further back
    ids = {round(s.centre[0] / 4): s.id for s in tracker.tracks.values()}
    assert tracker.nearest(120 * 4, 172).id == ids[120]  # the shelf touched in front of the one further back
    assert tracker.nearest(30 * 4, 172).id == ids[30]
    assert tracker.nearest(None).id in ids.values()


def test_the_motion_gate_stays_open_a_while_after_the_last_motion():
    from edge.scene import Foreground, MotionGate

    def fg(moving: float) -> Foreground:
        return Foreground(np.zeros((H, W), np.uint8), moving, {}, {}, {}, np.zeros((H, W), bool))

    gate = MotionGate(threshold=0.01, hold_frames=3)
    opened = [gate.update(i, fg(0.05 if i in (2, 10) else 0.0)) for i in range(16)]
    assert [i for i, o in enumerate(opened) if o] == [2, 3, 4, 5, 10, 11, 12, 13]
