"""The familiarity guard on the box (`edge.familiarity`): a per-frame distance in the encoder's feature space, its
mean over about a second, and the share of the last minute's analysed frames that were unfamiliar. The demo
bundle's guard tells one of our held-out synthetic clips from a real one; a bundle without a guard runs as before."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.action import ActionRecognizer
from edge.bundle import MANIFEST, FamiliarityEntry, FitData, load_bundle, seal
from edge.errors import ShelfWatchError
from edge.familiarity import Familiarity, FamiliarityStats, windowed
from export.features import read_frames, video_features
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.edge.test_real_footage import CLIPS


def entry(threshold: float = 2.0, window_s: float = 0.1) -> FamiliarityEntry:
    fit = FitData(source="test", videos=1, frames=10)
    return FamiliarityEntry(file="familiarity.npz", method="mahalanobis-tied-ledoit-wolf", features=2, shrinkage=0.0,
                            window_s=window_s, threshold=threshold, quantile=0.99, fitted_on=fit,
                            calibrated_on=fit)  # fmt: skip


def stage(tmp_path: Path, fps: float = 30.0, threshold: float = 2.0) -> Familiarity:
    """Two classes at (0, 0) and (10, 0), unit variance: a frame's score is its distance to the nearer one."""
    np.savez(tmp_path / "familiarity.npz", means=np.array([[0.0, 0.0], [10.0, 0.0]]), whiten=np.eye(2))
    return Familiarity(entry(threshold), tmp_path, fps)  # a window of 3 frames at 30 fps


def test_a_frame_scores_its_mahalanobis_distance_to_the_nearest_class_and_is_judged_on_its_window(tmp_path):
    f = stage(tmp_path)
    assert f.update(0, 0.0, np.array([50.0, 50.0])) is None  # the first frame scored: its motion is no motion
    assert f.update(1, 0.0, np.array([9.0, 0.0])).score == pytest.approx(1.0)  # nearest: the class at (10, 0)
    f.update(2, 0.1, np.array([0.0, 0.0]))
    r = f.update(3, 0.2, np.array([0.0, 5.0]))  # one far frame: the window's mean is (1 + 0 + 5) / 3
    assert (r.score, r.smoothed, r.familiar) == (pytest.approx(5.0), pytest.approx(2.0), False)
    r = f.update(4, 0.3, np.array([0.0, 0.0]))  # the first frame left the window: (0 + 5 + 0) / 3
    assert r.smoothed == pytest.approx(5 / 3) and r.familiar


def test_the_window_starts_afresh_after_frames_that_were_not_scored(tmp_path):
    """The frame after a pause is encoded against the last frame before it: its motion channel is no camera's
    frame-to-frame motion, so it is not judged, and the window starts with the next one."""
    f = stage(tmp_path)
    f.update(0, 0.0, np.array([0.0, 0.0]))
    f.update(1, 0.0, np.array([0.0, 9.0]))
    assert f.update(2, 0.1, np.array([0.0, 0.0])).smoothed == pytest.approx(4.5)
    assert f.update(6, 0.5, np.array([0.0, 40.0])) is None  # frames 3-5 skipped by the motion gate
    assert f.update(7, 0.5, np.array([0.0, 0.0])).smoothed == 0.0
    # What calibration computes over a whole sequence is what the box computes frame by frame.
    seq = windowed(np.array([0.0, 9.0, 0.0, 40.0, 0.0]), np.array([True, False, False, True, False]), 3)
    assert np.isnan(seq[0]) and np.isnan(seq[3]) and list(seq[[1, 2, 4]]) == [9.0, 4.5, 0.0]


def test_the_unfamiliar_share_covers_the_last_minute_of_analysed_frames_and_stretches_are_kept(tmp_path):
    f = stage(tmp_path, threshold=1.0)
    assert f.share() is None  # nothing analysed yet: unknown, not 0
    for i in range(31):  # 1 s of far frames after the first (not judged), then 3 s of familiar ones
        f.update(i, i / 30, np.array([0.0, 9.0]))
    for i in range(31, 121):
        f.update(i, i / 30, np.array([0.0, 0.0]))
    assert f.share(now=4.0) == pytest.approx((30 + 2) / 120)  # the window takes two frames to come back
    assert f.share(now=62.0) == 0.0  # a minute later the far second has left the share
    assert list(f.spans) == [[1, 33]] and (f.frames, f.unfamiliar_frames) == (120, 32)


