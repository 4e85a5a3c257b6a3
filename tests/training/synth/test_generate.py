"""The synthetic generator: deterministic, and its labels agree with its pixels and with each other."""

from __future__ import annotations

import itertools
from collections import Counter
from functools import cache

import cv2
import numpy as np
import pytest

from edge.classes import Action
from training.label_files import read_labels
from training.labels import make_labels, read_label_file
from training.synth.catalog import CATALOG, SKU_INDEX, render_sprite
from training.synth.generate import Rendered, VideoSpec, plan_segments, render_video, write_video
from training.synth.presets import PRESETS
from training.synth.scene import make_geometry, make_layout
from training.synth.script import plan_video


@cache
def rendered(preset: str, index: int = 0, frames: int = 600) -> Rendered:
    return render_video(VideoSpec(seed=11, index=index, frames=frames, width=320, height=240, preset=preset))


def test_same_arguments_give_identical_frames_and_labels():
    spec = VideoSpec(seed=5, index=2, frames=120, width=160, height=120, preset="hard")
    a, b = render_video(spec), render_video(spec)
    assert a.labels == b.labels
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    other = render_video(VideoSpec(seed=5, index=3, frames=120, width=160, height=120, preset="hard"))
    assert other.labels != a.labels


def test_written_files_are_identical_across_runs(tmp_path):
    spec = VideoSpec(seed=2, index=0, frames=90, width=160, height=120)
    first, _ = write_video(spec, tmp_path / "a")
    second, _ = write_video(spec, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    decoded = []
    for path in (first, second):
        cap = cv2.VideoCapture(str(path.with_name(spec.name + ".mp4")))
        frames = []
        while (ok_frame := cap.read())[0]:
            frames.append(ok_frame[1])
        cap.release()
        decoded.append(frames)
    assert len(decoded[0]) == 90
    assert all(np.array_equal(x, y) for x, y in zip(*decoded, strict=True))


def test_mat_and_json_labels_describe_the_same_frames(tmp_path):
    spec = VideoSpec(seed=4, index=1, frames=300, width=160, height=120)
    json_path, _ = write_video(spec, tmp_path)
    ours = read_labels(json_path)
    merl = read_labels(tmp_path / f"{spec.name}_label.mat", frame_count=300)
    assert np.array_equal(ours.frame_classes, merl.frame_classes)
    assert read_label_file(json_path).video == f"{spec.name}.mp4"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_held_product_lies_at_the_hand_holding_it(preset):
    labels = rendered(preset).labels
    held_frames = 0
    for record in labels.frames:
        hands = {s.id: s.hands for s in record.shoppers}
        for p in record.products:
            if p.place != "hand":
                continue
            held_frames += 1
            x1, y1, x2, y2 = p.box
            hx, hy = hands[p.shopper][p.hand]
            margin = 3
            assert x1 - margin <= hx <= x2 + margin and y1 - margin <= hy <= y2 + margin, (p, hx, hy)
    assert held_frames > 20  # the check above has to have run


@pytest.mark.parametrize("preset", list(PRESETS))
def test_ledger_events_happen_where_the_actions_say(preset):
    labels = rendered(preset).labels
    classes = labels.frame_classes
    for entry in labels.ledger:
        products = labels.frames[entry.frame].products
        if entry.kind == "take":
            # The product leaves the shelf on the first frame of the retract, in the taker's hand.
            assert classes[entry.frame] == Action.RETRACT_FROM_SHELF
            assert classes[entry.frame - 1] == Action.HAND_IN_SHELF
            assert any(p.place == "hand" and p.sku == entry.sku and p.shopper == entry.shopper for p in products)
        else:
            assert classes[entry.frame] == Action.HAND_IN_SHELF
    assert any(e.kind == "take" for e in labels.ledger)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_shelf_stock_follows_the_ledger_and_baskets_sum_it(preset):
    labels = rendered(preset).labels
    initial = Counter(p.sku for p in labels.frames[0].products if p.place == "shelf")
    change: Counter[str] = Counter()
    events = sorted(labels.ledger, key=lambda e: e.frame)
    k = 0
    for t, record in enumerate(labels.frames):
        while k < len(events) and events[k].frame <= t:
            change[events[k].sku] += -1 if events[k].kind == "take" else 1
            k += 1
        on_shelf = Counter(p.sku for p in record.products if p.place == "shelf")
        assert on_shelf == initial + change  # Counter addition drops SKUs whose stock reached zero
    baskets: dict[int, Counter[str]] = {}
    for e in labels.ledger:
        baskets.setdefault(e.shopper, Counter())[e.sku] += 1 if e.kind == "take" else -1
    assert {b.shopper: b.items for b in labels.baskets} == {
        s: {k: v for k, v in c.items() if v} for s, c in baskets.items()
    }


def test_actions_follow_the_shopping_grammar():
    for preset in PRESETS:
        segments = rendered(preset).labels.segments
        follows = {"reach_to_shelf": {"hand_in_shelf"}, "hand_in_shelf": {"retract_from_shelf"}}
        for a, b in itertools.pairwise(segments):
            if a.label in follows:
                assert b.label in follows[a.label] and b.start == a.end and b.shopper == a.shopper
            if b.label in ("hand_in_shelf", "retract_from_shelf"):
                assert a.label in ("reach_to_shelf", "hand_in_shelf") and a.end == b.start


def test_every_preset_plans_one_actor_at_a_time_across_many_seeds():
    """Two shoppers acting at once would make overlapping segments: the labels would have to resolve frames."""
    saw_two_shoppers = saw_nobody = False
    for preset in PRESETS.values():
        for seed in range(12):
            rng = np.random.default_rng(seed)
            geom = make_geometry(320, 240, preset.store, rng)
            plan = plan_video(geom, make_layout(geom, rng, preset.store), preset, rng, 1800, 30.0)
            assert make_labels(plan_segments(plan, 1800), 1800, 30.0).overlaps.frames == 0
            shoppers = [p for p in plan.people if not p.passerby]
            present = np.zeros(1800, int)
            for p in shoppers:
                present[max(0, p.start) : min(1800, p.end)] += 1
            saw_two_shoppers |= bool((present >= 2).any())
            saw_nobody |= bool((present == 0).any())
    assert saw_two_shoppers and saw_nobody


def test_shelf_product_pixels_match_their_sku():
    r = rendered("easy")
    frame, record = r.frames[0], r.labels.frames[0]
    checked = 0
    for p in record.products:
        if p.place != "shelf" or p.visible < 1.0:
            continue
        sprite = render_sprite(CATALOG[SKU_INDEX[p.sku]], 240 / 480)
        x1, y1, x2, y2 = p.box
        crop = frame[y1:y2, x1:x2].astype(float)
        inside = sprite.mask[: crop.shape[0], : crop.shape[1]] > 200
        expected = sprite.image[: crop.shape[0], : crop.shape[1]][inside].mean(axis=0)
        assert np.abs(crop[inside].mean(axis=0) - expected).max() < 30, p.sku
        checked += 1
    assert checked >= 10


def test_presets_differ_in_how_much_the_picture_varies():
    def roughness(preset: str) -> float:
        frames = rendered(preset).frames
        # Frame-to-frame change of the static shelf band: noise, shake and light drift, not shoppers.
        band = [f[5:60].astype(float) for f in frames[:60]]
        return float(np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(band)]))

    assert roughness("easy") < roughness("standard") < roughness("hard")
