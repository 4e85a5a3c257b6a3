"""Visits against the truth on the first video of each preset (training/visit_eval.py: seed 1000, index 0, fixed
before anything was run, as bench/visits.py's 20): the visits' units picked and put back per SKU are the box's own
pick and put-back events', no product is left out of a visit event, and the pairs the ledger holds are scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.bundle_eval import run_box
from training.labels import LedgerEntry, read_label_file
from training.synth.generate import write_video
from training.visit_eval import paired, score, sign_test, units, video_specs, wilson

DEMO_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "demo"


def test_units_sum_picks_and_putbacks_per_sku():
    assert units([("pick", "a", 1), ("pick", "a", 2), ("putback", "a", 1), ("putback", "b", 1), ("pick", "c", 0)]) == {
        "a": (3, 1), "b": (0, 1)}  # fmt: skip


def test_pairs_with_a_take_or_return_in_the_clips_last_second_are_also_counted_apart():
    ledger = [LedgerEntry(frame=100, sku="a", kind="take"), LedgerEntry(frame=880, sku="b", kind="take"),
              LedgerEntry(frame=875, sku="c", kind="take"), LedgerEntry(frame=890, sku="c", kind="return")]  # fmt: skip
    pick = {"kind": "pick", "sku": "a", "quantity": 1, "familiar": True}
    visit = {"kind": "visit", "products": [{"sku": "a", "picked": 1, "put_back": 0}]}
    s = score("v", [pick, visit], ledger, last_second=870)  # b's take at the very end was missed; c came to nothing
    assert (s.pairs, s.visits_exact, s.at_end, s.at_end_exact) == (3, 1, 2, 0), s
    assert s.wrong == ["b: ledger (1, 0), visits (0, 0)", "c: ledger (1, 1), visits (0, 0)"]
    assert score("v", [pick, visit], ledger).at_end == 0  # without the clip's length nothing is set apart


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
