"""Shoppers as foreground blobs (`edge.scene.ShopperTracker`): one shopper stays one basket while their
blob splits, what a shopper leaves behind does not hold them open, and a shopper who walks out leaves."""

import numpy as np

from edge.scene import MASK_SIZE, MotionWatcher, QuietWatch, ShopperTracker

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
    t, left = run(tracker, [mask()] * 40, t)  # both gone from the middle of the picture: dormant, not left
    assert left == [] and tracker.tracks == {} and tracker.present == {1}
    t, left = run(tracker, [mask()] * round(30 * tracker.dormant_s), t)  # and never seen again
    assert left == [1]


def test_a_shopper_the_background_swallowed_gets_their_id_back_when_they_move_again():
    """A shopper standing still at the shelf is learned by the background model and their blob vanishes in the
    middle of the picture; when they move again, a blob appears where they stood: the same shopper (the demo's one
    shopper was "shopper 2"), who never left in between."""
    tracker = ShopperTracker(FRAME, AISLE, gone_s=4.0)
    t, _ = run(tracker, [mask((x, 60, x + 20, 100)) for x in range(0, 61, 4)], 0.0)  # walks in from the left edge
    t, left = run(tracker, [mask((60, 60, 80, 100))] * 30, t)
    assert [s.id for s in tracker.tracks.values()] == [1]
    # 10 s standing still, learned into the background, while someone else browses further along the shelf
    t, left = run(tracker, [mask((130, 60, 150, 100))] * 300, t)
    assert left == [] and [s.id for s in tracker.tracks.values()] == [2] and tracker.present == {1, 2}
    assert tracker.nearest(70 * 4, 172).id == 2  # a hand in the shelf moves: the one who moves reached
    t, left = run(tracker, [mask((62, 58, 82, 98), (130, 60, 150, 100))] * 10, t)  # reaches for the shelf
    assert left == [] and sorted(s.id for s in tracker.tracks.values()) == [1, 2]


def test_a_still_shopper_at_the_picture_s_edge_has_not_walked_out():
    """The demo's shopper stands at the left edge of the picture: their blob touches it while the background model
    learns them, and a passer-by walks by below. Only someone moving when their blob is lost at the edge has walked
    out; the still one is the same shopper when they reach into the shelf again, and the passer-by stays themselves."""
    tracker = ShopperTracker(FRAME, AISLE, gone_s=4.0)
    t, _ = run(tracker, [mask((0, 60, 16, 80))] * 10, 0.0)  # walked in at the edge, stands there
    t, _ = run(tracker, [mask((0, 60, 16, 80))] * 60, t, moving=False)  # still: nothing moves on the blob
    walker = [mask((x, 110, x + 12, H)) for x in range(0, 60, 2)]
    for m in walker[:5]:  # a passer-by walks in: only they move
        tracker.update(m | mask((0, 60, 16, 80)), t, m > 0)
        t += 1 / 30
    t, left = run(tracker, walker[5:], t)  # the shopper fades into the background
    assert left == [] and tracker.present == {1, 2}
    t, left = run(tracker, [mask((0, 56, 18, 84), (60 + x, 110, 72 + x, H)) for x in range(0, 20, 2)], t)  # reaches
    assert left == [] and sorted((s.id, s.centre[1] < 90 * 4) for s in tracker.tracks.values()) == [
        (1, True),  # at the shelf
        (2, False),  # walking by behind
    ]


def test_a_dormant_shopper_is_not_someone_appearing_elsewhere_and_leaves_after_dormant_s():
    tracker = ShopperTracker(FRAME, AISLE, gone_s=1.0, dormant_s=5.0)
    t, _ = run(tracker, [mask((20, 60, 40, 100))] * 10, 0.0)
    t, left = run(tracker, [mask()] * 60, t)  # vanished mid-picture: dormant
    assert left == [] and tracker.present == {1}
    assert tracker.nearest(30 * 4, 172).id == 1  # still there, and nobody else is
    t, left = run(tracker, [mask((120, 60, 140, 100))] * 10, t)  # someone across the aisle: a new shopper
    assert left == [] and [s.id for s in tracker.tracks.values()] == [2] and tracker.present == {1, 2}
    t, left = run(tracker, [mask((120, 60, 140, 100))] * 120, t)  # 5 s after shopper 1 was last seen
    assert left == [1] and tracker.present == {2}


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


def test_a_snapshot_picture_is_quiet_only_after_learning_and_while_nobody_moves():
    """The frame a snapshot is taken on (`QuietWatch`, from the real foreground masks): never among the first
    frames (the background model takes whoever stands there for background), never while someone walks, and soon
    once the aisle is empty."""
    rng = np.random.default_rng(3)
    floor = rng.integers(90, 110, (480, 640, 3), dtype=np.uint8)
    watcher, quiet = MotionWatcher(FRAME, []), QuietWatch(warmup=60, hold=15)
    answers = []
    for i in range(200):
        frame = floor.copy()
        if 80 <= i < 140:  # someone walks across the aisle
            x = 40 + (i - 80) * 9
            frame[200:330, x : x + 70] = 30
        answers.append(quiet.update(watcher.update(frame)))
    assert not any(answers[:60])  # learning: not even for an empty picture
    assert all(answers[75:80])  # empty and warm (positive control)
    assert not any(answers[80:140])  # someone in view
    assert any(answers[150:200])  # empty again


def test_a_picture_that_changes_as_a_whole_is_nobody_and_the_first_shopper_is_shopper_1():
    """A camera's first frame (the background model has not learnt anything yet) or the light switching: the whole
    aisle is foreground at once. Nobody is followed in it, so no shopper box sits on an empty floor and the first
    real shopper is shopper 1."""
    tracker = ShopperTracker(FRAME, AISLE, gone_s=1.0)
    t, left = run(tracker, [mask((0, 44, W, H))] * 2, 0.0)  # the whole aisle
    assert tracker.tracks == {} and left == []
    run(tracker, [mask((60, 60, 80, 100))] * 5, t)  # then someone walks in
    assert [s.id for s in tracker.tracks.values()] == [1]
    run(tracker, [mask((0, 44, W, H))] * 2, t + 1)  # the light changes while they are there: they stay themselves
    run(tracker, [mask((62, 60, 82, 100))] * 5, t + 1.2)
    assert [s.id for s in tracker.tracks.values()] == [1]
