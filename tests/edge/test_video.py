"""Video sources: files play to the end; missing or corrupt files are clear errors."""

import itertools
import os
from pathlib import Path

import pytest

from edge.errors import ShelfWatchError
from edge.video import MP4_EPOCH, VideoSource, container_creation_time
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


def write_grey_video(path, size: tuple[int, int], frames: int = 30) -> None:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for _ in range(frames):
        writer.write(np.full((size[1], size[0], 3), 128, np.uint8))
    writer.release()


def test_a_picture_too_small_to_show_a_shelf_is_refused(tmp_path):
    for size in ((1, 1), (64, 48)):
        path = tmp_path / f"grey-{size[0]}.avi"
        write_grey_video(path, size)
        with pytest.raises(ShelfWatchError, match=rf"its frames are {size[0]}x{size[1]}, too small .*at least 160x120"):
            VideoSource(str(path))


def test_a_still_picture_is_not_a_video(tmp_path):
    import cv2
    import numpy as np

    path = tmp_path / "shelf.png"
    cv2.imwrite(str(path), np.full((480, 640, 3), 128, np.uint8))
    with pytest.raises(ShelfWatchError, match=r"shelf\.png: holds a single picture, not a video"):
        VideoSource(str(path))


def damaged(tmp_path, frames: int = 300):
    """A sample video with two stretches of its data overwritten."""
    labels = write_video(VideoSpec(seed=2, index=0, frames=frames, width=320, height=240), tmp_path)[0]
    path = labels.with_name(labels.name.replace(".labels.json", ".mp4"))
    data = bytearray(path.read_bytes())
    for share in (0.3, 0.6):
        at = int(len(data) * share)
        data[at : at + 20000] = bytes(20000)
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_file_says_how_many_frames_it_lost(tmp_path):
    warnings: list[str] = []
    source = VideoSource(str(damaged(tmp_path)), on_warning=warnings.append)
    decoded = len(list(source.frames()))
    assert decoded < 300 and source.frame_count == 300
    assert warnings == [f"{source.source}: only {decoded} of the 300 frames its container lists could be decoded "
                        "(the file is damaged or truncated)"]  # fmt: skip


def test_a_stop_request_ends_the_wait_for_a_stream_at_once():
    import time

    from edge.video import SourceStopped

    asked: list[float] = []
    deadline = time.monotonic() + 7.5

    def keep_waiting() -> bool:
        asked.append(time.monotonic())
        return time.monotonic() < deadline  # a stop is requested 7.5 s in, during the 8 s wait (tries at 0, 1, 3, 7 s)

    started = time.monotonic()
    with pytest.raises(SourceStopped):
        VideoSource("rtsp://127.0.0.1:9/none", read_timeout_s=0.5, reconnect_max_s=30, keep_waiting=keep_waiting)
    # Heard at once, it stops at about 7.5 s; waited out, the 8 s backoff would end at 15 s at the earliest. The
    # threshold sits between the two, seconds from either, so a busy machine does not decide it.
    assert time.monotonic() - started < 12
    assert len(asked) >= 4  # asked every quarter second: a heartbeat can go out meanwhile


def test_a_files_frames_are_timed_on_the_clips_own_clock(tmp_path):
    """--start-time first; else the container's creation time; else the file's mtime as the clip's end."""
    from datetime import datetime, timezone

    labels, _ = write_video(VideoSpec(seed=3, index=0, frames=30, width=320, height=240), tmp_path)
    path = labels.with_name(labels.name.replace(".labels.json", ".mp4"))
    start = datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc)
    source = VideoSource(str(path), start_time=start)
    frames = list(source.frames())
    assert source.clock_source == "--start-time"
    assert [f.ts for f in frames[:2]] == [start.timestamp(), start.timestamp() + 1 / 30]
    assert container_creation_time(path) is None  # OpenCV's writer leaves the creation time at 0
    os.utime(path, (start.timestamp() + 1, start.timestamp() + 1))
    source = VideoSource(str(path))
    assert source.clock_source.startswith("the file's modification time")
    assert next(source.frames()).ts == start.timestamp()  # 30 frames at 30 fps ended one second later
    # A container that does record its creation time (mvhd version 0: seconds since 1904) is believed.
    stamped = tmp_path / "stamped.mp4"
    data = path.read_bytes()
    at = data.index(b"mvhd") + 8  # after the box's kind, its version and flags
    data = data[:at] + int(start.timestamp() - MP4_EPOCH).to_bytes(4, "big") + data[at + 4 :]
    stamped.write_bytes(data)
    assert container_creation_time(stamped) == start.timestamp()
    source = VideoSource(str(stamped))
    assert source.clock_source == "the container's creation time" and next(source.frames()).ts == start.timestamp()
    assert container_creation_time(tmp_path / "stamped.labels.json") is None
    with pytest.raises(ShelfWatchError, match="--start-time is for video files"):
        VideoSource("rtsp://127.0.0.1:9/none", max_reconnects=0, start_time=start)


@pytest.fixture
def web_server(tmp_path):
    """A plain web server over `tmp_path/www` (Python's, which ignores range requests, as many do), and one that
    answers 503 to everything (a camera's web server while it boots)."""
    import http.server
    import threading

    (tmp_path / "www").mkdir()

    class Booting(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(503)

        def log_message(self, *args) -> None:
            pass

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)

        def log_message(self, *args) -> None:
            pass

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Files, Booting)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield tmp_path / "www", *(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    for s in servers:
        s.shutdown()


def test_a_web_source_that_answers_but_can_never_be_read_is_a_clear_error(web_server, shelfwatch, tmp_path):
    """Issue 21.8: an MP4 whose index is at its end, from a server without range requests, and a 404 were retried
    forever as "stream unreachable". `edge run` now says what is wrong, once (exit 2); the same video with its index
    at the front plays from the same server, and a server that does not answer, or answers 503, is retried."""
    from tests.clips import bars_clip
    from tests.conftest import free_port

    www, files, booting = web_server
    bars_clip(www / "index-at-end.mp4", 640, 480, 60, noise=True)  # 4 MB
    bars_clip(www / "index-in-front.mp4", 640, 480, 60, noise=True, faststart=True)
    bundle = Path(__file__).resolve().parents[2] / "models" / "demo"
    common = ("edge", "run", "--bundle", bundle, "--max-frames", 5, "--outbox", tmp_path / "outbox.sqlite")
    result = shelfwatch(*common, "--source", f"{files}/index-at-end.mp4", timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "index-at-end.mp4: the server answers, but what it sends cannot be decoded as video (a file served " \
           "without range requests" in result.stderr  # fmt: skip
    result = shelfwatch(*common, "--source", f"{files}/no-such-clip.mp4", timeout=120)
    assert result.returncode == 2 and result.stderr == (f"shelfwatch: error: {files}/no-such-clip.mp4: the server "
                                                        "answers HTTP 404; there is no video there\n")  # fmt: skip
    played = VideoSource(f"{files}/index-in-front.mp4")  # the same server, the index where a stream reader finds it
    first = list(itertools.islice(played.frames(), 5))  # a stream: it would go on
    assert [f.index for f in first] == [0, 1, 2, 3, 4]
    played.close()
    for down in (f"http://127.0.0.1:{free_port()}/stream", f"{booting}/stream"):
        with pytest.raises(ShelfWatchError, match="unreachable, and 1 reconnects failed"):
            VideoSource(down, read_timeout_s=1, max_reconnects=1)
