"""Action recognition one frame at a time: the encoder graph once per frame, the LSTM step graph with
its state carried from frame to frame. A clip is never re-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.bundle import Manifest
from edge.preprocess import shrink, to_input
from edge.providers import open_session
from edge.segments import ActionSegment, Segmenter
from edge.video import Frame


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
        self.features: np.ndarray | None = None  # the latest frame's encoder features (familiarity reads them)

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
        self.features = self.encode(small[None], self.previous)[0]
        self.previous = small
        return softmax(self.step(self.features))


class ActionStream:
    """Recognizer + segmenter over a stream with gaps (the motion gate, a lost camera).

    With delay d the output at frame t is for frame t - d, so after every (re)start the first d outputs
    are dropped, and before a gap the last d frames take the final output, exactly as evaluation scores.
    The segmenter's frame numbers are the video's.
    """

    def __init__(self, recognizer: ActionRecognizer, segmenter: Segmenter, still_frames: int = 0) -> None:
        self.recognizer, self.segmenter = recognizer, segmenter
        self.still_frames = still_frames  # how long a still picture carries on the action seen before it
        self.still = 0  # still frames carried so far
        self.delay = recognizer.delay
        self.expect = 0  # the frame the segmenter scores next
        self.in_gap = True
        self.warmup = 0
        self.last: np.ndarray | None = None

    def update(self, frame: Frame, active: bool) -> list[ActionSegment]:
        """One frame of the stream: scored when the motion gate is open, carried on or a gap while it is closed;
        returns the segments it closed. A frame after lost ones starts afresh."""
        closed = self.gap(frame.index) if frame.after_gap else []
        return closed + (self.frame(frame.index, frame.image) if active else self.hold(frame.index))

    def hold(self, index: int) -> list[ActionSegment]:
        """The motion gate is closed: nothing moves, so whatever was being done goes on (a shopper standing still
        in front of the shelf is still inspecting it), for up to `still_frames`; after that, a gap."""
        if self.in_gap or self.last is None or self.still >= self.still_frames:
            return self.gap(index)
        self.still += 1
        self.expect += 1
        return self.segmenter.push(self.last)

    @property
    def label(self) -> int | None:
        """The action recognised on the latest frame; None while nothing is scored."""
        current = self.current
        return current[0] if current is not None else None

    def frame(self, index: int, image: np.ndarray) -> list[ActionSegment]:
        closed: list[ActionSegment] = []
        if self.in_gap:
            closed += self.segmenter.skip(index - self.expect)
            self.expect, self.in_gap, self.warmup, self.last = index, False, self.delay, None
            self.recognizer.reset()
        self.still = 0
        probs = self.recognizer.push(image)
        if self.warmup:
            self.warmup -= 1
            return closed
        self.last = probs
        self.expect += 1
        return closed + self.segmenter.push(probs)

    def gap(self, index: int) -> list[ActionSegment]:
        """Frame `index` is not scored (nor, until the next `frame`, any after it)."""
        if self.in_gap:
            return []
        closed: list[ActionSegment] = []
        if self.last is not None:
            while self.expect < index:  # the last d frames take the final output
                closed += self.segmenter.push(self.last)
                self.expect += 1
        closed += self.segmenter.skip(max(0, index - self.expect))  # close what runs; move to `index`
        self.expect = max(self.expect, index)
        self.in_gap = True
        return closed

    def close(self, end: int) -> list[ActionSegment]:
        return self.gap(end)

    @property
    def current(self) -> tuple[int, float] | None:
        return None if self.in_gap else self.segmenter.current
