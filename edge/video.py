"""Frames in: video files, network streams (rtsp://, http://) and local cameras, through OpenCV.

A file that is missing, unreadable or not a video is a clear error. A stream that drops is reopened with
exponential backoff (1 s, 2 s, 4 s … up to `reconnect_max_s`), and the gap is reported to the caller so
the models can forget the past. Reads time out (OpenCV's FFmpeg timeouts) instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ShelfWatchError


@dataclass(frozen=True)
class Frame:
    index: int  # counts every frame handed out, across reconnects
    ts: float  # UNIX time the frame shows (files: start time + position / fps)
    image: np.ndarray  # BGR
    after_gap: bool = False  # frames were lost just before this one


def is_stream(source: str) -> bool:
    return "://" in source


class VideoSource:
    def __init__(
        self,
        source: str,
        read_timeout_s: float = 5.0,
        reconnect_max_s: float = 30.0,
        realtime: bool = False,
        on_reconnect: Callable[[str], None] | None = None,
        max_reconnects: int | None = None,
    ) -> None:
        self.source, self.read_timeout_s, self.reconnect_max_s = source, read_timeout_s, reconnect_max_s
        self.realtime = realtime
        self.on_reconnect = on_reconnect or (lambda message: None)
        self.max_reconnects = max_reconnects
        self.reconnects = 0
        self.kind = "stream" if is_stream(source) else "camera" if source.isdigit() else "file"
        if self.kind == "file":
            path = Path(source)
            if not path.is_file():
                raise ShelfWatchError(f"{source}: no such video file")
        if self.kind == "stream":
            self.cap = None
            self._reconnect(first=True)  # a box may boot before its camera: keep trying, and say so
        else:
            self.cap = self._open()
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        if not 1 <= self.fps <= 240:
            self.fps = 30.0
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.kind == "file" else 0
        self.frame_count: int | None = count if count > 0 else None  # a file's length, as its container says

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

    def frames(self) -> Iterator[Frame]:
        index, gap = 0, False
        started = time.time()
        while True:
            ok, image = self.cap.read()
            if not ok or image is None:
                if self.kind == "file":
                    if index == 0:
                        raise ShelfWatchError(f"{self.source}: no frame could be decoded (corrupt or not a video)")
                    return
                self._reconnect()
                gap = True
                continue
            if self.kind == "file":
                ts = started + index / self.fps
                if self.realtime:
                    time.sleep(max(0.0, ts - time.time()))
            else:
                ts = time.time()
            yield Frame(index, ts, image, gap)
            index, gap = index + 1, False

    def _reconnect(self, first: bool = False) -> None:
        if self.cap is not None:
            self.cap.release()
        delay = 1.0
        if first:
            try:
                self.cap = self._open()
                return
            except ShelfWatchError:
                pass
        while True:
            if self.max_reconnects is not None and self.reconnects >= self.max_reconnects:
                raise ShelfWatchError(f"{self.source}: unreachable, and {self.reconnects} reconnects failed")
            self.reconnects += 1
            self.on_reconnect(
                f"{self.source}: stream unreachable; retrying in {delay:.0f} s (attempt {self.reconnects})"
            )
            time.sleep(delay)
            try:
                self.cap = self._open()
                return
            except ShelfWatchError:
                delay = min(delay * 2, self.reconnect_max_s)

    def close(self) -> None:
        self.cap.release()
