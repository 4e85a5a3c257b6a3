"""Score action models on labelled videos, through the same segmentation step the edge agent runs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from edge.preprocess import to_input
from edge.segments import ActionSegment, segment_scores, segments_to_frames
from training.action_data import Video
from training.action_model import ActionModel
from training.device import device_of
from training.metrics import action_runs, class_report, confusion_matrix, detection_report, segment_report

ENCODE_BATCH = 128


@dataclass(frozen=True)
class VideoResult:
    name: str
    truth: np.ndarray
    raw: np.ndarray  # per-frame argmax
    pred: np.ndarray  # after the shared segmentation step
    segments: list[ActionSegment]
    probs: np.ndarray


@torch.no_grad()
def encode_video(model: ActionModel, video: Video) -> np.ndarray:
    """(T, F) encoder features of every frame, as the agent computes them one frame at a time (on the model's
    device; the features come back to the CPU)."""
    model.eval()
    device = device_of(model)
    feats = []
    for s in range(0, len(video.frames), ENCODE_BATCH):
        chunk = video.frames[s : s + ENCODE_BATCH]
        before = video.frames[s - 1] if s > 0 else None
        x = torch.from_numpy(to_input(chunk, before, model.config.input)).to(device)
        feats.append(model.encoder(x).cpu())
    return torch.cat(feats).numpy()


@torch.no_grad()
def predict_probs(model: ActionModel, video: Video, features: np.ndarray | None = None) -> np.ndarray:
    """(T, classes) probabilities for every frame, the model's delay already undone."""
    model.eval()
    if features is None:
        features = encode_video(model, video)
    scores = model.head(torch.from_numpy(features)[None].to(device_of(model)))[0]
    probs = torch.softmax(scores, dim=-1).cpu().numpy()
    d = model.config.delay
    if d:
        # The output at frame t scores frame t - d; the last d frames keep the final output.
        probs = np.concatenate([probs[d:], np.repeat(probs[-1:], d, axis=0)])
    return probs


def evaluate_videos(
    model: ActionModel, videos: list[Video], features: list[np.ndarray] | None = None
) -> tuple[dict[str, float], list[VideoResult]]:
    """Frame accuracy, per-class precision/recall and detection mAP over all videos pooled (detections of
    every video ranked together, as detection benchmarks do); edit and F1@k averaged over videos."""
    results, reports = [], []
    for i, v in enumerate(videos):
        probs = predict_probs(model, v, None if features is None else features[i])
        segments = segment_scores(probs)  # with the agent's own smoothing
        pred = segments_to_frames(segments, len(v.labels))
        actions = [s for s in segments if s.label]
        results.append(VideoResult(v.name, v.labels, probs.argmax(1), pred, actions, probs))
        reports.append(segment_report(v.labels, pred, actions))
    summary = {k: float(np.mean([r[k] for r in reports])) for k in reports[0]}
    truth = np.concatenate([r.truth for r in results])
    pred = np.concatenate([r.pred for r in results])
    summary["frame_accuracy"] = float(np.mean(truth == pred))
    summary["frame_accuracy_raw"] = float(np.mean(truth == np.concatenate([r.raw for r in results])))
    summary.update(class_report(truth, pred))
    # Videos laid end to end: shifting each one's segments by its offset keeps them apart.
    offsets = np.cumsum([0] + [len(r.truth) for r in results]).tolist()
    runs = [(c, s + o, e + o) for r, o in zip(results, offsets, strict=False) for c, s, e in action_runs(r.truth)]
    detections = [
        replace(d, start=d.start + o, end=d.end + o) for r, o in zip(results, offsets, strict=False) for d in r.segments
    ]
    summary.update(detection_report(runs, detections))
    return summary, results


def pooled_confusion(results: list[VideoResult]) -> np.ndarray:
    return confusion_matrix(np.concatenate([r.truth for r in results]), np.concatenate([r.pred for r in results]))
