"""Each measure on a case small enough to compute by hand (the arithmetic is in the comments)."""

import numpy as np
import pytest

from edge.segments import ActionSegment, segment_scores, segments_to_frames
from training.metrics import (
    average_precision,
    confusion_matrix,
    detection_map,
    edit_score,
    f1_at,
    frame_accuracy,
    midpoint_hit,
    per_class_scores,
    segment_report,
)

#                  0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
TRUTH = np.array([0, 0, 1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 2, 2, 0, 0])
PRED = np.array([0, 0, 0, 1, 1, 1, 1, 0, 2, 2, 2, 3, 3, 2, 0, 0])


def test_frame_accuracy_and_confusion_matrix():
    assert frame_accuracy(TRUTH, PRED) == 12 / 16  # frames 2, 6, 11 and 12 are wrong
    m = confusion_matrix(TRUTH, PRED)
    assert m[0, 0] == 5 and m[0, 1] == 1  # true no-action frames: five right, frame 6 called a reach
    assert m[1, 0] == 1 and m[1, 1] == 3
    assert m[2, 2] == 4 and m[2, 3] == 2
    assert m.sum() == 16


def test_per_class_precision_recall_f1_and_macro_f1():
    s = per_class_scores(TRUTH, PRED)
    assert s.precision[:4] == pytest.approx([5 / 6, 3 / 4, 1.0, 0.0])
    assert s.recall[:4] == pytest.approx([5 / 6, 3 / 4, 4 / 6, 0.0])
    assert s.f1[2] == pytest.approx(0.8)  # 2 * 1 * (2/3) / (5/3)
    # Class 3 never occurs in the truth, so it does not count in the macro average.
    assert s.macro_f1 == pytest.approx((5 / 6 + 3 / 4 + 0.8) / 3)


def test_edit_score_compares_segment_orders():
    # Truth segments: reach, retract. Predicted: reach, retract, hand-in-shelf, retract: two insertions.
    assert edit_score(TRUTH, PRED) == pytest.approx(100 * (1 - 2 / 4))
    assert edit_score(TRUTH, TRUTH) == 100.0


def test_f1_at_overlap_thresholds():
    # Predicted (1, 3-7) has IoU 3/5 with (1, 2-6); (2, 8-11) IoU 3/6 with (2, 8-14); (3, 11-13) has no
    # partner; (2, 13-14) overlaps (2, 8-14) but that one is already claimed: TP 2, FP 2, FN 0 -> F1 2/3.
    for k in (0.10, 0.25, 0.50):
        assert f1_at(TRUTH, PRED, k) == pytest.approx(200 / 3)
    short = np.array([0, 0, 0, 1, 1, 1, 1, 0, 2, 2, 0, 0, 0, 0, 0, 0])
    assert f1_at(TRUTH, short, 0.25) == pytest.approx(100.0)  # (2, 8-10) has IoU 2/6 = 0.33
    assert f1_at(TRUTH, short, 0.50) == pytest.approx(50.0)  # ... which fails 0.5: P = R = 1/2


def test_average_precision_over_a_ranked_list():
    truth = [(0, 10), (20, 30)]
    # By score: hit (P 1, R .5), miss (P .5), hit (P 2/3, R 1). Envelope: 1 for the first half of recall,
    # 2/3 for the second -> AP = 0.5 * 1 + 0.5 * 2/3.
    detections = [(0, 10, 0.9), (40, 50, 0.8), (21, 30, 0.7)]
    assert average_precision(truth, detections, 0.5) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(truth, detections, 0.95) == pytest.approx(0.5)  # (21, 30) has IoU 0.9
    assert average_precision(truth, [], 0.5) == 0.0


def test_detection_map_averages_the_classes_that_occur():
    truth = [(1, 0, 10), (1, 20, 30), (4, 40, 60)]
    detections = [
        ActionSegment(1, 0, 10, 0.9),
        ActionSegment(1, 40, 50, 0.8),
        ActionSegment(1, 21, 30, 0.7),
        ActionSegment(4, 41, 60, 0.6),
        ActionSegment(5, 0, 5, 0.99),
    ]
    assert detection_map(truth, detections, 0.5) == pytest.approx(((0.5 + 0.5 * 2 / 3) + 1.0) / 2)


