"""Exported graphs against the PyTorch model, and INT8 against FP32 on held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge.action import ActionRecognizer, softmax
from edge.preprocess import shrink, to_input
from edge.segments import segment_scores, segments_to_frames
from training.action_data import Video
from training.action_model import ActionModel


@torch.no_grad()
def encoder_difference(model: ActionModel, recognizer: ActionRecognizer, pairs: list) -> dict[str, float]:
    """Max difference between ONNX's and PyTorch's encoder features on random input and on real frames (see
    `difference`)."""
    spec = model.config.input
    random = np.random.default_rng(0).standard_normal((4, spec.channels, spec.height, spec.width)).astype(np.float32)
    real = np.concatenate([to_input(shrink(f, spec)[None], shrink(p, spec), spec) for f, p in pairs[:16]])
    out = {}
    for name, x in (("random", random), ("real", real)):
        onnx_features = recognizer.encoder.run(None, {"frames": x})[0]
        out[f"encoder_{name}"] = difference(onnx_features, model.encoder(torch.from_numpy(x)).numpy())
    return out


def difference(got: np.ndarray, reference: np.ndarray) -> float:
    """Max |got - reference|, relative where |reference| exceeds 1: FP32 rounding grows with the values, and an
    ImageNet backbone's pooled features run to 5-10 where a scratch encoder's stay under 1."""
    return float((np.abs(got - reference) / np.maximum(1.0, np.abs(reference))).max())


@torch.no_grad()
def streaming_difference(model: ActionModel, recognizer: ActionRecognizer, frames_bgr: np.ndarray) -> float:
    """Max difference of the scores (see `difference`) between the step graph run frame by frame and PyTorch on
    the whole sequence."""
    spec = model.config.input
    small = np.stack([shrink(f, spec) for f in frames_bgr])
    whole = model(torch.from_numpy(to_input(small, None, spec))[None])[0].numpy()
    recognizer.reset()
    streamed = []
    for i in range(len(small)):
        features = recognizer.encode(small[i : i + 1], small[i - 1] if i else None)[0]
        streamed.append(recognizer.step(features))
    return difference(np.stack(streamed), whole)


def onnx_probs(recognizer: ActionRecognizer, video: Video, batch: int = 128) -> np.ndarray:
    """(T, classes) probabilities of the streaming graphs over a video, the delay undone (as in training)."""
    recognizer.reset()
    probs = []
    for s in range(0, len(video.frames), batch):
        chunk = video.frames[s : s + batch]
        features = recognizer.encode(chunk, video.frames[s - 1] if s else None)
        for f in features:
            probs.append(softmax(recognizer.step(f)))
    out = np.stack(probs)
    d = recognizer.delay
    return np.concatenate([out[d:], np.repeat(out[-1:], d, axis=0)]) if d else out


def action_accuracy(recognizer: ActionRecognizer, videos: list[Video]) -> float:
    """Frame accuracy after the agent's own smoothing, over all frames of `videos`."""
    right = total = 0
    for v in videos:
        pred = segments_to_frames(segment_scores(onnx_probs(recognizer, v)), len(v.labels))
        right += int((pred == v.labels).sum())
        total += len(v.labels)
    return right / total


def detector_map(model_path: Path, data_yaml: Path, imgsz: int, work: Path) -> dict[str, float]:
    """mAP50 and mAP50-95 of an ONNX detector, scored by ultralytics' own validator."""
    from ultralytics import YOLO

    result = YOLO(str(model_path), task="detect").val(
        data=str(data_yaml), imgsz=imgsz, batch=1, device="cpu", plots=False, verbose=False, project=str(work),
        name="val", exist_ok=True,
    )  # fmt: skip
    return {"map50": float(result.box.map50), "map50_95": float(result.box.map)}
