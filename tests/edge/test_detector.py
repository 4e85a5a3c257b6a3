"""The agent's detector pre- and post-processing against ultralytics' own."""

import numpy as np
import pytest

from edge.detector import letterbox


@pytest.mark.parametrize(
    ("width", "height", "size"), [(640, 480, 320), (641, 479, 320), (1280, 720, 416), (64, 48, 64)]
)
def test_letterbox_is_pixel_for_pixel_ultralytics(width, height, size):
    from ultralytics.data.augment import LetterBox

    frame = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ours, fit = letterbox(frame, size)
    theirs = LetterBox((size, size), auto=False, stride=32)(image=frame)
    assert ours.shape == theirs.shape == (size, size, 3)
    assert np.array_equal(ours, theirs)
    assert fit.scale == pytest.approx(min(size / width, size / height))
