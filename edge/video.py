"""Frames in: video files, network streams (rtsp://, http://) and local cameras, through OpenCV.

A file's frames are timed on the clip's own clock: `start_time` (`edge run --start-time`), else the creation time
its MP4/MOV container records, else its modification time taken as the end of the recording (a recorder
finishes writing a clip when the clip ends); then position / fps. A camera or stream is timed by the box's clock
as each frame arrives. A file that is missing, unreadable or not a video is a clear error. A stream that drops
is reopened with exponential backoff (1 s, 2 s, 4 s … up to `reconnect_max_s`), and the gap is reported to the caller so
the models can forget the past. Reads time out (OpenCV's FFmpeg timeouts) instead of hanging.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import numpy as np

from edge.errors import ShelfWatchError
from edge.retry import Backoff


@dataclass(frozen=True)
class Frame:
    index: int  # counts every frame handed out, across reconnects
    ts: float  # UNIX time the frame shows (files: the clip's start time + position / fps)
    image: np.ndarray  # BGR
    after_gap: bool = False  # frames were lost just before this one


MIN_SIZE = (160, 120)  # the motion mask's size: a smaller picture cannot show a shelf, hands and products


class SourceStopped(Exception):
    """A stop was requested while the source was waiting for its stream to come back."""


def is_stream(source: str) -> bool:
    return "://" in source


class VideoSource:
    """`frames()` hands out the frames in order. `on_reconnect` hears each new attempt to reach a stream,
    `on_warning` why it failed and what a damaged file lost; `keep_waiting` is asked about every quarter second
    while a stream is unreachable: it may send a heartbeat, and False ends the wait (`frames()` ends; the first
    connection raises `SourceStopped`)."""

    def __init__(
        self,
        source: str,
        read_timeout_s: float = 5.0,
        reconnect_max_s: float = 30.0,
        realtime: bool = False,
        on_reconnect: Callable[[str], None] | None = None,
        max_reconnects: int | None = None,
        keep_waiting: Callable[[], bool] | None = None,
        on_warning: Callable[[str], None] | None = None,
        start_time: datetime | None = None,
    ) -> None:
        self.source, self.read_timeout_s, self.reconnect_max_s = source, read_timeout_s, reconnect_max_s
        self.realtime = realtime
        self.on_reconnect = on_reconnect or (lambda message: None)
        self.keep_waiting = keep_waiting or (lambda: True)
        self.on_warning = on_warning or (lambda message: None)
        self.max_reconnects = max_reconnects
        self.reconnects = 0
        self.kind = "stream" if is_stream(source) else "camera" if source.isdigit() else "file"
        self.cap: cv2.VideoCapture | None = None
        self._pending: list[np.ndarray] = []  # frames read ahead (the first, to learn the picture's size)
        if start_time is not None and self.kind != "file":
            raise ShelfWatchError("--start-time is for video files: a camera or stream is timed as its frames arrive")
        if self.kind == "file":
            path = Path(source)
            if not path.is_file():
                raise ShelfWatchError(f"{source}: no such video file")
        if self.kind == "stream":
            self._reconnect(first=True)  # a box may boot before its camera: keep trying, and say so
        else:
            self._connect()
        assert self.cap is not None
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        if not 1 <= self.fps <= 240:
            self.fps = 30.0
        # The decoded frame is the truth about the size: a stream's container may report 0 before it plays.
        self.height, self.width = self._pending[0].shape[:2]
        if self.width < MIN_SIZE[0] or self.height < MIN_SIZE[1]:
            raise ShelfWatchError(f"{source}: its frames are {self.width}x{self.height}, too small to watch a shelf "
                                  f"(at least {MIN_SIZE[0]}x{MIN_SIZE[1]})")  # fmt: skip
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.kind == "file" else 0
        self.frame_count: int | None = count if count > 0 else None  # a file's length, as its container says
        if self.kind == "file":
            ok, second = self.cap.read()
            if not ok or second is None:
                raise ShelfWatchError(f"{source}: holds a single picture, not a video")
            self._pending.append(second)
        # Where a file's clock starts, and what said so (the agent logs it).
        self.clock_start, self.clock_source = time.time(), "the box's clock"
        if self.kind == "file":
            created = container_creation_time(Path(source))
            if start_time is not None:
                self.clock_start, self.clock_source = start_time.timestamp(), "--start-time"
            elif created is not None:
                self.clock_start, self.clock_source = created, "the container's creation time"
            else:
                length = (self.frame_count or 0) / self.fps
                self.clock_start = Path(source).stat().st_mtime - length
                self.clock_source = "the file's modification time taken as the clip's end; --start-time says better"

    def _open(self) -> cv2.VideoCapture:
        ms = int(self.read_timeout_s * 1000)
        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.source))
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            what = "a video" if self.kind == "file" else f"a {self.kind}"
            raise ShelfWatchError(f"{self.source}: cannot be opened as {what}")
        return cap

    def _connect(self) -> None:
        """Open the source and decode its first frame: a source that opens but shows nothing is not connected (an
        MP4 served over HTTP without range requests opens, then decodes nothing)."""
        cap = self._open()
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise ShelfWatchError(f"{self.source}: opened, but no frame could be decoded (corrupt or not a video)")
        self.cap, self._pending = cap, [image]

    def frames(self) -> Iterator[Frame]:
        index, gap = 0, False
        started = time.time()  # for --realtime pacing
        while True:
            assert self.cap is not None
            ok, image = (True, self._pending.pop(0)) if self._pending else self.cap.read()
            if not ok or image is None:
                if self.kind == "file":
                    self._check_length(index)
                    return
                try:
                    self._reconnect()
                except SourceStopped:
                    return
                gap = True
                continue
            if self.kind == "file":
                ts = self.clock_start + index / self.fps
                if self.realtime:
                    time.sleep(max(0.0, started + index / self.fps - time.time()))
            else:
                ts = time.time()
            yield Frame(index, ts, image, gap)
            index, gap = index + 1, False

    def _check_length(self, decoded: int) -> None:
        """A file that ends early or skips stretches was damaged: say so, since its counts are incomplete. (Its
        timestamps cannot tell where: with B-frames they run out of order.)"""
        if self.frame_count is not None and decoded < self.frame_count - 1:
            self.on_warning(f"{self.source}: only {decoded} of the {self.frame_count} frames its container lists "
                            "could be decoded (the file is damaged or truncated)")  # fmt: skip

    def _reconnect(self, first: bool = False) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        backoff = Backoff(1.0, self.reconnect_max_s)
        if first:
            try:
                self._connect()
                return
            except ShelfWatchError:
                pass
        if first:
            self._never_readable()
        while True:
            if self.max_reconnects is not None and self.reconnects >= self.max_reconnects:
                raise ShelfWatchError(f"{self.source}: unreachable, and {self.reconnects} reconnects failed")
            self.reconnects += 1
            delay = backoff.next()
            self.on_reconnect(
                f"{self.source}: stream unreachable; retrying in {delay:.0f} s (attempt {self.reconnects})"
            )
            self._wait(delay)
            try:
                self._connect()
                return
            except ShelfWatchError as exc:
                if self.reconnects == 1 or delay >= self.reconnect_max_s:
                    self.on_warning(str(exc))  # why, once, and again while it stays down

    def _never_readable(self) -> None:
        """Before a stream has shown a frame: a web server that answers, but with what no retry will make readable
        (404, 403, or a 200 that does not decode, like an MP4 served without range requests, whose index FFmpeg
        cannot reach) is a ShelfWatchError now. A server that does not answer (a camera that is down or booting)
        or answers 5xx is retried, as is any stream that has shown frames before."""
        answer = http_answer(self.source, self.read_timeout_s)
        if answer is None:
            return
        status, headers = answer
        if status in (408, 425, 429) or status >= 500:
            return
        if status >= 400:
            raise ShelfWatchError(f"{self.source}: the server answers HTTP {status}; there is no video there")
        hint = ""
        if headers.get("accept-ranges", "none").lower() == "none" and headers.get("content-length"):
            hint = (" (a file served without range requests: a video whose index is at its end cannot be read "
                    "that way; serve it with range support, or move the index to the front with "
                    "`ffmpeg -i IN -c copy -movflags faststart OUT`)")  # fmt: skip
        raise ShelfWatchError(f"{self.source}: the server answers, but what it sends cannot be decoded as video{hint}")

    def _wait(self, seconds: float) -> None:
        """Sleep in short slices, so that a heartbeat still goes out and a stop request is heard at once."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not self.keep_waiting():
                raise SourceStopped
            time.sleep(min(0.25, left))
        if not self.keep_waiting():
            raise SourceStopped

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


