"""`shelfwatch synth`: plan, render and write synthetic store videos with exact labels.

Video `index` of a run with seed `seed` depends on (seed, index) alone, so adding videos to a data set
never changes the ones already there, and the same arguments give identical frames and labels.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.classes import ACTION_CLASSES, Action
from edge.errors import ShelfWatchError
from training.labels import (
    Basket,
    FrameRecord,
    LabelFile,
    LedgerEntry,
    Segment,
    SegmentRecord,
    SkuRecord,
    make_labels,
    write_label_file,
)
from training.merl import write_merl_labels
from training.synth.catalog import CATALOG
from training.synth.presets import PRESETS
from training.synth.render import Renderer
from training.synth.scene import Geometry, make_geometry, make_layout
from training.synth.script import VideoPlan, plan_video


@dataclass(frozen=True)
class VideoSpec:
    seed: int
    index: int
    frames: int = 900
    width: int = 640
    height: int = 480
    fps: float = 30.0
    preset: str = "standard"

    @property
    def name(self) -> str:
        return f"synth_{self.preset}_s{self.seed}_{self.index:04d}"


@dataclass(frozen=True)
class Rendered:
    """A whole video in memory: for tests and for callers that do not want files."""

    frames: list[np.ndarray]
    labels: LabelFile


def check_spec(spec: VideoSpec) -> None:
    if spec.preset not in PRESETS:
        raise ShelfWatchError(f"unknown preset {spec.preset!r}; choose one of {', '.join(PRESETS)}")
    if spec.frames < 1:
        raise ShelfWatchError(f"--frames must be at least 1, got {spec.frames}")
    if not (64 <= spec.width <= 3840 and 48 <= spec.height <= 2160) or spec.width % 2 or spec.height % 2:
        raise ShelfWatchError(f"--size must be even, from 64x48 to 3840x2160, got {spec.width}x{spec.height}")
    if not 1 <= spec.fps <= 120:
        raise ShelfWatchError(f"--fps must be between 1 and 120, got {spec.fps}")


def _setup(spec: VideoSpec) -> tuple[Renderer, VideoPlan]:
    check_spec(spec)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, spec.index]))
    preset = PRESETS[spec.preset]
    geom = make_geometry(spec.width, spec.height, preset.store, rng)
    slots = make_layout(geom, rng, preset.store)
    plan = plan_video(geom, slots, preset, rng, spec.frames, spec.fps)
    return Renderer(geom, slots, plan, preset, rng, spec.frames, spec.fps), plan


def render_video(spec: VideoSpec) -> Rendered:
    renderer, plan = _setup(spec)
    frames, records = [], []
    for frame, record in renderer.frames():
        frames.append(frame)
        records.append(record)
    return Rendered(frames, _label_file(spec, renderer.geom, plan, records, video=None))


def write_video(spec: VideoSpec, out_dir: Path) -> tuple[Path, float]:
    """Write NAME.mp4, NAME.labels.json and NAME_label.mat; returns the labels path and render fps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path = out_dir / f"{spec.name}.mp4"
    geom, plan, records, fps = encode_video(spec, video_path)
    write_label_file(
        _label_file(spec, geom, plan, records, video=video_path.name), out_dir / f"{spec.name}.labels.json"
    )
    write_merl_labels(
        make_labels(plan_segments(plan, spec.frames), spec.frames, spec.fps), out_dir / f"{spec.name}_label.mat"
    )
    return out_dir / f"{spec.name}.labels.json", fps


def encode_video(spec: VideoSpec, video_path: Path) -> tuple[Geometry, VideoPlan, list[FrameRecord], float]:
    """Render the video into `video_path` (MPEG-4); returns its geometry, plan, per-frame records and render fps."""
    renderer, plan = _setup(spec)
    tmp = video_path.with_name(f".{video_path.stem}.partial.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise ShelfWatchError(f"cannot write {tmp}: OpenCV has no MPEG-4 encoder here")
    records: list[FrameRecord] = []
    started = time.perf_counter()
    try:
        for frame, record in renderer.frames():
            writer.write(frame)
            records.append(record)
    finally:
        writer.release()
    elapsed = time.perf_counter() - started
    tmp.replace(video_path)
    return renderer.geom, plan, records, spec.frames / max(elapsed, 1e-9)


def plan_segments(plan: VideoPlan, frame_count: int) -> list[Segment]:
    segments = []
    for person in plan.people:
        for ph in person.phases:
            if ph.label != Action.NO_ACTION and ph.start < frame_count:
                segments.append(Segment(int(ph.label), ph.start, min(ph.end, frame_count), person.id))
    return segments


def _label_file(
    spec: VideoSpec, geom: Geometry, plan: VideoPlan, records: list[FrameRecord], video: str | None
) -> LabelFile:
    labels = make_labels(plan_segments(plan, spec.frames), spec.frames, spec.fps)
    ledger = [
        LedgerEntry(frame=e.frame, shopper=e.shopper, sku=CATALOG[plan.items[e.item].sku].id, kind=e.kind)
        for e in plan.events
        if e.kind in ("take", "return") and e.frame < spec.frames
    ]
    return LabelFile(
        video=video,
        fps=spec.fps,
        frame_count=spec.frames,
        width=spec.width,
        height=spec.height,
        shelf=geom.shelf_outline(),
        classes=list(ACTION_CLASSES),
        frame_classes=labels.frame_classes.tolist(),
        segments=[SegmentRecord(label=s.name, start=s.start, end=s.end, shopper=s.shopper) for s in labels.segments],
        skus=[SkuRecord(id=s.id, name=s.name, shape=s.shape, yolo_class=i) for i, s in enumerate(CATALOG)],
        frames=records,
        ledger=ledger,
        baskets=baskets_from_ledger(ledger),
    )


def baskets_from_ledger(ledger: list[LedgerEntry]) -> list[Basket]:
    """Each shopper's items taken minus items put back, per SKU (zero counts left out)."""
    counts: dict[int, Counter[str]] = {}
    for e in ledger:
        counts.setdefault(e.shopper, Counter())[e.sku] += 1 if e.kind == "take" else -1
    return [Basket(shopper=s, items={sku: n for sku, n in sorted(c.items()) if n}) for s, c in sorted(counts.items())]
