"""The MERL Shopping stand-in: the release's names, folders, frame size and rate, and labels drawn the way
its annotators drew them without changing what any frame shows."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io

from edge.errors import ShelfWatchError
from training.labels import resolve_frames
from training.merl import MERL_LABELS, MERL_VIDEOS
from training.synth.generate import VideoSpec, _setup, plan_segments
from training.synth.merl_layout import merl_style, parse_subjects


def test_merl_style_labels_overlap_as_the_release_does_and_keep_every_frame():
    boundaries = nested = 0
    for index in range(12):
        spec = VideoSpec(seed=1, index=index, frames=600, width=920, height=680)
        exact = plan_segments(_setup(spec)[1], spec.frames)
        drawn = merl_style(exact)
        assert len(drawn) == len(exact)
        frames, overlaps = resolve_frames(drawn, spec.frames)
        assert np.array_equal(frames, resolve_frames(exact, spec.frames)[0])
        boundaries += overlaps.boundaries
        nested += overlaps.nested
    assert boundaries > 20 and nested > 3


def test_synth_merl_layout_writes_the_release_shape(tmp_path, shelfwatch):
    result = shelfwatch("synth", tmp_path, "--merl-layout", "--subjects", "1,21-22", "--sessions", "2", "--frames", 12)
    assert result.returncode == 0, result.stderr
    names = ["1_1", "1_2", "21_1", "21_2", "22_1", "22_2"]
    assert sorted(p.name for p in (tmp_path / MERL_VIDEOS).iterdir()) == sorted(f"{n}_crop.mp4" for n in names)
    assert sorted(p.name for p in (tmp_path / MERL_LABELS).iterdir()) == sorted(f"{n}_label.mat" for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MERL_LABELS, MERL_VIDEOS]  # nothing else, as released
    cap = cv2.VideoCapture(str(tmp_path / MERL_VIDEOS / "21_2_crop.mp4"))
    size = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FPS))
    cap.release()
    assert size == (920, 680, 30)
    tlabs = scipy.io.loadmat(str(tmp_path / MERL_LABELS / "1_1_label.mat"))["tlabs"]
    assert tlabs.shape == (5, 1)  # 12 frames: nobody acts yet, every cell empty as MATLAB writes one
    assert all(c.shape == (0, 0) and c.dtype == np.uint8 for c in tlabs.reshape(-1))


@pytest.mark.parametrize("text", ["0-3", "40-42", "a", "3-1", ""])
def test_subjects_outside_the_release_are_refused(text):
    with pytest.raises(ShelfWatchError, match="--subjects"):
        parse_subjects(text)


def test_subjects_ranges():
    assert parse_subjects("1-3, 21,27") == [1, 2, 3, 21, 27]
