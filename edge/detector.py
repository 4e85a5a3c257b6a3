"""Product detection with an ultralytics YOLO graph exported to ONNX; letterboxing, box decoding and
non-maximum suppression here, in numpy and OpenCV, as ultralytics does them (tested against its own
predictions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.bundle import Manifest
from edge.providers import open_session

PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the camera frame's pixels
    class_index: int
    sku: str
    confidence: float


@dataclass(frozen=True)
class Letterbox:
    scale: float
    left: int
    top: int


def letterbox(frame_bgr: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to size x size, centred, exactly as ultralytics' LetterBox."""
    h, w = frame_bgr.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = round(w * r), round(h * r)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    image = (
        frame_bgr if (w, h) == (new_w, new_h) else cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return image, Letterbox(r, left, top)


def to_tensor(image_bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image_bgr[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def decode(
    output: np.ndarray, fit: Letterbox, frame_shape: tuple[int, int], conf: float, iou: float, max_det: int = 100
) -> list[tuple[tuple[float, float, float, float], int, float]]:
    """(1, 4 + classes, anchors) raw output -> boxes in frame pixels, class, confidence, after per-class NMS."""
    pred = output[0].T  # (anchors, 4 + classes)
    scores = pred[:, 4:]
    cls = scores.argmax(1)
    best = scores[np.arange(len(cls)), cls]
    keep = best > conf
    if not keep.any():
        return []
    xywh, cls, best = pred[keep, :4], cls[keep], best[keep]
    xy = xywh[:, :2] - xywh[:, 2:] / 2
    boxes = np.concatenate([xy, xywh[:, 2:]], axis=1)
    chosen = cv2.dnn.NMSBoxesBatched(boxes.tolist(), best.tolist(), cls.tolist(), conf, iou)
    chosen = np.asarray(chosen, int).reshape(-1)
    chosen = chosen[np.argsort(-best[chosen], kind="stable")][:max_det]
    h, w = frame_shape
    out = []
    for i in chosen:
        x1 = np.clip((boxes[i, 0] - fit.left) / fit.scale, 0, w)
        y1 = np.clip((boxes[i, 1] - fit.top) / fit.scale, 0, h)
        x2 = np.clip((boxes[i, 0] + boxes[i, 2] - fit.left) / fit.scale, 0, w)
        y2 = np.clip((boxes[i, 1] + boxes[i, 3] - fit.top) / fit.scale, 0, h)
        out.append(((float(x1), float(y1), float(x2), float(y2)), int(cls[i]), float(best[i])))
    return out


# Detections are kept down to ultralytics' own default confidence, so weaker sightings still vote in the shelf's
# per-slot samples; what is counted or named uses thresholds.detector_confidence, which may only raise this.
SIGHTING_FLOOR = 0.25


class ProductDetector:
    def __init__(
        self, manifest: Manifest, folder: Path, providers: list[tuple[str, dict[str, str]]] | None = None,
        threads: int = 0, conf: float = SIGHTING_FLOOR, iou: float = 0.7,
    ) -> None:  # fmt: skip
        if manifest.detector is None:
            raise ValueError("this bundle has no product detector")
        entry = manifest.detector
        self.imgsz = entry.imgsz
        self.skus = {s.class_index: s.sku for s in entry.catalog}
        self.session = open_session(folder / entry.model, providers, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.conf, self.iou = conf, iou

    def raw(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        image, fit = letterbox(frame_bgr, self.imgsz)
        return self.session.run(None, {self.input_name: to_tensor(image)})[0], fit

    def __call__(self, frame_bgr: np.ndarray) -> list[Detection]:
        output, fit = self.raw(frame_bgr)
        return [
            Detection(box, c, self.skus.get(c, str(c)), p)
            for box, c, p in decode(output, fit, frame_bgr.shape[:2], self.conf, self.iou)
        ]
