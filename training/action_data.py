"""Videos with per-frame action labels, as the action model trains on them.

A data folder holds our synthetic videos (`NAME.mp4` + `NAME.labels.json`) and/or MERL Shopping videos
(`NAME_crop.mp4` or `NAME.mp4` beside `NAME_label.mat`). Frames are decoded once, shrunk with the edge's
own `shrink`, and cached as .npy beside the data, so later runs start at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.preprocess import InputSpec, shrink, to_input
from training.labels import read_labels


@dataclass(frozen=True)
class Video:
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8, already shrunk
    labels: np.ndarray  # (T,) int64


def find_videos(data_dir: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (video file, label file) for every labelled video in `data_dir`."""
    if not data_dir.is_dir():
        raise ShelfWatchError(f"{data_dir}: no such data folder")
    found: dict[str, tuple[Path, Path]] = {}
    for labels in sorted(data_dir.glob("*.labels.json")):
        name = labels.name.removesuffix(".labels.json")
        found[name] = (data_dir / f"{name}.mp4", labels)
    for labels in sorted(data_dir.glob("*_label.mat")):
        name = labels.name.removesuffix("_label.mat")
        if name in found:
            continue  # our generator writes both formats: the JSON says more
        for candidate in (data_dir / f"{name}_crop.mp4", data_dir / f"{name}.mp4"):
            if candidate.exists():
                found[name] = (candidate, labels)
                break
    if not found:
        raise ShelfWatchError(f"{data_dir}: no labelled videos (NAME.mp4 + NAME.labels.json, or MERL *_label.mat)")
    return found


def decode(video: Path, spec: InputSpec) -> np.ndarray:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ShelfWatchError(f"{video}: cannot be opened as a video")
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(shrink(frame, spec))
    finally:
        cap.release()
    if not frames:
        raise ShelfWatchError(f"{video}: no frames could be decoded")
    return np.stack(frames)


def load_video(name: str, video: Path, label_file: Path, spec: InputSpec, cache: bool = True) -> Video:
    cache_path = video.parent / ".cache" / f"{name}_{spec.width}x{spec.height}.npy"
    if cache and cache_path.exists() and cache_path.stat().st_mtime >= video.stat().st_mtime:
        frames = np.load(cache_path)
    else:
        if not video.exists():
            raise ShelfWatchError(f"{label_file}: its video {video.name} is missing")
        frames = decode(video, spec)
        if cache:
            cache_path.parent.mkdir(exist_ok=True)
            np.save(cache_path, frames)
    labels = read_labels(label_file, frame_count=len(frames))
    return Video(name, frames, labels.frame_classes)


def load_videos(data_dir: Path, spec: InputSpec, names: list[str] | None = None) -> list[Video]:
    found = find_videos(data_dir)
    missing = set(names or []) - set(found)
    if missing:
        raise ShelfWatchError(f"{data_dir}: no labelled video named {sorted(missing)[0]}")
    return [load_video(n, *found[n], spec) for n in (names or sorted(found))]


def class_weights(videos: list[Video], power: float = 0.5) -> np.ndarray:
    """Loss weights against the classes' very unequal time shares: (1 / frequency) ** power, mean 1."""
    counts = np.bincount(np.concatenate([v.labels for v in videos]), minlength=len(ACTION_CLASSES)).astype(float)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    return (w / w[counts > 0].mean()).astype(np.float32)


class ClipSampler:
    """Random training clips: half start anywhere, half around an action segment (rare classes get seen)."""

    def __init__(self, videos: list[Video], clip_len: int, spec: InputSpec, augment: bool, seed: int) -> None:
        usable = [v for v in videos if len(v.labels) >= 2]
        if not usable:
            raise ShelfWatchError("no video is long enough to train on")
        self.videos, self.clip_len, self.spec, self.augment = usable, clip_len, spec, augment
        self.rng = np.random.default_rng(seed)
        self.action_frames = [np.flatnonzero(v.labels > 0) for v in usable]

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(batch):
            i = int(self.rng.integers(len(self.videos)))
            v = self.videos[i]
            n = min(self.clip_len, len(v.labels) - 1)
            if self.action_frames[i].size and self.rng.random() < 0.5:
                centre = int(self.rng.choice(self.action_frames[i]))
                start = int(np.clip(centre - self.rng.integers(0, n), 1, len(v.labels) - n))
            else:
                start = int(self.rng.integers(1, len(v.labels) - n + 1))
            frames = v.frames[start - 1 : start + n]  # one frame before, for the motion channel
            if self.augment:
                frames = self._augment(frames)
            xs.append(to_input(frames[1:], frames[0], self.spec))
            ys.append(v.labels[start : start + n])
        return np.stack(xs), np.stack(ys)

    def _augment(self, frames: np.ndarray) -> np.ndarray:
        """The same change for every frame of a clip: mirror, light, a small camera offset."""
        if self.rng.random() < 0.5:
            frames = frames[:, :, ::-1]  # mirrored store: the shelf stays at the top
        gain = self.rng.uniform(0.8, 1.2)
        bias = self.rng.uniform(-15, 15)
        frames = np.clip(frames.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        dx, dy = (int(v) for v in self.rng.integers(-4, 5, size=2))
        return np.roll(frames, (dy, dx), axis=(1, 2))