def test_perfect_scores_through_the_shared_segmenter_score_perfectly():
    truth = np.array([0] * 20 + [5] * 40 + [1] * 10 + [3] * 15 + [2] * 10 + [4] * 30 + [0] * 10)
    scores = np.eye(6)[truth]
    detections = segment_scores(scores, window=1, min_frames=1)
    pred = segments_to_frames(detections, truth.size)
    report = segment_report(truth, pred, [d for d in detections if d.label])
    assert report["frame_accuracy"] == 1.0 and report["edit"] == 100.0
    assert report["f1@50"] == 100.0 and report["map@0.5"] == 1.0 and report["macro_f1"] == 1.0
    assert report["map@mid"] == 1.0 and report["precision/inspect_shelf"] == 1.0 and report["recall/no_action"] == 1.0


def test_midpoint_hit_is_merls_rule_in_our_frames():
    truth = [(10, 20)]  # frames 10-19; MERL's [11, 20]
    # [4, 16): frames 4-15, midpoint 9.5: outside (MERL: [5, 16], midpoint 10.5, not in [11, 20]).
    assert midpoint_hit((4, 16), truth, [False]) == -1
    # [4, 17): midpoint 10.0, the first true frame: a hit although the IoU is only 6/13.
    assert midpoint_hit((4, 17), truth, [False]) == 0
    assert midpoint_hit((19, 20), truth, [False]) == 0  # one frame, the last true one
    assert midpoint_hit((19, 22), truth, [False]) == -1  # midpoint 20.0: one past the end
    assert midpoint_hit((12, 14), truth, [True]) == -1  # each true segment is found once
    assert midpoint_hit((30, 34), [(10, 20), (28, 40)], [True, False]) == 1


def test_midpoint_average_precision_by_hand():
    truth = [(0, 10), (20, 30), (50, 60)]
    detections = [
        (2, 40, 0.9),  # midpoint 20.5: inside (20, 30) -> hit although it covers far more (IoU 10/38)
        (0, 4, 0.8),  # midpoint 1.5: inside (0, 10) -> hit
        (22, 26, 0.7),  # midpoint 23.5: (20, 30) already found -> false positive
        (45, 50, 0.6),  # midpoint 47: in nothing -> false positive
        (55, 70, 0.5),  # midpoint 62: past (50, 60) -> false positive
    ]
    # Ranked: hit (P 1, R 1/3), hit (P 1, R 2/3), miss, miss, miss; the third truth is never found.
    # Envelope 1 over recall 0-2/3 -> AP 2/3. By temporal IoU no detection reaches 0.5 (the best are
    # (0, 4) and (22, 26), 0.4 each): AP 0.
    assert average_precision(truth, detections, midpoint_hit) == pytest.approx(2 / 3)
    assert average_precision(truth, detections, 0.5) == 0.0
    # Scores reversed: miss, miss, (22, 26) now finds (20, 30) first (P 1/3, R 1/3), (0, 4) hits (P 2/4,
    # R 2/3), (2, 40) lands in the found (20, 30): a miss. Envelope 1/2 over recall 0-2/3 -> AP 1/3.
    reordered = [(s, e, 1 - c) for s, e, c in detections]
    assert average_precision(truth, reordered, midpoint_hit) == pytest.approx(1 / 3)


def test_midpoint_map_averages_the_classes_that_occur():
    truth = [(1, 0, 10), (4, 20, 40)]
    detections = [ActionSegment(1, 6, 30, 0.9), ActionSegment(4, 0, 21, 0.8), ActionSegment(4, 30, 35, 0.7)]
    # Reach: midpoint 17.5, outside (0, 10): AP 0. Inspect product: midpoint 10 misses, then 32 hits:
    # P 1/2 at R 1 -> AP 1/2. The mean over the two classes that occur: 1/4.
    assert detection_map(truth, detections, midpoint_hit) == pytest.approx(0.25)
