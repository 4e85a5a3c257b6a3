"""Video sources: files play to the end; missing or corrupt files are clear errors."""

import pytest

from edge.errors import ShelfWatchError
from edge.video import VideoSource
from training.synth.generate import VideoSpec, write_video


def test_a_file_plays_every_frame_with_its_timestamps(tmp_path):
    labels = write_video(VideoSpec(seed=2, index=0, frames=20, width=160, height=120), tmp_path)[0]
    path = labels.with_name(labels.name.replace(".labels.json", ".mp4"))
    source = VideoSource(str(path))
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(20)) and frames[0].image.shape == (120, 160, 3)
    assert frames[10].ts - frames[0].ts == pytest.approx(10 / 30)
    assert (source.width, source.height, source.fps) == (160, 120, 30.0)


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(ShelfWatchError, match="no such video file"):
        VideoSource(str(tmp_path / "nothing.mp4"))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(ShelfWatchError, match=r"corrupt.mp4: (cannot be opened as a video|no frame could be decoded)"):
        list(VideoSource(str(corrupt)).frames())


def test_an_unreachable_stream_is_retried_with_backoff_then_reported():
    messages = []
    source = "rtsp://127.0.0.1:9/none"
    with pytest.raises(ShelfWatchError, match="unreachable, and 2 reconnects failed"):
        VideoSource(source, read_timeout_s=0.5, on_reconnect=messages.append, max_reconnects=2)
    assert messages == [f"{source}: stream unreachable; retrying in {d} s (attempt {i})" for i, d in ((1, 1), (2, 2))]
