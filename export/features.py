"""The action encoder's features of a video, exactly as the box computes them: the agent's own motion gate and
action stream (`edge.action.ActionStream`: a still picture carries the action on for a while without running the
models, and the frame scored after it is encoded against the last scored one, as on the box). What familiarity is
fitted, calibrated and measured on (`export.familiarity`, `bench/familiarity.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.action import ActionRecognizer, ActionStream
from edge.agent import STILL_CARRY_S
from edge.config import Thresholds
from edge.errors import ShelfWatchError
from edge.scene import MotionGate, MotionWatcher, default_zones
from edge.segments import Segmenter
from edge.video import Frame


@dataclass(frozen=True)
class VideoFeatures:
    name: str
    fps: float
    frames: int  # frames in the video
    index: np.ndarray  # (N,) the scored frames' indices
    features: np.ndarray  # (N, F) float32
    after_gap: np.ndarray  # (N,) bool: the first scored frame after frames the gate skipped (a window restarts)


def read_frames(path: Path, max_frames: int | None = None) -> tuple[float, Iterator[np.ndarray]]:
    """(frames per second, the frames) of a video file, as the agent reads one with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ShelfWatchError(f"{path}: cannot be read as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    if not 1 <= fps <= 240:  # a GIF's or a broken header's rate: the agent assumes 30 too
        fps = 30.0

    def frames() -> Iterator[np.ndarray]:
        try:
            i = 0
            while max_frames is None or i < max_frames:
                ok, frame = cap.read()
                if not ok:
                    return
                yield frame
                i += 1
        finally:
            cap.release()

    return float(fps), frames()


def video_features(recognizer: ActionRecognizer, path: Path, max_frames: int | None = None) -> VideoFeatures:
    """The encoder's features of every frame of `path` that the agent would score."""
    fps, frames = read_frames(path, max_frames)
    return frames_features(recognizer, frames, fps, path.stem)


def frames_features(recognizer: ActionRecognizer, frames: Iterable[np.ndarray], fps: float, name: str) -> VideoFeatures:
    """The features of the frames the agent would score, frames given in order (a file's, or a spliced clip's)."""
    t = Thresholds()
    watcher: MotionWatcher | None = None
    gate = MotionGate(t.motion_fraction, max(1, round(t.motion_hold_s * fps)))
    recognizer.reset()
    stream = ActionStream(recognizer, Segmenter(), still_frames=round(STILL_CARRY_S * fps))
    index: list[int] = []
    feats: list[np.ndarray] = []
    after_gap: list[bool] = []
    previous_scored = -2
    i = -1
    for i, frame in enumerate(frames):
        if watcher is None:
            h, w = frame.shape[:2]
            watcher = MotionWatcher((w, h), default_zones(w, h))
        active = gate.update(i, watcher.update(frame))
        stream.update(Frame(i, i / fps, frame), active)  # as the agent's loop does
        if active:
            gap = previous_scored != i - 1  # the familiarity window restarts here, as `Familiarity.update` does
            assert recognizer.features is not None
            index.append(i)
            feats.append(recognizer.features.astype(np.float32))
            after_gap.append(gap)
            previous_scored = i
    width = recognizer.encoder.get_outputs()[0].shape[-1]
    features = np.stack(feats) if feats else np.zeros((0, width if isinstance(width, int) else 0), np.float32)
    return VideoFeatures(name, float(fps), i + 1, np.asarray(index, np.int64), features, np.asarray(after_gap, bool))
