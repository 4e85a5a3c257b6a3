"""From per-frame class scores to action segments, one frame at a time.

The agent feeds each frame's probabilities as they come; evaluation runs the very same code over a
whole video (`segment_scores`), so the scores a model earns offline are the ones a store would see.
Scores are smoothed over a short causal window, and a change of class must hold for `min_frames`
frames before it is believed: a flicker shorter than that stays part of the running segment. A causal mean
over `window` frames sees a change about (window - 1) / 2 frames late, so a change is dated back by that much
(the emitted segments would otherwise run late by as much).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

# Defaults the agent runs with, and so the ones evaluation scores with: 5 frames (1/6 s) of smoothing,
# and a class change believed after 4 frames.
WINDOW = 5
MIN_FRAMES = 4


@dataclass(frozen=True)
class ActionSegment:
    label: int
    start: int  # first frame
    end: int  # one past the last frame
    confidence: float  # mean smoothed probability of `label` over the segment's frames


@dataclass
class _Run:
    label: int
    start: int
    conf: list[float] = field(default_factory=list)  # smoothed probability of `label`, per frame
    probs: list[np.ndarray] = field(default_factory=list)  # smoothed vectors, kept while only a candidate


class Segmenter:
    def __init__(self, window: int = WINDOW, min_frames: int = MIN_FRAMES) -> None:
        if window < 1 or min_frames < 1:
            raise ValueError("window and min_frames must be at least 1")
        self.window, self.min_frames = window, min_frames
        self.lag = (window - 1) // 2  # how late the causal mean sees a sharp change
        # How many frames after a change of action the label can still be the old one (the candidate must last).
        self.latency = self.lag + min_frames - 1
        self._recent: deque[np.ndarray] = deque(maxlen=window)
        self._current: _Run | None = None
        self._candidate: _Run | None = None
        self._next_t = 0

    def push(self, probs: np.ndarray) -> list[ActionSegment]:
        """Take one frame's class probabilities; return the segments this frame closed."""
        t = self._next_t
        self._next_t += 1
        self._recent.append(np.asarray(probs, dtype=np.float64))
        smoothed = np.mean(self._recent, axis=0)
        c = int(np.argmax(smoothed))
        if self._current is None:
            self._current = _Run(c, t, [float(smoothed[c])])
            return []
        if c == self._current.label:
            self._absorb_candidate()
            self._current.conf.append(float(smoothed[c]))
            return []
        if self._candidate is not None and self._candidate.label != c:
            self._absorb_candidate()
        if self._candidate is None:
            self._candidate = _Run(c, max(self._current.start + 1, t - self.lag))
        self._candidate.conf.append(float(smoothed[c]))
        self._candidate.probs.append(smoothed)
        if len(self._candidate.conf) < self.min_frames:
            return []
        closed = self._close(self._current, self._candidate.start)
        self._current, self._candidate = _Run(c, self._candidate.start, self._candidate.conf), None
        return [closed]

    @property
    def current(self) -> tuple[int, float] | None:
        """The running segment's class and its latest smoothed probability (for display)."""
        if self._current is None:
            return None
        return self._current.label, self._current.conf[-1]

    def flush(self) -> list[ActionSegment]:
        """Close the running segment (end of video, or a gap such as the motion gate skipping frames)."""
        if self._current is None:
            return []
        self._absorb_candidate()
        closed = self._close(self._current, self._next_t)
        self._current = None
        self._recent.clear()
        return [closed]

    def skip(self, frames: int) -> list[ActionSegment]:
        """Frames that were not scored: close what runs, and start afresh after them."""
        closed = self.flush()
        self._next_t += frames
        return closed

    def _absorb_candidate(self) -> None:
        """A change that did not last belongs to the running segment."""
        if self._candidate is None or self._current is None:
            return
        label = self._current.label
        self._current.conf.extend(float(p[label]) for p in self._candidate.probs)
        self._candidate = None

    @staticmethod
    def _close(run: _Run, end: int) -> ActionSegment:
        return ActionSegment(run.label, run.start, end, float(np.mean(run.conf)))


def segment_scores(scores: np.ndarray, window: int = WINDOW, min_frames: int = MIN_FRAMES) -> list[ActionSegment]:
    """All segments of a whole video's (T, C) scores, exactly as the agent would emit them."""
    segmenter = Segmenter(window, min_frames)
    segments: list[ActionSegment] = []
    for row in np.asarray(scores):
        segments += segmenter.push(row)
    return segments + segmenter.flush()


class Span(Protocol):
    """Anything with a class and a frame range [start, end): our segments and the labels' segments."""

    @property
    def label(self) -> int: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


def segments_to_frames(segments: Iterable[Span], frame_count: int) -> np.ndarray:
    """The class of every frame; frames in no segment are 0, "no action"."""
    frames = np.zeros(frame_count, dtype=np.int64)
    for s in segments:
        frames[s.start : s.end] = s.label
    return frames
