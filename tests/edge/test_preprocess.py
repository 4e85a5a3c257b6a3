import numpy as np

from edge.preprocess import MEAN_RGB, STD_RGB, InputSpec, shrink, to_input


def test_shrink_and_normalise_a_frame():
    spec = InputSpec(160, 120, motion=False)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[..., 2] = 255  # pure red in BGR
    x = to_input(shrink(frame, spec), None, spec)
    assert x.shape == (3, 120, 160) and x.dtype == np.float32
    assert np.allclose(x[0], (1 - MEAN_RGB[0]) / STD_RGB[0]) and np.allclose(x[1], -MEAN_RGB[1] / STD_RGB[1])


def test_motion_channel_shows_where_something_arrived_and_left():
    spec = InputSpec(32, 24, motion=True)
    a = np.zeros((24, 32, 3), np.uint8)
    b = a.copy()
    a[5:10, 5:10] = 200  # a bright patch moves right
    b[5:10, 15:20] = 200
    x = to_input(np.stack([a, b]), None, spec)
    assert x.shape == (2, 4, 24, 32)
    assert np.all(x[0, 3] == 0)  # no previous frame: no motion
    assert x[1, 3, 7, 17] > 0.5 and x[1, 3, 7, 7] < -0.5 and x[1, 3, 20, 25] == 0


def test_frame_by_frame_equals_a_clip():
    """The agent converts one frame at a time, training a clip at a time: the numbers must agree."""
    spec = InputSpec(32, 24)
    frames = np.random.default_rng(0).integers(0, 256, size=(6, 24, 32, 3), dtype=np.uint8)
    clip = to_input(frames[1:], frames[0], spec)
    one_by_one = np.stack([to_input(frames[i], frames[i - 1], spec) for i in range(1, 6)])
    assert np.array_equal(clip, one_by_one)
