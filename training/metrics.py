"""The measures the action-segmentation literature and the MERL Shopping paper report.

Frame-level: accuracy, per-class precision/recall/F1, macro F1, confusion matrix.
Segment-level (Lea et al. 2017; Farha and Gall, MS-TCN 2019): edit score and F1@{10,25,50}, computed
on the action segments with "no action" as background (it is not an action to find).
Detection (Singh et al. 2016, MERL Shopping): mean average precision of scored segments at temporal
IoU thresholds, per class then averaged over the classes that occur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.classes import ACTION_CLASSES
from edge.segments import ActionSegment
from training.labels import frames_to_segments

BACKGROUND = 0


def frame_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth has {truth.shape} frames, prediction {pred.shape}")
    return float(np.mean(truth == pred)) if truth.size else 0.0


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int = len(ACTION_CLASSES)) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(truth), np.asarray(pred)), 1)
    return m


@dataclass(frozen=True)
class ClassScores:
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # true frames per class

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes that occur in the truth (an absent class has nothing to recall)."""
        present = self.support > 0
        return float(self.f1[present].mean()) if present.any() else 0.0


def per_class_scores(truth: np.ndarray, pred: np.ndarray, n_classes: int = len(ACTION_CLASSES)) -> ClassScores:
    m = confusion_matrix(truth, pred, n_classes)
    tp = np.diag(m).astype(np.float64)
    predicted, actual = m.sum(axis=0), m.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return ClassScores(precision, recall, f1, actual)


def _runs(frames: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, start, end) of each action segment; "no action" is background and left out."""
    return [(s.label, s.start, s.end) for s in frames_to_segments(np.asarray(frames))]


def edit_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """100 x (1 - Levenshtein distance of the segment label sequences / the longer sequence's length)."""
    a = [r[0] for r in _runs(truth)]
    b = [r[0] for r in _runs(pred)]
    if not a and not b:
        return 100.0
    d = np.zeros((len(a) + 1, len(b) + 1), dtype=np.int64)
    d[:, 0] = np.arange(len(a) + 1)
    d[0, :] = np.arange(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return float(100.0 * (1.0 - d[-1, -1] / max(len(a), len(b))))


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def f1_at(truth: np.ndarray, pred: np.ndarray, overlap: float) -> float:
    """Segmental F1 at IoU `overlap` (0.1, 0.25, 0.5), as MS-TCN computes it, in percent.

    Each predicted segment is a true positive if its best-overlapping true segment of the same class
    reaches `overlap` and has not been claimed by an earlier prediction.
    """
    true_runs, pred_runs = _runs(truth), _runs(pred)
    hit = [False] * len(true_runs)
    tp = fp = 0
    for label, s, e in pred_runs:
        best, best_j = 0.0, -1
        for j, (tl, ts, te) in enumerate(true_runs):
            if tl == label:
                iou = _iou((s, e), (ts, te))
                if iou > best:
                    best, best_j = iou, j
        if best >= overlap and not hit[best_j]:
            tp += 1
            hit[best_j] = True
        else:
            fp += 1
    fn = len(true_runs) - sum(hit)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return float(100.0 * 2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def average_precision(
    truth: Sequence[tuple[int, int]], detections: Sequence[tuple[int, int, float]], overlap: float
) -> float:
    """AP of scored detections (start, end, score) against true segments (start, end) of one class.

    Detections are taken by falling score; each matches the unclaimed true segment it overlaps most, if
    at least `overlap`. AP is the area under the precision envelope (every recall point), as in
    ActivityNet and THUMOS.
    """
    if not truth:
        return 0.0
    order = sorted(detections, key=lambda d: -d[2])
    claimed = [False] * len(truth)
    tp = np.zeros(len(order))
    for i, (s, e, _) in enumerate(order):
        ious = [(_iou((s, e), t) if not claimed[j] else -1.0) for j, t in enumerate(truth)]
        j = int(np.argmax(ious)) if ious else -1
        if j >= 0 and ious[j] >= overlap:
            claimed[j] = True
            tp[i] = 1
    cum_tp = np.cumsum(tp)
    recall = cum_tp / len(truth)
    precision = cum_tp / np.arange(1, len(order) + 1)
    # Precision envelope: the best precision at this recall or any higher one.
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(order) else precision
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(envelope * recall_steps))


def detection_map(truth: Sequence[tuple[int, int, int]], detections: Sequence[ActionSegment], overlap: float) -> float:
    """Mean AP over the action classes present in `truth` ((label, start, end) triples)."""
    labels = sorted({t[0] for t in truth if t[0] != BACKGROUND})
    if not labels:
        return 0.0
    aps = []
    for label in labels:
        true_c = [(s, e) for lab, s, e in truth if lab == label]
        det_c = [(d.start, d.end, d.confidence) for d in detections if d.label == label]
        aps.append(average_precision(true_c, det_c, overlap))
    return float(np.mean(aps))


def segment_report(truth: np.ndarray, pred: np.ndarray, detections: Sequence[ActionSegment]) -> dict[str, float]:
    """Every measure above for one video (or for concatenated videos), as a flat dict for metrics.json."""
    scores = per_class_scores(truth, pred)
    truth_runs = _runs(truth)
    report = {
        "frame_accuracy": frame_accuracy(truth, pred),
        "macro_f1": scores.macro_f1,
        "edit": edit_score(truth, pred),
        **{f"f1@{round(k * 100)}": f1_at(truth, pred, k) for k in (0.10, 0.25, 0.50)},
        **{f"map@{k:g}": detection_map(truth_runs, detections, k) for k in (0.1, 0.25, 0.5)},
    }
    for k, name in enumerate(ACTION_CLASSES):
        report[f"f1/{name}"] = float(scores.f1[k])
    return report
