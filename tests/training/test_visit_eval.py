"""Visits against the truth on the first video of each preset (training/visit_eval.py: seed 1000, index 0, fixed
before anything was run, as bench/visits.py's 20): the visits' units picked and put back per SKU are the box's own
pick and put-back events', no product is left out of a visit event, and the pairs the ledger holds are scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.classes import ACTION_CLASSES
from training.bundle_eval import run_box
from training.labels import LabelFile, LedgerEntry, Segment, SegmentRecord, make_labels, read_label_file
from training.synth.generate import write_video
from training.visit_eval import cut_by_the_end, paired, score, sign_test, units, video_specs, wilson

DEMO_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "demo"


def test_units_sum_picks_and_putbacks_per_sku():
    assert units([("pick", "a", 1), ("pick", "a", 2), ("putback", "a", 1), ("putback", "b", 1), ("pick", "c", 0)]) == {
        "a": (3, 1), "b": (0, 1)}  # fmt: skip


def test_pairs_whose_take_or_return_the_clips_end_cuts_are_also_counted_apart():
    """a: taken, retracted and looked at to the end (the shelf shows the gap); b: taken as the clip ends (the arm still
    coming out); c: taken, put back and the arm still in the shelf; d: taken on a visit that never came out."""
    ledger = [LedgerEntry(frame=100, shopper=1, sku="a", kind="take"),
              LedgerEntry(frame=880, shopper=1, sku="a", kind="take"),
              LedgerEntry(frame=890, shopper=2, sku="b", kind="take"),
              LedgerEntry(frame=700, shopper=3, sku="c", kind="take"),
              LedgerEntry(frame=885, shopper=3, sku="c", kind="return"),
              LedgerEntry(frame=895, shopper=4, sku="d", kind="take")]  # fmt: skip
    spans = [(1, "retract_from_shelf", 100, 120), (1, "retract_from_shelf", 880, 890), (1, "inspect_product", 890, 900),
             (2, "retract_from_shelf", 890, 900), (3, "retract_from_shelf", 700, 720), (3, "hand_in_shelf", 870, 900),
             (4, "hand_in_shelf", 880, 900)]  # fmt: skip
    segments = [Segment(ACTION_CLASSES.index(label), a, b, who) for who, label, a, b in spans]
    labels = LabelFile(
        fps=30, frame_count=900, classes=list(ACTION_CLASSES), ledger=ledger,
        frame_classes=make_labels(segments, 900, 30.0).frame_classes.tolist(),
        segments=[SegmentRecord(label=ACTION_CLASSES[s.label], start=s.start, end=s.end, shopper=s.shopper)
                  for s in segments],
    )  # fmt: skip
    assert cut_by_the_end(labels) == {"b", "c", "d"}
    pick = {"kind": "pick", "sku": "a", "quantity": 2, "familiar": True}
    visit = {"kind": "visit", "products": [{"sku": "a", "picked": 2, "put_back": 0}]}
    s = score("v", [pick, visit], ledger, cut=cut_by_the_end(labels))  # b, c and d came to nothing
    assert (s.pairs, s.visits_exact, s.cut, s.cut_exact) == (4, 1, 3, 0), s
    assert s.wrong[0] == "b: ledger (1, 0), visits (0, 0)"
    assert score("v", [pick, visit], ledger).cut == 0  # without the labels nothing is set apart


def test_two_boxes_on_the_same_videos_are_compared_pair_by_pair():
    ledger = [LedgerEntry(frame=100, sku="a", kind="take"), LedgerEntry(frame=300, sku="b", kind="take")]

    def box(*picks: str) -> list[dict]:
        events = [{"kind": "pick", "sku": sku, "quantity": 1, "familiar": True} for sku in picks]
        return [*events, {"kind": "visit", "products": [{"sku": k, "picked": 1, "put_back": 0} for k in picks]}]

    first = [score("v", box("a", "b"), ledger), score("w", box("a"), ledger)]
    second = [score("v", box("a", "c"), ledger), score("w", box("a"), ledger)]  # misses b, names c nobody touched
    both = paired(first, second)
    # v: a, b, c (the first box has c exact: neither it nor the ledger names it); w: a, b.
    assert (both.pairs, both.exact, both.only) == (5, (4, 2), (2, 0)), both
    assert both.p_value == 0.5  # two flips one way: chance alone does that half the time
    with pytest.raises(ValueError):
        paired(first, second[::-1])


def test_the_sign_test_is_the_exact_binomial_one():
    assert sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32) and sign_test(0, 5) == sign_test(5, 0)
    assert sign_test(8, 1) == pytest.approx(2 * (1 + 9) / 512)  # 0.039: below 0.05
    assert sign_test(4, 1) > 0.3


def test_the_wilson_interval_holds_the_share_and_narrows_with_more_pairs():
    low, high = wilson(36, 44)
    assert (round(low, 3), round(high, 3)) == (0.680, 0.905)  # worked by hand: centre 0.793, half-width 0.112
    assert low < 36 / 44 < high
    wide, narrow = wilson(9, 11), wilson(90, 110)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert wilson(44, 44)[1] == pytest.approx(1) and wilson(0, 44)[0] == pytest.approx(0)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.long  # two 60 s videos through the box (1-2 min of CPU)
@pytest.mark.parametrize("spec", video_specs(1), ids=lambda s: s.name)
def test_a_videos_visits_agree_with_its_events_and_leave_nothing_out(spec, tmp_path):
    labels_path, _ = write_video(spec, tmp_path)
    events, _, _ = run_box(DEMO_BUNDLE, labels_path.with_name(f"{spec.name}.mp4"), tmp_path, threads=0)
    s = score(spec.name, events, read_label_file(labels_path).ledger)
    assert s.agree, s  # a visit says what the box's pick and put-back events say
    assert s.left_out == 0 and s.visits >= 1, s
    assert s.pairs >= 1 and s.visits_exact == s.events_exact, s
