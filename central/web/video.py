"""What an upload is, before a worker spends minutes on it: a video OpenCV decodes, not empty, not cut short,
not a still picture, not longer than the limit. Each refusal is one sentence for the page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge.errors import ShelfWatchError

# The containers we accept, by their first bytes (the file name proves nothing).
SIGNATURES = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"),
    (0, b"\x00\x00\x01\xba", "MPEG"),
    (0, b"\x47", "MPEG-TS"),
)
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts"}


@dataclass(frozen=True)
class VideoInfo:
    container: str
    width: int
    height: int
    fps: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def container_of(head: bytes) -> str | None:
    for offset, magic, name in SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def probe(path: Path, max_seconds: float) -> VideoInfo:
    """The video's size, rate and length; ShelfWatchError (one sentence) if it is not one we can analyse."""
    size = path.stat().st_size
    if size == 0:
        raise ShelfWatchError("the file is empty")
    with path.open("rb") as f:
        container = container_of(f.read(16))
    cap = cv2.VideoCapture(str(path))
    try:
        ok = cap.isOpened() and cap.read()[0]
        if not ok:
            if container is None:
                raise ShelfWatchError("this is not a video (accepted: MP4, MOV, MKV, WebM, AVI, MPEG)")
            raise ShelfWatchError(f"the {container} file is truncated or damaged: no frame could be decoded")
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if container is None or frames < 2:
            raise ShelfWatchError("this is a still picture, not a video")
        if not (math.isfinite(fps) and 0 < fps <= 1000):
            raise ShelfWatchError(f"the {container} file has no usable frame rate ({fps:g})")
        seconds = frames / fps
        if seconds > max_seconds:
            raise ShelfWatchError(f"the video is {_duration(seconds)} long; the limit is {_duration(max_seconds)}")
        # A file cut short still opens when its index is at the front, and promises frames it does not have.
        cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, int(frames * 0.98) - 1))
        if not cap.read()[0]:
            raise ShelfWatchError(f"the {container} file is truncated: it ends before the {frames} frames it announces")
    finally:
        cap.release()
    return VideoInfo(container, width, height, fps, frames)


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes and s else f"{minutes} min" if minutes else f"{s} s"
