"""The annotated video: product boxes with SKU names, shelf zones, shoppers with their baskets, and the
current action with its confidence, on every frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.classes import ACTION_CLASSES
from edge.config import Zone
from edge.detector import Detection
from edge.errors import ShelfWatchError
from edge.scene import Shopper

FONT = cv2.FONT_HERSHEY_SIMPLEX
GREEN, ORANGE, WHITE, GREY, CYAN = (80, 200, 80), (0, 150, 255), (255, 255, 255), (160, 160, 160), (255, 220, 0)


class Annotator:
    def __init__(self, path: Path, fps: float, size: tuple[int, int], zones: list[Zone], names: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
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


def _label(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = max(0, org[0]), max(h + 2, org[1])
    cv2.rectangle(img, (x, y - h - 2), (x + w + 2, y + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y), FONT, scale, colour, 1, cv2.LINE_AA)
