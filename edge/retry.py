"""Waiting between attempts: doubling from `first` up to `most`, back to `first` after a success. Used where
something outside us may come back (a camera stream, a broker, a refused publish); how long each caller waits
at most is its own setting."""

from __future__ import annotations


class Backoff:
    def __init__(self, first: float = 1.0, most: float = 30.0) -> None:
        self.first, self.most = first, max(first, most)
        self.delay = first  # the wait before the next attempt

    def next(self) -> float:
        """The wait before this attempt; the one after it doubles (up to `most`)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self.delay = self.first