def http_answer(url: str, timeout_s: float) -> tuple[int, dict[str, str]] | None:
    """An http(s) source's status and headers (its body is not read); None when it is another kind of stream or
    nothing answers. The certificate is not checked: only the status is wanted, and cameras often have their own."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    headers = {"Range": "bytes=0-0"}
    if parts.username is not None:  # FFmpeg takes credentials from the URL; urllib needs them as a header
        user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc += f":{parts.port}" if parts.port else ""
    plain = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    try:
        context = ssl._create_unverified_context() if parts.scheme == "https" else None
        with urllib.request.urlopen(urllib.request.Request(plain, headers=headers), timeout=timeout_s,
                                    context=context) as answer:  # fmt: skip
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}
    except (OSError, ValueError, http.client.HTTPException):  # refused, unreachable, timed out, not HTTP
        return None


MP4_EPOCH = -2082844800  # 1904-01-01 in UNIX time: where MP4/MOV times count from


def container_creation_time(path: Path) -> float | None:
    """The creation time an MP4/MOV file's movie header (`moov/mvhd`) records, as UNIX time; None when it has none
    (0, as many encoders write, or a time before 1990 or in the future) or is not such a file."""
    try:
        with path.open("rb") as f:
            size_total = path.stat().st_size
            pos, end = 0, size_total
            for wanted in (b"moov", b"mvhd"):
                found = None
                while pos + 8 <= end:
                    f.seek(pos)
                    size, kind = struct.unpack(">I4s", f.read(8))
                    header = 8
                    if size == 1:
                        size, header = struct.unpack(">Q", f.read(8))[0], 16
                    elif size == 0:
                        size = end - pos
                    if size < header:
                        return None
                    if kind == wanted:
                        found = (pos + header, pos + size)
                        break
                    pos += size
                if found is None:
                    return None
                pos, end = found
            f.seek(pos)
            version = f.read(4)[0]
            raw = struct.unpack(">Q", f.read(8))[0] if version == 1 else struct.unpack(">I", f.read(4))[0]
    except (OSError, struct.error, IndexError):
        return None
    created = MP4_EPOCH + raw
    if raw == 0 or not 631152000 <= created <= time.time() + 86400:  # 1990 .. tomorrow
        return None
    return float(created)
