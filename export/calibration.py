"""Frames drawn from videos, for calibrating static quantization and for checking graphs on real input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import ShelfWatchError


def video_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ShelfWatchError(f"{folder}: no such folder of videos")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"))
    if not files:
        raise ShelfWatchError(f"{folder}: has no videos (.mp4, .avi, .mov, .mkv)")
    return files


def sample_frames(folder: Path, count: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` (frame, previous frame) pairs in BGR, spread over every video in `folder` at random positions."""
    files = video_files(folder)
    rng = np.random.default_rng(seed)
    per_video = np.bincount(rng.integers(0, len(files), count), minlength=len(files))
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for path, n in zip(files, per_video, strict=True):
        if n == 0:
            continue
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or total < 2:
            cap.release()
            raise ShelfWatchError(f"{path}: cannot be read as a video")
        wanted = set(rng.choice(np.arange(1, total), size=min(int(n), total - 1), replace=False).tolist())
        previous = None
        for index in range(max(wanted) + 1):
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted and previous is not None:
                pairs.append((frame, previous))
            previous = frame
        cap.release()
    if not pairs:
        raise ShelfWatchError(f"{folder}: no frames could be decoded for calibration")
    return pairs
