"""Timestamp labels (one labelled frame per action instance) turned into a class for every frame.

How ShelfWatch trains on them, after Li, Abu Farha and Gall, "Temporal Action Segmentation from Timestamp
Supervision" (CVPR 2021, arXiv 2103.06669), whose finding is that one frame per action comes close to frame-wise
labels when the labels are spread to boundaries found in the model's own features:

- stage 1 (the per-frame encoder) learns from the labelled frames only: nothing else enters its loss;
- then every frame is encoded, and between two consecutive timestamps of different classes the boundary is put
  where the two sides are each most uniform in the encoder's features (the paper's action-change detection:
  the least summed squared distance of each side's features to its own mean, `spread_to_boundaries`); frames
  before the first timestamp take its class, frames after the last take the last one's;
- stage 2 (the LSTM) trains on every frame with those labels.

Validation clips with timestamp labels are scored against labels spread to the midpoints between timestamps
(`spread_to_midpoints`: fixed before training, so the model never grades its own boundaries); their scores are an
approximation and the run says so. The paper's confidence loss and its repeated re-estimation during training are
not used: our stage 2 sees features that stage 1 has already frozen, so one estimate is what they would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from training.labels import Timestamp

TIE_BREAK = 1e-9  # among equally good boundaries, the one nearest the middle


def spread_to_midpoints(timestamps: Sequence[Timestamp], frame_count: int) -> np.ndarray:
    """Each frame takes the class of the nearest timestamp (the boundary halfway between two)."""
    ordered = sorted(timestamps, key=lambda t: t.frame)
    if not ordered:
        raise ValueError("no timestamps to spread")
    frames = np.empty(frame_count, dtype=np.int64)
    frames[: ordered[0].frame] = ordered[0].label
    for a, b in pairwise(ordered):
        middle = (a.frame + b.frame + 1) // 2
        frames[a.frame : middle] = a.label
        frames[middle : b.frame] = b.label
    frames[ordered[-1].frame :] = ordered[-1].label
    return frames


def spread_to_boundaries(features: np.ndarray, timestamps: Sequence[Timestamp]) -> np.ndarray:
    """(T,) classes from (T, F) per-frame features: between consecutive timestamps of different classes, the
    boundary that minimises the summed squared distance of each side's features to that side's mean."""
    ordered = sorted(timestamps, key=lambda t: t.frame)
    if not ordered:
        raise ValueError("no timestamps to spread")
    frames = np.empty(len(features), dtype=np.int64)
    frames[: ordered[0].frame] = ordered[0].label
    for a, b in pairwise(ordered):
        frames[a.frame : b.frame] = a.label
        if a.label != b.label:
            frames[boundary(features[a.frame : b.frame + 1]) + a.frame : b.frame] = b.label
    frames[ordered[-1].frame :] = ordered[-1].label
    return frames


def boundary(span: np.ndarray) -> int:
    """k in 1..L-1 splitting the L frames of `span` (a timestamp at each end) into [0, k) and [k, L) so that each
    side's features are closest to their own mean (sums of squares from running sums: one pass)."""
    x = span.reshape(len(span), -1).astype(np.float64)
    n = len(x)
    sums = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    squares = np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", x, x))])
    k = np.arange(1, n)
    left = squares[k] - np.einsum("ij,ij->i", sums[k], sums[k]) / k
    rest = sums[n] - sums[k]
    right = squares[n] - squares[k] - np.einsum("ij,ij->i", rest, rest) / (n - k)
    cost = left + right + TIE_BREAK * np.abs(k - n / 2)
    return int(k[np.argmin(cost)])


def stamp_runs(frame_classes: Sequence[int]) -> list[Timestamp]:
    """Timestamp labels from full ones: one frame in the middle of every run of frames of one class (no action
    included), what a reviewer marks; how the learning curve makes its timestamp-labelled clips."""
    classes = list(frame_classes)
    stamps, start = [], 0
    for i in range(1, len(classes) + 1):
        if i == len(classes) or classes[i] != classes[start]:
            stamps.append(Timestamp((start + i - 1) // 2, int(classes[start])))
            start = i
    return stamps
