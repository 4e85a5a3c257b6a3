"""The measures the action-segmentation literature and the MERL Shopping paper report.

Frame-level: accuracy, per-class precision/recall/F1, macro F1, confusion matrix.
Segment-level (Lea et al. 2017; Farha and Gall, MS-TCN 2019): edit score and F1@{10,25,50}, computed
on the action segments with "no action" as background (it is not an action to find).
Detection: mean average precision of scored segments, per class then averaged over the classes that
occur, with a detection counted correct either at a temporal IoU threshold (ActivityNet, THUMOS) or by
MERL Shopping's own midpoint rule (`midpoint_hit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def action_runs(frames: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, start, end) of each action segment; "no action" is background and left out."""
    return [(s.label, s.start, s.end) for s in frames_to_segments(np.asarray(frames))]


def edit_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """100 x (1 - Levenshtein distance of the segment label sequences / the longer sequence's length)."""
    a = [r[0] for r in action_runs(truth)]
    b = [r[0] for r in action_runs(pred)]
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
    true_runs, pred_runs = action_runs(truth), action_runs(pred)
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


Interval = tuple[int, int]  # start, end (exclusive)
# Which unclaimed true segment a detection hits: the index into `truth`, or -1 for none.
Matcher = Callable[[Interval, Sequence[Interval], Sequence[bool]], int]


def iou_match(overlap: float) -> Matcher:
    """The unclaimed true segment the detection overlaps most, if their temporal IoU reaches `overlap`."""

    def match(det: Interval, truth: Sequence[Interval], claimed: Sequence[bool]) -> int:
        ious = [(_iou(det, t) if not claimed[j] else -1.0) for j, t in enumerate(truth)]
        j = int(np.argmax(ious)) if ious else -1
        return j if j >= 0 and ious[j] >= overlap else -1

    return match


def midpoint_hit(det: Interval, truth: Sequence[Interval], claimed: Sequence[bool]) -> int:
    """MERL Shopping's detection criterion: a detection is correct when its midpoint falls inside a true
    segment of its class (Singh et al., "A Multi-Stream Bi-Directional Recurrent Neural Network for
    Fine-Grained Action Detection", CVPR 2016, Sec. 5, and the evaluation code released with the MERL
    Shopping dataset; the "midpoint hit criterion" of Rohrbach et al., MPII Cooking, CVPR 2012). Each true
    segment is found once: a second detection inside the same one is a false positive. The midpoint of
    frames [start, end) is (start + end - 1) / 2 in frame numbers, so that 1-based MERL ranges and ours
    agree; it must lie within the true segment's first and last frame.
    """
    mid = (det[0] + det[1] - 1) / 2
    for j, (s, e) in enumerate(truth):
        if not claimed[j] and s <= mid <= e - 1:
            return j
    return -1


def average_precision(
    truth: Sequence[Interval], detections: Sequence[tuple[int, int, float]], overlap: float | Matcher
) -> float:
    """AP of scored detections (start, end, score) against true segments (start, end) of one class.

    Detections are taken by falling score; each claims the true segment `overlap` picks (a temporal IoU
    threshold, or a matcher such as `midpoint_hit`). AP is the area under the precision envelope (every
    recall point), as in ActivityNet and THUMOS.
    """
    if not truth:
        return 0.0
    match = iou_match(overlap) if isinstance(overlap, float | int) else overlap
    order = sorted(detections, key=lambda d: -d[2])
    claimed = [False] * len(truth)
    tp = np.zeros(len(order))
    for i, (s, e, _) in enumerate(order):
        j = match((s, e), truth, claimed)
        if j >= 0:
            claimed[j] = True
            tp[i] = 1
    cum_tp = np.cumsum(tp)
    recall = cum_tp / len(truth)
    precision = cum_tp / np.arange(1, len(order) + 1)
    # Precision envelope: the best precision at this recall or any higher one.
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(order) else precision
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(envelope * recall_steps))


def detection_map(
    truth: Sequence[tuple[int, int, int]], detections: Sequence[ActionSegment], overlap: float | Matcher
) -> float:
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


def detection_report(runs: Sequence[tuple[int, int, int]], detections: Sequence[ActionSegment]) -> dict[str, float]:
    """mAP at temporal IoU 0.1, 0.25, 0.5 and by MERL's midpoint rule (`map@mid`), all in 0-1, of scored
    detections against true (label, start, end) action segments (`action_runs`)."""
    report = {f"map@{k:g}": detection_map(runs, detections, k) for k in (0.1, 0.25, 0.5)}
    report["map@mid"] = detection_map(runs, detections, midpoint_hit)
    return report


def segment_report(truth: np.ndarray, pred: np.ndarray, detections: Sequence[ActionSegment]) -> dict[str, float]:
    """Every measure above for one video (or for concatenated videos), as a flat dict for metrics.json."""
    report = {
        "frame_accuracy": frame_accuracy(truth, pred),
        "edit": edit_score(truth, pred),
        **{f"f1@{round(k * 100)}": f1_at(truth, pred, k) for k in (0.10, 0.25, 0.50)},
        **detection_report(action_runs(truth), detections),
        **class_report(truth, pred),
    }
    return report


def class_report(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Macro F1 and each class's frame precision, recall and F1 (0-1), as flat keys."""
    scores = per_class_scores(truth, pred)
    report = {"macro_f1": scores.macro_f1}
    for k, name in enumerate(ACTION_CLASSES):
        report[f"precision/{name}"] = float(scores.precision[k])
        report[f"recall/{name}"] = float(scores.recall[k])
        report[f"f1/{name}"] = float(scores.f1[k])
    return report
