"""Two stores: `--preset store-b` renders a store the demo model never saw (another camera, shelf layout,
surfaces, light and shoppers), as deterministically as every preset, with labels that still match its pixels."""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import cv2
import numpy as np
import pytest

from edge.scene import default_zones
from training.bundle_eval import score_bundle
from training.synth.generate import Rendered, VideoSpec, render_video, write_video
from training.synth.presets import STORE_A, STORE_B
from training.synth.preview import preview
from training.synth.scene import Geometry, make_geometry


@cache
def rendered(preset: str, index: int = 0, frames: int = 90) -> Rendered:
    return render_video(VideoSpec(seed=21, index=index, frames=frames, width=320, height=240, preset=preset))


def test_store_b_is_deterministic_and_video_i_depends_on_seed_and_i_only(tmp_path, shelfwatch):
    spec = VideoSpec(seed=5, index=1, frames=40, width=160, height=120, preset="store-b")
    a, b = render_video(spec), render_video(spec)
    assert a.labels == b.labels
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    for other in (VideoSpec(5, 2, 40, 160, 120, preset="store-b"), VideoSpec(6, 1, 40, 160, 120, preset="store-b")):
        assert not np.array_equal(render_video(other).frames[0], a.frames[0])
    # Through the command: video 1 of a run of two is, byte for byte, video 1 rendered on its own.
    args = ["--seed", 5, "--frames", 40, "--size", "160x120", "--preset", "store-b"]
    assert shelfwatch("synth", tmp_path / "two", "--videos", 2, *args).returncode == 0
    assert shelfwatch("synth", tmp_path / "one", "--first", 1, *args).returncode == 0
    name = "synth_store-b_s5_0001"
    for suffix in (".mp4", ".labels.json", "_label.mat"):
        file = f"{name}{suffix}"
        assert (tmp_path / "two" / file).read_bytes() == (tmp_path / "one" / file).read_bytes()


@pytest.mark.parametrize("preset", ["standard", "store-b"])
def test_the_labelled_shelf_holds_the_shelf_products_and_not_the_shoppers(preset):
    labels = rendered(preset).labels
    outline = np.array(labels.shelf, np.float32)
    inside = lambda x, y: cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0  # noqa: E731
    products = heads = 0
    for record in labels.frames:
        for p in record.products:
            if p.place == "shelf":
                x1, y1, x2, y2 = p.box
                assert inside((x1 + x2) / 2, (y1 + y2) / 2), (preset, p)
                products += 1
        for s in record.shoppers:
            if not s.passerby and 0 <= s.head[0] < labels.width and 0 <= s.head[1] < labels.height:
                assert not inside(*s.head), (preset, s)
                heads += 1
    assert products > 100 and heads > 0


def test_store_a_labels_the_shelf_the_agent_assumes_without_a_config():
    """A box run without zones assumes the demo store's shelf: store A's labels say the same shelf."""
    assert rendered("standard").labels.shelf == [tuple(p) for p in default_zones(320, 240)[0].polygon]
    assert rendered("store-b").labels.shelf != rendered("standard").labels.shelf


def test_store_b_camera_hangs_higher_so_the_same_products_look_smaller():
    for index in range(3):  # three cameras of each store
        areas: dict[str, dict[str, list[int]]] = {"standard": defaultdict(list), "store-b": defaultdict(list)}
        for preset, by_sku in areas.items():
            for p in rendered(preset, index, frames=1).labels.frames[0].products:
                if p.place == "shelf" and p.visible == 1.0:
                    by_sku[p.sku].append((p.box[2] - p.box[0]) * (p.box[3] - p.box[1]))
        both = set(areas["standard"]) & set(areas["store-b"])
        assert len(both) >= 8
        for sku in both:
            assert np.median(areas["store-b"][sku]) < 0.75 * np.median(areas["standard"][sku]), (index, sku)


def _seen_area(geom: Geometry, x: float, y: float) -> float:
    """Picture pixels covered by a 10x10 square of the floor plan at (x, y)."""
    square = np.float64([[(x, y), (x + 10, y), (x + 10, y + 10), (x, y + 10)]])
    return cv2.contourArea(cv2.perspectiveTransform(square, geom.camera)[0].astype(np.float32))


def test_store_b_camera_is_tilted_and_turned_and_sees_only_the_floor_plan():
    """A plan square far from the camera (the shelf, at the top) looks smaller than one near it; the picture never
    shows past the floor plan's edge; and store A's camera draws nothing from the video's random numbers, so its
    videos are what they were before store B existed."""
    rolls = []
    for seed in range(20):
        geom = make_geometry(640, 480, STORE_B, np.random.default_rng(seed))
        assert all(0 <= x <= 640 and 0 <= y <= 480 for x, y in geom.view)
        far, near = geom.to_plan(320, 20), geom.to_plan(320, 460)
        assert _seen_area(geom, *near) > 1.5 * _seen_area(geom, *far)
        top_left, top_right = geom.view[:2]
        rolls.append(np.degrees(np.arctan2(top_right[1] - top_left[1], top_right[0] - top_left[0])))
    assert min(rolls) < -1 and max(rolls) > 1  # cameras turned both ways
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert make_geometry(640, 480, STORE_A, rng) == Geometry(640, 480) and rng.bit_generator.state == before


def test_store_b_is_lit_warmer():
    a, b = rendered("standard", frames=300), rendered("store-b", frames=300)
    warmth = lambda r: np.mean([f[..., 2].mean() / max(1.0, f[..., 0].mean()) for f in r.frames[::30]])  # noqa: E731
    assert warmth(b) > 1.3 * warmth(a)


def test_the_preview_puts_the_stores_side_by_side():
    image = preview(["standard", "store-b"], seed=3, index=0, frame=2, width=160, height=120)
    assert image.shape == (120 + 28, 2 * 160 + 6, 3)
    for tile, preset in ((image[28:, :160], "standard"), (image[28:, 166:], "store-b")):
        frame = render_video(VideoSpec(3, 0, 3, 160, 120, preset=preset)).frames[2]
        # The frame synth renders, but for the shelf's outline drawn over it.
        drawn = np.any(tile != frame, axis=2)
        assert 0 < drawn.mean() < 0.05, preset


@pytest.mark.long
def test_models_demo_loses_at_least_10_points_of_frame_accuracy_on_store_b(tmp_path):
    """The issue's bar for store-b being worth adapting to: the first three videos of a held-out seed of each
    store, 20 s at 640x480, through the agent (the README's table has the full sets: 0.93 against 0.20)."""
    from tests.edge.test_agent_delivery import DEMO_BUNDLE
    from training.bundle_eval import labelled_videos

    accuracy = {}
    for preset in ("standard", "store-b"):
        for index in range(3):
            write_video(VideoSpec(seed=6000, index=index, frames=600, width=640, height=480, preset=preset),
                        tmp_path / preset)  # fmt: skip
        accuracy[preset] = score_bundle(DEMO_BUNDLE, labelled_videos(tmp_path / preset)).pooled["frame_accuracy"]
    assert accuracy["standard"] > 0.8, accuracy
    assert accuracy["store-b"] <= accuracy["standard"] - 0.10, accuracy
