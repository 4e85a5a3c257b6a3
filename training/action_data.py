"""Videos with per-frame action labels, as the action model trains on them.

A data folder holds our synthetic videos or exported clips (`NAME.mp4`, or another video suffix, +
`NAME.labels.json`) and/or MERL Shopping videos
(`NAME_crop.mp4` or `NAME.mp4` beside `NAME_label.mat`), or is the MERL Shopping release itself as
downloaded (`Videos_MERL_Shopping_Dataset/NAME_crop.mp4` and `Labels_MERL_Shopping_Dataset/NAME_label.mat`):
nothing has to be copied or renamed. Frames are decoded once, shrunk with the edge's own `shrink`, and
cached as .npy in a `.cache` folder beside the video, so later runs start at once; the cache is memory-mapped,
so a data set larger than memory (the release's 106 videos) trains all the same.

A video with timestamp labels has the class of its timestamps' frames only (-1 elsewhere, `Video.timestamps` set);
`training.timestamps` spreads them before the LSTM trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.preprocess import InputSpec, shrink, to_input
from training.label_files import read_labels
from training.labels import Timestamp
from training.merl import MERL_LABELS, MERL_VIDEOS

# Beside NAME.labels.json, the video is NAME with one of these (an exported clip keeps its upload's container).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")


@dataclass(frozen=True)
class Video:
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8, already shrunk
    labels: np.ndarray  # (T,) int64; -1: a frame of timestamp labels that is not a timestamp
    timestamps: tuple[Timestamp, ...] = ()  # set: the labels are timestamps

    @property
    def partial(self) -> bool:
        return bool(self.timestamps)


def find_videos(data_dir: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (video file, label file) for every labelled video in `data_dir`."""
    if not data_dir.is_dir():
        raise ShelfWatchError(f"{data_dir}: no such data folder")
    found: dict[str, tuple[Path, Path]] = {}
    for labels in sorted(data_dir.glob("*.labels.json")):
        name = labels.name.removesuffix(".labels.json")
        videos = [data_dir / f"{name}{suffix}" for suffix in VIDEO_SUFFIXES]
        found[name] = (next((v for v in videos if v.exists()), videos[0]), labels)
    # MERL labels beside their videos, then the release's own two folders.
    for label_dir, video_dir in ((data_dir, data_dir), (data_dir / MERL_LABELS, data_dir / MERL_VIDEOS)):
        for labels in sorted(label_dir.glob("*_label.mat")):
            name = labels.name.removesuffix("_label.mat")
            if name in found:
                continue  # our generator writes both formats: the JSON says more
            for candidate in (video_dir / f"{name}_crop.mp4", video_dir / f"{name}.mp4"):
                if candidate.exists():
                    found[name] = (candidate, labels)
                    break
    if not found:
        raise ShelfWatchError(
            f"{data_dir}: no labelled videos (NAME.mp4 + NAME.labels.json, MERL NAME_crop.mp4 + NAME_label.mat, "
            f"or the MERL release's {MERL_VIDEOS}/ and {MERL_LABELS}/)"
        )
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
    if not video.exists():
        raise ShelfWatchError(f"{label_file}: its video {video.name} is missing")
    cache_path = video.parent / ".cache" / f"{name}_{spec.width}x{spec.height}.npy"
    if cache and not (cache_path.exists() and cache_path.stat().st_mtime >= video.stat().st_mtime):
        try:
            cache_path.parent.mkdir(exist_ok=True)
            tmp = cache_path.with_name(cache_path.name + ".tmp.npy")
            np.save(tmp, decode(video, spec))
            tmp.replace(cache_path)
        except OSError:
            cache = False  # a read-only data folder: decode into memory instead
    # Memory-mapped: pages come from disk as the samplers touch them.
    frames = np.load(cache_path, mmap_mode="r") if cache else decode(video, spec)
    labels = read_labels(label_file, frame_count=len(frames))
    return Video(name, frames, labels.frame_classes, labels.timestamps)


def load_videos(data_dir: Path, spec: InputSpec, names: list[str] | None = None) -> list[Video]:
    found = find_videos(data_dir)
    missing = set(names or []) - set(found)
    if missing:
        raise ShelfWatchError(f"{data_dir}: no labelled video named {sorted(missing)[0]}")
    return [load_video(n, *found[n], spec) for n in (names or sorted(found))]


def class_weights(videos: list[Video], power: float = 0.5) -> np.ndarray:
    """Loss weights against the classes' very unequal time shares: (1 / frequency) ** power, mean 1."""
    labels = np.concatenate([v.labels for v in videos])
    counts = np.bincount(labels[labels >= 0], minlength=len(ACTION_CLASSES)).astype(float)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    return (w / w[counts > 0].mean()).astype(np.float32)


class FrameSampler:
    """Random single frames (with the frame before, for motion), classes drawn equally often."""

    def __init__(self, videos: list[Video], spec: InputSpec, augment: bool, seed: int) -> None:
        self.videos, self.spec, self.augment = videos, spec, augment
        self.rng = np.random.default_rng(seed)
        self.by_class = []
        for c in range(len(ACTION_CLASSES)):
            pairs = [(i, t) for i, v in enumerate(videos) for t in np.flatnonzero(v.labels == c) if t > 0]
            if pairs:
                self.by_class.append(np.array(pairs))
        if not self.by_class:
            raise ShelfWatchError("no labelled frames to train on")

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(batch):
            pairs = self.by_class[int(self.rng.integers(len(self.by_class)))]
            i, t = pairs[int(self.rng.integers(len(pairs)))]
            frames = self.videos[i].frames[t - 1 : t + 1]
            if self.augment:
                frames = augment_clip(frames, self.rng)
            xs.append(to_input(frames[1], frames[0], self.spec))
            ys.append(self.videos[i].labels[t])
        return np.stack(xs), np.array(ys)


def augment_clip(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same change for every frame of a clip: mirror, light, a small camera offset."""
    if rng.random() < 0.5:
        frames = frames[:, :, ::-1]  # a mirrored store: the shelf stays at the top
    gain = rng.uniform(0.8, 1.2)
    bias = rng.uniform(-15, 15)
    frames = np.clip(frames.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    dx, dy = (int(v) for v in rng.integers(-4, 5, size=2))
    return np.roll(frames, (dy, dx), axis=(1, 2))


class FeatureClipSampler:
    """Random clips of precomputed encoder features, half of them around an action segment."""

    def __init__(self, features: list[np.ndarray], labels: list[np.ndarray], clip_len: int, seed: int) -> None:
        self.features, self.labels, self.clip_len = features, labels, clip_len
        self.rng = np.random.default_rng(seed)
        self.action_frames = [np.flatnonzero(lab > 0) for lab in labels]

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(batch):
            i = int(self.rng.integers(len(self.features)))
            total = len(self.labels[i])
            n = min(self.clip_len, total)
            if self.action_frames[i].size and self.rng.random() < 0.5:
                centre = int(self.rng.choice(self.action_frames[i]))
                start = int(np.clip(centre - self.rng.integers(0, n), 0, total - n))
            else:
                start = int(self.rng.integers(0, total - n + 1))
            xs.append(self.features[i][start : start + n])
            ys.append(self.labels[i][start : start + n])
        n = min(len(y) for y in ys)
        return np.stack([x[:n] for x in xs]), np.stack([y[:n] for y in ys])
