"""The picture an installer draws zones on, from what they uploaded: a still (JPEG or PNG) as it is, or a frame of
a short clip with nobody in it (the box's own rule for a snapshot: `edge.scene.QuietWatch`), else the latest
frame looked at, marked as such.

It is decoded in a process of its own under the analyses' memory limit (`worker_memory_mb`), like a probe: a hostile
file costs that process, never the server."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from central.web.apart import answer_apart, run_apart
from edge.errors import ShelfWatchError

STILL_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
CLIP_SCAN_S = 20.0  # how far into a clip a quiet frame is looked for


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    quiet: bool  # a frame with nobody moving (a still: assumed so)
    clip: bool  # it came from a clip (kept for "Try it")


def is_still(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(8)
    return any(head.startswith(m) for m in STILL_MAGIC)


def _still(path: Path, max_pixels: int) -> tuple[np.ndarray, bool]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ShelfWatchError("the picture could not be decoded (send a JPEG or PNG, or a clip)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ShelfWatchError(f"the picture is {image.shape[1]}x{image.shape[0]}: larger than the pages take")
    return image, True


def _clip_frame(path: Path, max_pixels: int) -> tuple[np.ndarray, bool]:
    from central.web.video import probe
    from edge.scene import QUIET_HOLD_S, QUIET_WARMUP_S, MotionWatcher, QuietWatch

    info = probe(path, 24 * 3600, max_pixels)
    capture = cv2.VideoCapture(str(path))
    fps = info.fps or 25.0
    watcher = MotionWatcher((info.width, info.height), [])
    quiet = QuietWatch(round(QUIET_WARMUP_S * fps), max(1, round(QUIET_HOLD_S * fps)))
    latest, scanned = None, 0
    try:
        while scanned < CLIP_SCAN_S * fps:
            ok, frame = capture.read()
            if not ok:
                break
            scanned += 1
            if quiet.update(watcher.update(frame)):
                return frame, True
            latest = frame
    finally:
        capture.release()
    if latest is None:
        raise ShelfWatchError("the clip has no frame that decodes")
    return latest, False  # nobody left the picture: the latest frame, marked as such


def extract(path: Path, out: Path, max_pixels: int) -> Picture:
    """The picture of `path` (a still or a clip) written to `out` as a JPEG."""
    still = is_still(path)
    image, quiet = _still(path, max_pixels) if still else _clip_frame(path, max_pixels)
    cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return Picture(image.shape[1], image.shape[0], quiet, not still)


def extract_apart(path: Path, out: Path, max_pixels: int, memory_mb: int, timeout_s: float = 120) -> Picture:
    """`extract` in a process of its own, under `memory_mb`."""
    args = [str(path), str(out), str(max_pixels), str(memory_mb)]
    answer = run_apart("central.web.picture", args, memory_mb, timeout_s)
    return Picture(**answer)


def main(argv: list[str]) -> int:
    """`python -m central.web.picture IN OUT MAX_PIXELS MEMORY_MB`: one JSON line, the Picture or the error."""
    path, out, pixels, memory = argv
    return answer_apart(lambda: extract(Path(path), Path(out), int(pixels)), int(memory))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
