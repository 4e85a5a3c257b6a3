"""Box geometry (`edge.geometry`): every pair of two box sets at once, checked against values worked by hand."""

import numpy as np

from edge.geometry import iou, overlap_of_smaller, suppress_overlaps


def test_iou_of_every_pair():
    a = [(0, 0, 10, 10), (20, 20, 30, 30)]
    b = [(5, 0, 15, 10), (0, 0, 10, 10), (100, 100, 110, 110)]
    # (0,0,10,10) vs (5,0,15,10): 50 in common, 150 in all.
    np.testing.assert_allclose(iou(a, b), [[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_a_small_box_inside_a_large_one_overlaps_fully_but_has_a_small_iou():
    big, small = (0, 0, 100, 100), (10, 10, 20, 20)
    assert overlap_of_smaller([big], [small])[0, 0] == 1.0
    assert abs(iou([big], [small])[0, 0] - 100 / 10000) < 1e-12


def test_empty_sets_give_empty_matrices():
    assert iou([], [(0, 0, 1, 1)]).shape == (0, 1)
    assert overlap_of_smaller([(0, 0, 1, 1)], []).shape == (1, 0)


def test_a_degenerate_box_divides_by_no_zero():
    assert iou([(5, 5, 5, 5)], [(5, 5, 5, 5)])[0, 0] == 0.0


def test_suppression_keeps_the_most_confident_of_overlapping_boxes():
    boxes = [(0, 0, 10, 10), (5, 0, 15, 10), (40, 0, 50, 10), (2, 2, 8, 8)]
    scores = [0.6, 0.9, 0.5, 0.7]
    # 0.9 first; boxes 0 and 3 each overlap it by half of themselves (box 3: 3 x 6 of its 36); box 2 is apart.
    assert suppress_overlaps(boxes, scores, 0.3) == [1, 2]
    # Above half, box 3 stays and box 0, which holds all of box 3, goes.
    assert suppress_overlaps(boxes, scores, 0.6) == [1, 3, 2]
