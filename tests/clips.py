"""Clips for tests. Moving bars, made in a second at any size (PyAV's libx264), for tests that care about a video's
size and length, not what it shows; and seeded synthetic store clips with their labels, for tests that say how
well the box does (below)."""

from __future__ import annotations

import functools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np

from training.bundle_eval import item_counts, run_box
from training.labels import LabelFile, read_label_file
from training.synth.generate import VideoSpec, write_video


def bars_clip(path: Path, width: int, height: int, frames: int = 30, fps: int = 30, noise: bool = False,
              faststart: bool = False) -> Path:  # fmt: skip
    """`noise` makes the file large (MBs: the index at its end is then out of a streaming reader's reach, unless
    `faststart` puts it at the front)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        x = np.arange(width, dtype=np.int32)
        for i in range(frames):
            row = (((x + 8 * i) // 32) % 2 * 200 + 30).astype(np.uint8)
            image = np.repeat(np.broadcast_to(row, (height, width))[..., None], 3, axis=2)
            if noise:
                image = image ^ rng.integers(0, 64, image.shape, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# Seeded synthetic store clips with their labels, and the demo bundle's events on each. Tests that say how well the
# box does draw their clips from a range of seeds fixed here, up front (never picked by how the box did on them),
# and compare a rate over the range with a floor measured once and written down beside it. Clips are short (12 s at
# the generator's default 640x480), rendered once per test session and watched once by the agent, in two processes.

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "demo"
CLIP_FRAMES = 360
CLIP_CLOCK = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # every clip's first frame (--start-time)


@dataclass(frozen=True)
class Clip:
    spec: VideoSpec
    video: Path
    labels_path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @functools.cached_property
    def labels(self) -> dict:
        return json.loads(self.labels_path.read_text())

    @functools.cached_property
    def label_file(self) -> LabelFile:
        return read_label_file(self.labels_path)


@dataclass(frozen=True)
class Watched:
    """What the box sent on a clip (status heartbeats included), as `shelfwatch eval bundle` runs it: the labels'
    shelf outline as the box's zone."""

    clip: Clip
    events: list[dict]

    @property
    def exact(self) -> tuple[int, int, bool]:
        """(units in the ledger, units the box got wrong, final baskets exact)."""
        return item_counts(self.events, self.clip.label_file)


def seeded_range(seed: int, count: int, preset: str = "standard", frames: int = CLIP_FRAMES) -> list[VideoSpec]:
    return [VideoSpec(seed=seed, index=i, frames=frames, preset=preset) for i in range(count)]


# The ranges the accuracy tests draw from: seeds no bundle was trained, exported or tuned on (training uses seed 1,
# the held-out test set 1000, the README's hard set 4000), fixed before anything was measured on them.
STANDARD = seeded_range(5000, 20)
HARD = seeded_range(5100, 12, "hard")


def _render_and_watch(spec: VideoSpec, folder: Path) -> Watched:
    labels_path = write_video(spec, folder)[0]
    clip = Clip(spec, labels_path.with_name(labels_path.name.replace(".labels.json", ".mp4")), labels_path)
    events = run_box(DEMO_BUNDLE, clip.video, folder, shelf=clip.label_file.shelf, start_time=CLIP_CLOCK)[0]
    return Watched(clip, events)


class ClipCache:
    """One per test session (the `seeded_clips` fixture): each clip rendered once, and watched once."""

    def __init__(self, folder: Path, jobs: int = 2) -> None:
        self.folder, self.jobs = folder, jobs
        self._watched: dict[VideoSpec, Watched] = {}

    def watched(self, specs: list[VideoSpec]) -> list[Watched]:
        """The box's events on each clip, in the order given; the ones not yet watched are rendered and watched
        `jobs` at a time (fresh processes: no ONNX Runtime session crosses a fork)."""
        todo = [s for s in dict.fromkeys(specs) if s not in self._watched]
        if todo:
            with ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                done = pool.map(_render_and_watch, todo, [self.folder / s.name for s in todo])
                self._watched.update(zip(todo, done, strict=True))
        return [self._watched[s] for s in specs]


def outcomes(rows: list[tuple[str, bool, str]]) -> str:
    """Per-clip outcomes, for a failure message: every clip, right or not, with what differed."""
    return "\n".join(f"  {'ok  ' if ok else 'MISS'} {name}: {detail}" for name, ok, detail in rows)
