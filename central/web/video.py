"""What an upload is, before a worker spends minutes on it: a video OpenCV decodes, not empty, not cut short,
not a still picture, not longer than the limit, not a picture too small or too large. Each refusal is one sentence
for the page. The server asks `probe_apart`, which decodes in a process of its own under the analyses' memory
limit."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2

from central.web.apart import answer_apart, run_apart
from edge.errors import ShelfWatchError
from edge.video import MIN_SIZE

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


def probe(path: Path, max_seconds: float, max_pixels: int = 1920 * 1080) -> VideoInfo:
    """The video's size, rate and length; ShelfWatchError (one sentence) if it is not one we can analyse. The
    size is the decoded picture's (what the analysis will hold), never what the container claims."""
    size = path.stat().st_size
    if size == 0:
        raise ShelfWatchError("the file is empty")
    with path.open("rb") as f:
        container = container_of(f.read(16))
    cap = cv2.VideoCapture(str(path))
    try:
        # What the container says, before a frame is decoded: an 8K frame alone is 100 MB.
        _check_size(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), max_pixels)
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            if container is None:
                raise ShelfWatchError("this is not a video (accepted: MP4, MOV, MKV, WebM, AVI, MPEG)")
            raise ShelfWatchError(f"the {container} file is truncated or damaged: no frame could be decoded")
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        height, width = first.shape[:2]
        if container is None or frames < 2:
            raise ShelfWatchError("this is a still picture, not a video")
        if not (math.isfinite(fps) and 0 < fps <= 1000):
            raise ShelfWatchError(f"the {container} file has no usable frame rate ({fps:g})")
        seconds = frames / fps
        if seconds > max_seconds:
            raise ShelfWatchError(f"the video is {_duration(seconds)} long; the limit is {_duration(max_seconds)}")
        if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
            raise ShelfWatchError(f"its frames are {width}x{height}, too small to watch a shelf (at least "
                                  f"{MIN_SIZE[0]}x{MIN_SIZE[1]})")  # fmt: skip
        _check_size(width, height, max_pixels)  # what was decoded: the container may have said less
        # A file cut short still opens when its index is at the front, and promises frames it does not have.
        cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, int(frames * 0.98) - 1))
        if not cap.read()[0]:
            raise ShelfWatchError(f"the {container} file is truncated: it ends before the {frames} frames it announces")
    finally:
        cap.release()
    return VideoInfo(container, width, height, fps, frames)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:  # an 8K clip of 1.6 MB once took an analysis to 3.2 GB
        raise ShelfWatchError(f"its picture is {width}x{height}, over the {max_pixels:,} pixels an analysis may "
                              "take (max_video_pixels): scale it down first")  # fmt: skip


def probe_apart(path: Path, max_seconds: float, max_pixels: int, memory_mb: int, timeout_s: float = 120) -> VideoInfo:
    """`probe` in a process of its own, under the analyses' memory limit (`worker_memory_mb`): decoding a hostile
    file's first frame costs that process, never the server (an 8K frame took 350 MB of the server's memory when the
    server decoded it itself)."""
    args = [str(path), repr(max_seconds), str(max_pixels), str(memory_mb)]
    answer = run_apart("central.web.video", args, memory_mb, timeout_s)
    return VideoInfo(**answer)


def main(argv: list[str]) -> int:
    """`python -m central.web.video PATH MAX_SECONDS MAX_PIXELS MEMORY_MB`: one JSON line, the VideoInfo or the
    error (see `probe_apart`)."""
    path, seconds, pixels, memory = argv
    return answer_apart(lambda: probe(Path(path), float(seconds), int(pixels)), int(memory))


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes and s else f"{minutes} min" if minutes else f"{s} s"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
