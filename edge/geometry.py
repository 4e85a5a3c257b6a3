"""Box geometry on (x1, y1, x2, y2) boxes in frame pixels, vectorised: every pair of two box sets at once.

The detector's own non-maximum suppression (by IoU, per class) is OpenCV's, as ultralytics does it; this module
serves the shelf, which compares product places across recounts and keeps one product per place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
EPS = 1e-9  # no division by zero for degenerate boxes


def _as_array(boxes: Sequence[Box] | np.ndarray) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def intersections(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """(N, M) areas of intersection of every box of `a` with every box of `b`."""
    a, b = _as_array(a)[:, None, :], _as_array(b)[None, :, :]
    w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    return w * h


def areas(boxes: Sequence[Box] | np.ndarray) -> np.ndarray:
    b = _as_array(boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def iou(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """(N, M) intersection over union."""
    inter = intersections(a, b)
    return inter / np.maximum(EPS, areas(a)[:, None] + areas(b)[None, :] - inter)


def overlap_of_smaller(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """(N, M) intersection over the smaller box's area: 1 when one box lies inside the other, whatever their sizes."""
    return intersections(a, b) / np.maximum(EPS, np.minimum(areas(a)[:, None], areas(b)[None, :]))


def suppress_overlaps(boxes: Sequence[Box] | np.ndarray, scores: Sequence[float], threshold: float) -> list[int]:
    """Greedy suppression by overlap-of-smaller: indices of the boxes kept, most confident first. A box is dropped
    when it overlaps a kept one by `threshold` or more (a box shifted half a product, one product named twice)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep their order
    overlap = overlap_of_smaller(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(overlap[i, k] < threshold for k in kept):
            kept.append(i)
    return kept
