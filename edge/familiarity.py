"""Familiarity: is what the camera shows like the video the action model was trained on? One stage: the
encoder's features of a frame in, a score out.

The bundle describes the training video in the encoder's feature space (`export.familiarity` fits it): one
Gaussian per action class sharing one covariance, shrunk towards a multiple of the identity (Ledoit-Wolf), stored
as the class means and a whitening matrix. A frame's score is its Mahalanobis distance to the nearest class
mean; the score the box acts on is its mean over the last `window_s` seconds of scored frames, and a frame is
unfamiliar when that reaches the bundle's threshold, calibrated on held-out training-domain video. The first frame
scored after frames that were not (the motion gate was closed) is not judged: its motion channel compares it with
a frame from before the pause (or with nothing), which is no camera's frame-to-frame motion; the window starts
with the frame after it. Nothing here
looks at the picture's size, frame rate or noise: only at the features the encoder already produced for the
action model (one 128x128 product a frame).

A bundle without familiarity runs as before: familiarity is unknown (None), never guessed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle import FamiliarityEntry
from edge.errors import ShelfWatchError

SHARE_WINDOW_S = 60.0  # the status's unfamiliar_share: the last minute's analysed frames
MAX_SPANS = 1000  # unfamiliar stretches remembered for a run's summary (a box that runs for months keeps the latest)


@dataclass(frozen=True)
class FamiliarityStats:
    """The fitted description of the training video: distances are ||(f - mean_c) @ whiten||."""

    means: np.ndarray  # (classes, features)
    whiten: np.ndarray  # (features, features): precision = whiten @ whiten.T

    @classmethod
    def load(cls, path: Path, entry: FamiliarityEntry) -> FamiliarityStats:
        try:
            with np.load(path, allow_pickle=False) as data:
                means, whiten = data["means"].astype(np.float32), data["whiten"].astype(np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ShelfWatchError(f"{path}: not the bundle's familiarity statistics ({exc})") from None
        f = entry.features
        if means.ndim != 2 or means.shape[1] != f or whiten.shape != (f, f) or not np.isfinite(whiten).all():
            raise ShelfWatchError(f"{path}: statistics of shape {means.shape} and {whiten.shape} do not fit "
                                  f"{f} features")  # fmt: skip
        return cls(means, whiten)

    def score(self, features: np.ndarray) -> np.ndarray:
        """(N, F) features -> (N,) distance to the nearest class (in standard deviations, as it were)."""
        z = np.asarray(features, np.float32).reshape(-1, self.whiten.shape[0]) @ self.whiten
        centres = self.means @ self.whiten
        d2 = (z * z).sum(1)[:, None] - 2 * z @ centres.T + (centres * centres).sum(1)[None]
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


@dataclass(frozen=True)
class Guard:
    """The rule the box judges by, a frame (the window that ends with it) or a stretch of frames (an action, a hand's
    visits into the shelf) alike: familiar when the mean score is under the threshold. The threshold was calibrated
    so that one window of training-domain video in a hundred reaches it; asking every window of a long stretch to
    stay under it would flag a long action on that video far more often (each window is another chance), while a
    mean over more frames only varies less, so a stretch is judged as one window (of a window's frames or more, where
    the footage allows). Footage unlike the training scores high throughout, so its stretches stay unfamiliar."""

    threshold: float  # a mean at or above this is unfamiliar
    window: int  # frames in the window the threshold was calibrated on

    def familiar(self, mean: float) -> bool:
        return mean < self.threshold


@dataclass(frozen=True)
class Reading:
    score: float  # this frame's distance
    smoothed: float  # the mean over the window
    familiar: bool


def windowed(scores: np.ndarray, restarts: np.ndarray, frames: int) -> np.ndarray:
    """The box's smoothing over a whole sequence of scored frames: NaN where `restarts` is true (the first frame
    after a gap: not judged), else the mean of the last `frames` judged scores since the restart. What calibration
    and the benchmark compute, equal to `Familiarity`'s."""
    out = np.empty(len(scores), np.float64)
    window: deque[float] = deque(maxlen=max(1, frames))
    for i, (s, restart) in enumerate(zip(scores, restarts, strict=True)):
        if restart:
            window.clear()
            out[i] = np.nan
            continue
        window.append(float(s))
        out[i] = sum(window) / len(window)
    return out


class Familiarity:
    """The stage: `update` each scored frame's features; `share` is what the status reports."""

    def __init__(self, entry: FamiliarityEntry, folder: Path, fps: float) -> None:
        self.entry = entry
        self.stats = FamiliarityStats.load(folder / entry.file, entry)
        self.threshold = entry.threshold
        self.window: deque[float] = deque(maxlen=max(1, round(entry.window_s * fps)))
        self.guard = Guard(entry.threshold, self.window.maxlen or 1)
        self.last_index: int | None = None
        self.recent: deque[tuple[float, bool]] = deque()  # (ts, unfamiliar) of the last minute's scored frames
        self.latest: Reading | None = None
        self.frames = self.unfamiliar_frames = 0
        self.spans: deque[list[int]] = deque(maxlen=MAX_SPANS)  # [start, end) of unfamiliar stretches, frames

    def update(self, index: int, ts: float, features: np.ndarray) -> Reading | None:
        """One scored frame (`index` in the video, `ts` its time): its reading. The first frame after unscored ones
        (the motion gate was closed, the camera lost frames) is not judged (None) and starts the window afresh."""
        gap = self.last_index is None or index != self.last_index + 1
        self.last_index = index
        if gap:
            self.window.clear()
            return None
        score = float(self.stats.score(features)[0])
        self.window.append(score)
        smoothed = sum(self.window) / len(self.window)
        reading = Reading(score, smoothed, self.guard.familiar(smoothed))
        self.latest = reading
        self.frames += 1
        if not reading.familiar:
            self.unfamiliar_frames += 1
            if self.spans and self.spans[-1][1] == index:
                self.spans[-1][1] = index + 1
            else:
                self.spans.append([index, index + 1])
        self.recent.append((ts, not reading.familiar))
        while self.recent and self.recent[0][0] <= ts - SHARE_WINDOW_S:
            self.recent.popleft()
        return reading

    def share(self, now: float | None = None) -> float | None:
        """The share of the last minute (up to `now`, the source's clock) of analysed frames that were unfamiliar;
        None when none was analysed."""
        while now is not None and self.recent and self.recent[0][0] <= now - SHARE_WINDOW_S:
            self.recent.popleft()
        if not self.recent:
            return None
        return sum(u for _, u in self.recent) / len(self.recent)