def test_statistics_that_do_not_fit_the_encoder_are_refused_in_one_line(tmp_path):
    np.savez(tmp_path / "familiarity.npz", means=np.zeros((6, 3)), whiten=np.eye(3))
    with pytest.raises(ShelfWatchError, match=r"familiarity.npz: statistics of shape \(6, 3\) and \(3, 3\) do not fit"):
        Familiarity(entry(), tmp_path, 30.0)
    (tmp_path / "familiarity.npz").write_bytes(b"not numpy")
    with pytest.raises(ShelfWatchError, match="not the bundle's familiarity statistics"):
        Familiarity(entry(), tmp_path, 30.0)


def demo_scores(frames_source: Path, frames: int) -> np.ndarray:
    manifest = load_bundle(DEMO_BUNDLE)
    assert manifest.familiarity is not None, "the demo bundle ships with a familiarity guard"
    stats = FamiliarityStats.load(DEMO_BUNDLE / manifest.familiarity.file, manifest.familiarity)
    v = video_features(ActionRecognizer(manifest, DEMO_BUNDLE, threads=1), frames_source, frames)
    smoothed = windowed(stats.score(v.features), v.after_gap, round(manifest.familiarity.window_s * v.fps))
    return smoothed[~np.isnan(smoothed)] / manifest.familiarity.threshold  # >= 1: unfamiliar


def test_the_demo_guard_finds_held_out_synthetic_video_familiar_and_a_real_clip_unfamiliar(tmp_path):
    synthetic = demo_scores(sample(tmp_path, 150, seed=3002), 150)  # a seed nothing was fitted or calibrated on
    real = demo_scores(CLIPS / "cup.mp4", 150)  # a real hand holding a cup (never fitted on)
    assert len(synthetic) > 100 and len(real) > 100
    assert (synthetic < 1).mean() >= 0.98, np.quantile(synthetic, [0.5, 0.99])
    assert (real >= 1).mean() >= 0.9, np.quantile(real, [0.05, 0.5])


def test_features_of_a_file_are_those_the_agent_scores(tmp_path):
    """The gate's frames only, the first after a gap marked; read as the agent reads a file."""
    video = sample(tmp_path, 40, seed=3003)
    fps, frames = read_frames(video)
    assert fps == 30.0 and len(list(frames)) == 40
    v = video_features(ActionRecognizer(load_bundle(DEMO_BUNDLE), DEMO_BUNDLE, threads=1), video)
    assert v.frames == 40 and v.features.shape == (len(v.index), 128) and v.after_gap[0]
    assert list(v.index) == sorted(v.index) and v.index[-1] < 40


def without_guard(tmp_path: Path) -> Path:
    bundle = tmp_path / "no-guard"
    shutil.copytree(DEMO_BUNDLE, bundle)
    data = json.loads((bundle / MANIFEST).read_text())
    name = data.pop("familiarity")["file"]
    del data["files"][name]
    (bundle / name).unlink()
    (bundle / MANIFEST).write_text(json.dumps(seal(data), indent=2))
    return bundle


def test_a_bundle_without_a_guard_runs_and_says_familiarity_is_unknown(shelfwatch, tmp_path):
    video = sample(tmp_path, 90, seed=3004)
    jsonl = tmp_path / "events.jsonl"
    result = shelfwatch("edge", "run", "--bundle", without_guard(tmp_path), "--source", video, "--events-jsonl", jsonl,
                        "--outbox", tmp_path / "outbox.sqlite")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "has no familiarity guard: whether footage is like the model's training is unknown" in result.stderr
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert events and all("familiar" not in e and "unfamiliar_share" not in e for e in events)
    assert "familiarity:" not in result.stdout
