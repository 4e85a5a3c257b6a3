"""The annotated video: product boxes with SKU names, shelf zones, shoppers with their baskets, and the
current action with its confidence, on every frame.

Written as MPEG-4 Part 2 (`mp4v`, OpenCV's own writer: what a box has) or as H.264 (`h264`, through PyAV's
libx264, which browsers play; PyAV is imported only when asked for, since a box may not have it)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.classes import ACTION_CLASSES
from edge.config import Zone
from edge.detector import Detection
from edge.errors import ShelfWatchError
from edge.scene import Shopper

FONT = cv2.FONT_HERSHEY_SIMPLEX
GREEN, ORANGE, WHITE, GREY, CYAN = (80, 200, 80), (0, 150, 255), (255, 255, 255), (160, 160, 160), (255, 220, 0)


Codec = Literal["mp4v", "h264"]


class Annotator:
    def __init__(
        self, path: Path, fps: float, size: tuple[int, int], zones: list[Zone], names: dict[str, str],
        codec: Codec = "mp4v",
    ) -> None:  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer: cv2.VideoWriter | H264Writer
        if codec == "h264":
            self.writer = H264Writer(path, fps, size)
        else:
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            if not self.writer.isOpened():
                raise ShelfWatchError(f"{path}: cannot write a video there")
        self.zones = [np.array(z.polygon, np.int32) for z in zones]
        self.names = names

    def write(
        self,
        frame: np.ndarray,
        detections: list[Detection],
        shoppers: list[Shopper],
        baskets: dict[int, dict[str, int]],
        action: tuple[int, float] | None,
        active: bool,
        fps: float,
    ) -> None:
        out = frame.copy()
        cv2.polylines(out, self.zones, True, CYAN, 1)
        for d in detections:
            x1, y1, x2, y2 = (int(v) for v in d.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), GREEN, 1)
            _label(out, f"{self.names.get(d.sku, d.sku)} {d.confidence:.2f}", (x1, y1 - 2), GREEN, 0.3)
        labelled: set[int] = set()
        for s in sorted(shoppers, key=lambda s: -s.frames):  # a shopper's basket once, on their oldest blob
            x1, y1, x2, y2 = s.box
            cv2.rectangle(out, (x1, y1), (x2, y2), ORANGE, 1)
            if s.id in labelled:
                continue
            labelled.add(s.id)
            items = baskets.get(s.id, {})
            text = f"shopper {s.id}: " + (", ".join(f"{n}x {self.names.get(k, k)}" for k, n in items.items()) or "-")
            _label(out, text, (x1, min(y2 + 12, out.shape[0] - 4)), ORANGE, 0.35)
        status = "idle (models skipped)" if not active else "no action yet"
        if active and action is not None:
            status = f"{ACTION_CLASSES[action[0]].replace('_', ' ')} {action[1]:.2f}"
        _label(out, f"{status}   {fps:.0f} fps", (6, out.shape[0] - 8), WHITE if active else GREY, 0.5)
        self.writer.write(out)

    def close(self) -> None:
        self.writer.release()


class H264Writer:
    """cv2.VideoWriter's `write`/`release` over PyAV's libx264: H.264 in MP4, yuv420p, the index at the front
    (`+faststart`) so that a browser starts playing, and seeks, before the whole file has arrived."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        try:
            import av
        except ImportError:
            raise ShelfWatchError("H.264 output needs PyAV: pip install av") from None
        try:
            self.container = av.open(str(path), "w", options={"movflags": "+faststart"})
        except OSError as exc:
            raise ShelfWatchError(f"{path}: cannot write a video there ({exc.strerror or exc})") from None
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        # yuv420p halves the chroma both ways: an odd width or height loses its last pixel column or row.
        self.width, self.height = size[0] & ~1, size[1] & ~1
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        # superfast: on 640x480 frames here 7 ms a frame against veryfast's 12 (ultrafast: 3.6 ms but twice the
        # bytes); crf 23 is x264's default quality. About 14 MB a minute at 640x480.
        self.stream.options = {"preset": "superfast", "crf": "23"}
        self._frame = av.VideoFrame

    def write(self, image: np.ndarray) -> None:
        for packet in self.stream.encode(self._frame.from_ndarray(image[: self.height, : self.width], format="bgr24")):
            self.container.mux(packet)

    def release(self) -> None:
        for packet in self.stream.encode():  # flush the encoder's delayed frames
            self.container.mux(packet)
        self.container.close()


def _label(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = max(0, org[0]), max(h + 2, org[1])
    cv2.rectangle(img, (x, y - h - 2), (x + w + 2, y + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y), FONT, scale, colour, 1, cv2.LINE_AA)
