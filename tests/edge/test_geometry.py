"""Geometry (`edge.geometry`): every pair of two box sets at once, checked against values worked by hand; and the
polygons an installer draws (self-crossing, bounds, overlaps, slots), which the box config and the zone editor
share."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from edge.config import BoxConfig
from edge.geometry import (
    iou,
    layout_problems,
    overlap_of_smaller,
    polygon_problem,
    polygons_overlap,
    self_crossing,
    suppress_overlaps,
)


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


# -- polygons: what makes a drawn layout valid ---------------------------------------------------------------------

SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]


def zone(name: str, polygon: list, slots: list | None = None) -> SimpleNamespace:
    """A zone as drawn, before any check (edge.config.Zone refuses what these tests show refused)."""
    return SimpleNamespace(name=name, polygon=polygon, slots=slots or [])


def test_a_bow_tie_crosses_itself_and_says_which_edges_meet():
    assert self_crossing(SQUARE) is None
    bow_tie = [(0, 0), (10, 10), (10, 0), (0, 10)]
    assert self_crossing(bow_tie) == (0, 2)
    assert polygon_problem(bow_tie) == "crosses itself (the edge from corner 1 to 2 meets the edge from corner 3 to 4)"


def test_a_concave_polygon_is_fine_but_one_that_touches_itself_or_folds_back_is_not():
    assert polygon_problem([(0, 0), (10, 0), (10, 10), (5, 3), (0, 10)]) is None  # an arrow head: concave, simple
    assert self_crossing([(0, 0), (10, 0), (5, 0), (5, 5)]) is not None  # folds back along its first edge
    assert self_crossing([(0, 0), (10, 0), (5, 5), (10, 10), (0, 10), (5, 0)]) is not None  # touches at (5, 0)


def test_corners_outside_the_picture_on_one_line_or_repeated_are_named():
    assert (
        polygon_problem([(0, 0), (641, 0), (640, 100)], (640, 480))
        == "corner 2 (641, 0) is outside the 640x480 picture"
    )
    assert polygon_problem([(0, 0), (640, 0), (640, 480), (0, 480)], (640, 480)) is None  # the border is inside
    assert polygon_problem([(0, 0), (5, 5), (10, 10)]) == "has no area (its corners lie on one line)"
    assert polygon_problem([(0, 0), (0, 0), (10, 10), (0, 10)]) == "corners 1 and 2 are at the same place"


def test_zones_side_by_side_share_a_border_without_overlapping():
    right = [(10, 0), (20, 0), (20, 10), (10, 10)]
    assert not polygons_overlap(SQUARE, right)
    assert not polygons_overlap(SQUARE, [(10, 10), (20, 10), (20, 20), (10, 20)])  # one corner in common
    assert polygons_overlap(SQUARE, [(9, 0), (20, 0), (20, 10), (9, 10)])  # one pixel into it
    assert polygons_overlap(SQUARE, [(2, 2), (4, 2), (4, 4)])  # wholly inside
    assert polygons_overlap(SQUARE, list(reversed(SQUARE)))  # the same zone drawn twice
    assert polygons_overlap(SQUARE, [(5, -5), (6, -5), (6, 15), (5, 15)])  # a bar across: no corner inside


def test_a_layout_reports_every_problem_on_the_polygon_drawn_last():
    zones = [zone("a", SQUARE), zone("b", [(5, 5), (15, 5), (15, 15), (5, 15)]), zone("c", [(20, 0), (30, 0), (25, 5)])]
    problems = layout_problems(zones, (100, 100))
    assert [(p.zone, p.slot, p.message) for p in problems] == [(1, None, "overlaps zone 'a'")]
    assert problems[0].describe(zones) == "zone 'b': overlaps zone 'a'"
    assert layout_problems([zones[0], zones[2]], (100, 100)) == []  # positive control


def test_slots_lie_inside_their_zone_apart_from_each_other_with_a_catalogue_sku():
    slots = [SimpleNamespace(sku="A", polygon=[(0, 0), (5, 0), (5, 10), (0, 10)]),
             SimpleNamespace(sku="B", polygon=[(5, 0), (10, 0), (10, 10), (5, 10)])]  # fmt: skip
    assert layout_problems([zone("a", SQUARE, slots)], None, {"A", "B"}) == []
    outside = SimpleNamespace(sku="A", polygon=[(18, 0), (22, 0), (22, 5), (18, 5)])
    overlapping = SimpleNamespace(sku="B", polygon=[(4, 0), (6, 0), (6, 5)])
    unknown = SimpleNamespace(sku="Z", polygon=[(12, 1), (15, 1), (15, 4)])
    found = layout_problems(
        [zone("a", [(0, 0), (20, 0), (20, 10), (0, 10)], [*slots, outside, overlapping, unknown])], None, {"A", "B"}
    )
    assert [(p.slot, p.message) for p in found] == [
        (2, "reaches outside its zone"), (3, "overlaps slot 1"), (4, "SKU 'Z' is not in the catalogue")]  # fmt: skip


def test_the_box_config_refuses_what_the_layout_check_refuses():
    good = {"store": "s", "box": "b", "camera": {"source": "x.mp4", "frame_size": [640, 480]}, "bundle": "m",
            "zones": [{"name": "a", "polygon": SQUARE}]}  # fmt: skip
    assert BoxConfig.model_validate(good).zones[0].name == "a"  # positive control
    crossing = {**good, "zones": [{"name": "a", "polygon": [(0, 0), (10, 10), (10, 0), (0, 10)]}]}
    outside = {**good, "zones": [{"name": "a", "polygon": [(0, 0), (700, 0), (700, 10)]}]}
    twice = {**good, "zones": [{"name": "a", "polygon": SQUARE}, {"name": "b", "polygon": SQUARE}]}
    for config, reason in ((crossing, "zone 'a': crosses itself"), (outside, "corner 2 (700, 0) is outside the "
                           "640x480 picture"), (twice, "zone 'b': overlaps zone 'a'")):  # fmt: skip
        with pytest.raises(ValidationError, match=re.escape(reason)):
            BoxConfig.model_validate(config)
