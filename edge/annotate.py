"""The annotated video: what a person needs labelled (the product in a hand, the slot a hand is touching, each
shopper's basket, picks and put-backs as they happen), the rest drawn quietly (products on the shelf as thin grey
boxes, the shelf zones), and the current action with its confidence, on every frame.

Written as MPEG-4 Part 2 (`mp4v`, OpenCV's own writer: what a box has) or as H.264 (`h264`, through PyAV's
libx264, which browsers play; PyAV is imported only when asked for, since a box may not have it)."""

from __future__ import annotations

from dataclasses import dataclass
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
MAGENTA, YELLOW = (200, 60, 230), (0, 230, 255)
UNFAMILIAR = "UNFAMILIAR FOOTAGE: unlike the model's training, events here are not sure"


Codec = Literal["mp4v", "h264"]


@dataclass(frozen=True)
class Label:
    text: str
    rect: tuple[int, int, int, int]  # x1, y1, x2, y2 of its background, frame pixels
    colour: tuple[int, int, int]
    scale: float


@dataclass(frozen=True)
class Happening:
    """A pick or put-back the box just reported, shown for SHOW_S on the video."""

    ts: float
    kind: str  # pick or putback
    sku: str
    shopper: int | None


SHOW_S = 2.0  # how long a pick or put-back stays on the video
TOUCH_NEAR = 0.15  # of the frame width: how far from the hand's place a shelf product is the slot touched


class Placer:
    """Labels that never overlap: each goes where it is asked, or a line lower (a few tries), or is left out."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.width, self.height = size
        self.placed: list[Label] = []

    def put(self, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> Label | None:
        (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
        x = int(min(max(0, org[0]), max(0, self.width - w - 2)))
        y = int(max(h + 2, org[1]))
        for _ in range(4):
            rect = (x, y - h - 2, x + w + 2, y + 2)
            if rect[3] <= self.height and not any(_overlap(rect, other.rect) for other in self.placed):
                label = Label(text, rect, colour, scale)
                self.placed.append(label)
                return label
            y += h + 5
        return None


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class Annotator:
    """What a person needs, labelled; the rest drawn quietly: products on the shelf as thin grey boxes, the slot a
    hand is touching and the product in a hand named, each shopper with their basket, and each pick and put-back
    as it happens (for SHOW_S). No two labels overlap (`Placer`)."""

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
        self.size = size

    def name(self, sku: str) -> str:
        return self.names.get(sku, sku)

    def on_shelf(self, d: Detection) -> bool:
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        return any(cv2.pointPolygonTest(z.reshape(-1, 1, 2).astype(np.float32), (cx, cy), False) >= 0
                   for z in self.zones)  # fmt: skip

    def plan(
        self, detections: list[Detection], shoppers: list[Shopper], baskets: dict[int, dict[str, int]],
        touched_x: float | None = None, happenings: list[Happening] | None = None, now: float | None = None,
    ) -> tuple[list[Label], list[tuple[Detection, tuple[int, int, int]]]]:  # fmt: skip
        """The labels of one frame, placed so that none overlaps another, and the product boxes with their colours
        (grey: on the shelf; cyan: the slot a hand is touching; green: in a hand)."""
        placer = Placer(self.size)
        boxes: list[tuple[Detection, tuple[int, int, int]]] = []
        for h in happenings or []:  # what just happened first: it matters most
            if now is not None and not 0 <= now - h.ts <= SHOW_S:
                continue
            who = f" · shopper {h.shopper}" if h.shopper else ""
            verb = "PICKED" if h.kind == "pick" else "PUT BACK"
            placer.put(f"{verb} {self.name(h.sku)}{who}", (6, 18), YELLOW, 0.5)
        shelf = [d for d in detections if self.on_shelf(d)]
        touched = None
        if touched_x is not None and shelf:
            touched = min(shelf, key=lambda d: abs((d.box[0] + d.box[2]) / 2 - touched_x))
            if abs((touched.box[0] + touched.box[2]) / 2 - touched_x) > TOUCH_NEAR * self.size[0]:
                touched = None
        for d in detections:
            x1, y1 = int(d.box[0]), int(d.box[1])
            if d is touched:
                boxes.append((d, CYAN))
                placer.put(f"touching {self.name(d.sku)}", (x1, int(d.box[3]) + 12), CYAN, 0.4)
            elif d in shelf:
                boxes.append((d, GREY))
            else:
                boxes.append((d, GREEN))
                placer.put(f"in hand: {self.name(d.sku)}", (x1, y1 - 2), GREEN, 0.4)
        labelled: set[int] = set()
        for s in sorted(shoppers, key=lambda s: -s.frames):  # a shopper's basket once, on their oldest blob
            if s.id in labelled:
                continue
            labelled.add(s.id)
            items = baskets.get(s.id, {})
            text = f"shopper {s.id}: " + (", ".join(f"{n}x {self.name(k)}" for k, n in items.items()) or "-")
            placer.put(text, (s.box[0], min(s.box[3] + 12, self.size[1] - 4)), ORANGE, 0.35)
        return placer.placed, boxes

    def write(
        self,
        frame: np.ndarray,
        detections: list[Detection],
        shoppers: list[Shopper],
        baskets: dict[int, dict[str, int]],
        action: tuple[int, float] | None,
        active: bool,
        fps: float,
        familiar: bool | None = None,
        touched_x: float | None = None,
        happenings: list[Happening] | None = None,
        now: float | None = None,
    ) -> None:
        """`familiar`: the familiarity guard's verdict on this frame (False: marked; None: not scored or no guard).
        `touched_x`: where along the shelf a hand is (frame pixels; None: no hand in the shelf); `happenings`: the
        picks and put-backs reported lately, shown for SHOW_S after `now` (the frame's time)."""
        out = frame.copy()
        cv2.polylines(out, self.zones, True, CYAN, 1)
        labels, boxes = self.plan(detections, shoppers, baskets, touched_x, happenings, now)
        for d, colour in boxes:
            x1, y1, x2, y2 = (int(v) for v in d.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2 if colour != GREY else 1)
        for s in shoppers:
            cv2.rectangle(out, s.box[:2], s.box[2:], ORANGE, 1)
        for label in labels:
            _draw(out, label)
        status = "idle (models skipped)" if not active else "no action yet"
        if active and action is not None:
            status = f"{ACTION_CLASSES[action[0]].replace('_', ' ')} {action[1]:.2f}"
        _label(out, f"{status}   {fps:.0f} fps", (6, out.shape[0] - 8), WHITE if active else GREY, 0.5)
        if familiar is False:  # a frame border and a line on top: nothing shown here passes as a sure fact
            h, w = out.shape[:2]
            cv2.rectangle(out, (1, 1), (w - 2, h - 2), MAGENTA, 3)
            _label(out, UNFAMILIAR, (6, 18), MAGENTA, 0.45)
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


def _draw(img: np.ndarray, label: Label) -> None:
    x1, y1, x2, y2 = label.rect
    cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 0), -1)
    cv2.putText(img, label.text, (x1 + 1, y2 - 2), FONT, label.scale, label.colour, 1, cv2.LINE_AA)


def _label(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = max(0, org[0]), max(h + 2, org[1])
    cv2.rectangle(img, (x, y - h - 2), (x + w + 2, y + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y), FONT, scale, colour, 1, cv2.LINE_AA)
