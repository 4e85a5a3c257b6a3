"""Action recognition one frame at a time: the encoder graph once per frame, the LSTM step graph with
its state carried from frame to frame. A clip is never re-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.bundle import Manifest
from edge.preprocess import shrink, to_input
from edge.providers import open_session


def softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class ActionRecognizer:
    """Feed camera frames in order; each `push` returns class probabilities for frame t - `delay`."""

    def __init__(
        self, manifest: Manifest, folder: Path, providers: list[tuple[str, dict[str, str]]] | None = None,
        threads: int = 0,
    ) -> None:  # fmt: skip
        entry = manifest.action
        self.spec = entry.input.spec()
        self.delay = entry.delay
        self.hidden = entry.hidden
        self.encoder = open_session(folder / entry.encoder, providers, threads)
        self.step_graph = open_session(folder / entry.step, providers, threads)
        self.reset()

    def reset(self) -> None:
        """Forget the past (after a gap in the video: the LSTM's state no longer fits what it sees)."""
        self.h = np.zeros((1, 1, self.hidden), np.float32)
        self.c = np.zeros((1, 1, self.hidden), np.float32)
        self.previous: np.ndarray | None = None

    def encode(self, small_bgr: np.ndarray, previous_bgr: np.ndarray | None) -> np.ndarray:
        """(N, H, W, 3) frames at the model's size -> (N, F) features."""
        x = to_input(small_bgr, previous_bgr, self.spec)
        return self.encoder.run(None, {"frames": x})[0]

    def step(self, features: np.ndarray) -> np.ndarray:
        """(F,) features of the next frame -> (classes,) scores; the state moves on."""
        scores, self.h, self.c = self.step_graph.run(None, {"features": features[None], "h": self.h, "c": self.c})
        return scores[0]

    def push(self, frame_bgr: np.ndarray) -> np.ndarray:
        small = shrink(frame_bgr, self.spec)
        features = self.encode(small[None], self.previous)[0]
        self.previous = small
        return softmax(self.step(features))
