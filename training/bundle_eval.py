"""A model bundle scored by what a box would send: the agent runs on labelled videos (motion gate, model delay,
segmenter, confidence floor and all), and its action events are compared frame by frame with the labels (frames
no event covers are "no action"); its picks, put-backs and baskets with the video's ledger where it has one.

This is the headline number for a bundle: `shelfwatch eval action` scores the PyTorch run offline, on every
frame, which is not what a store gets.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from edge.agent import RunOptions, run_agent
from edge.classes import ACTION_CLASSES
from edge.config import BoxConfig, Camera, OutboxConfig, Zone
from edge.errors import ShelfWatchError
from edge.segments import ActionSegment, segments_to_frames
from training.action_data import find_videos
from training.label_files import read_labels
from training.labels import LabelFile, read_label_file
from training.metrics import segment_report
from training.splits import merl_split


@dataclass
class VideoScore:
    name: str
    frames: int
    fps: float  # the agent's speed on it
    report: dict[str, float]
    net_units: int | None = None  # units taken (picks minus put-backs per SKU) in the ledger
    unit_errors: int | None = None  # how far the box's net counts per SKU are from them
    baskets_exact: bool | None = None  # every shopper's final basket as in the ledger (as a multiset)


@dataclass
class BundleScore:
    videos: list[VideoScore]
    pooled: dict[str, float] = field(default_factory=dict)  # every measure over all videos' frames at once

    @property
    def net_items_right(self) -> float | None:
        scored = [v for v in self.videos if v.net_units is not None]
        if not scored:
            return None
        units = sum(v.net_units or 0 for v in scored)
        return 1 - sum(v.unit_errors or 0 for v in scored) / max(1, units)

    @property
    def baskets_exact(self) -> tuple[int, int]:
        scored = [v for v in self.videos if v.baskets_exact is not None]
        return sum(bool(v.baskets_exact) for v in scored), len(scored)


def labelled_videos(folder: Path, split: str | None = None) -> list[tuple[Path, Path]]:
    """(video, labels) pairs in `folder`, found as training finds them (our JSON labels, MERL's .mat beside the
    video or in the release's own folders); `split="merl"`: only MERL Shopping's test subjects 27-41."""
    found = find_videos(folder)
    names = sorted(found)
    if split == "merl":
        try:
            names = list(merl_split(names)["test"])
        except ValueError as exc:
            raise ShelfWatchError(f"{folder}: --split merl: {exc}") from None
    return [found[name] for name in names]


def run_box(bundle: Path, video: Path, work: Path, threads: int = 1, shelf: list[tuple[float, float]] | None = None,
            start_time: datetime | None = None) -> tuple[list[dict], float, int]:  # fmt: skip
    """The agent on one video, as `shelfwatch edge run --bundle` runs it: its events, fps and frame count. `shelf`:
    the shelf's outline in the picture, the box's shelf zone as an installer would draw it (None: the agent's
    default, the demo store's layout); `start_time`: when its first frame was recorded (`--start-time`)."""
    jsonl = work / f"{video.stem}.jsonl"
    zones = [Zone(name="shelf", polygon=shelf)] if shelf else []
    config = BoxConfig(store="eval", box="eval", camera=Camera(source=str(video)), bundle=bundle, zones=zones,
                       outbox=OutboxConfig(path=work / f"{video.stem}.sqlite"), threads=threads)  # fmt: skip
    summary = run_agent(config, RunOptions(events_jsonl=jsonl, start_time=start_time))
    return [json.loads(line) for line in jsonl.read_text().splitlines()], summary.fps, summary.frames


def emitted_segments(events: list[dict]) -> list[ActionSegment]:
    return [ActionSegment(ACTION_CLASSES.index(e["action"]), e["start"], e["end"], e["confidence"])
            for e in events if e["kind"] == "action"]  # fmt: skip


def item_counts(events: list[dict], labels: LabelFile) -> tuple[int, int, bool]:
    """(units in the ledger, units the box got wrong, final baskets exact): net items per SKU, what a checkout
    cross-check compares, and the shoppers' baskets compared as a multiset (shopper ids are the box's own)."""
    truth: Counter = Counter()
    for entry in labels.ledger:
        truth[entry.sku] += 1 if entry.kind == "take" else -1
    found: Counter = Counter()
    for e in events:
        if e["kind"] in ("pick", "putback"):
            found[e["sku"]] += e["quantity"] if e["kind"] == "pick" else -e["quantity"]
    errors = sum(abs(truth[k] - found[k]) for k in set(truth) | set(found))
    last: dict[int, dict] = {}
    for e in events:
        if e["kind"] == "basket":
            last[e["shopper"]] = e["items"]
    got = sorted(tuple(sorted(b.items())) for b in last.values() if b)
    expected = sorted(tuple(sorted(b.items.items())) for b in labels.baskets if b.items)
    return sum(abs(v) for v in truth.values()), errors, got == expected


@dataclass
class VideoRun:
    """One bundle on one labelled video: its scores, and the frames and segments that pool into a folder's."""

    score: VideoScore
    truth: np.ndarray
    pred: np.ndarray
    segments: list[ActionSegment]


def score_video(bundle: Path, video: Path, labels_path: Path, work: Path, threads: int = 1) -> VideoRun:
    """The agent on one labelled video, with the shelf zone its labels give where they give one."""
    label_file = read_label_file(labels_path) if labels_path.suffix == ".json" else None
    shelf = label_file.shelf if label_file is not None else None
    events, fps, frames = run_box(bundle, video, work, threads, shelf)
    labels = read_labels(labels_path, frame_count=frames)
    if labels.partial:  # frame scores need a class for every frame
        raise ShelfWatchError(f"{labels_path}: timestamp labels cannot score a bundle frame by frame; use clips with "
                              "segments")  # fmt: skip
    truth = labels.frame_classes
    segments = emitted_segments(events)
    pred = segments_to_frames(segments, frames)
    score = VideoScore(video.stem, frames, fps, segment_report(truth, pred, segments))
    if label_file is not None and (label_file.ledger or label_file.baskets):
        score.net_units, score.unit_errors, score.baskets_exact = item_counts(events, label_file)
    return VideoRun(score, truth, pred, segments)


def pool(runs: list[VideoRun]) -> BundleScore:
    """Videos' scores, and every measure over all their frames at once (detections ranked across videos)."""
    detections, offset = [], 0
    for run in runs:
        detections += [ActionSegment(s.label, s.start + offset, s.end + offset, s.confidence) for s in run.segments]
        offset += run.score.frames
    pooled = (
        segment_report(np.concatenate([r.truth for r in runs]), np.concatenate([r.pred for r in runs]), detections)
        if runs
        else {}
    )
    return BundleScore([r.score for r in runs], pooled)


def score_bundle(bundle: Path, pairs: list[tuple[Path, Path]], threads: int = 1) -> BundleScore:
    with tempfile.TemporaryDirectory() as tmp:
        return pool([score_video(bundle, video, labels, Path(tmp), threads) for video, labels in pairs])


def table(score: BundleScore) -> str:
    """The scores as a person reads them: one line per video, then all videos pooled."""
    keys = ["frame_accuracy", "macro_f1", "edit", "f1@10", "f1@25", "f1@50", "map@0.5"]
    head = f"{'video':32} " + " ".join(f"{k:>14}" for k in keys) + f" {'net units':>10} {'basket':>7} {'fps':>6}"
    lines = [head]
    for v in score.videos:
        units = f"{v.net_units - v.unit_errors}/{v.net_units}" if v.net_units is not None else "-"
        basket = {True: "exact", False: "differs", None: "-"}[v.baskets_exact]
        lines.append(f"{v.name[:32]:32} " + " ".join(f"{v.report[k]:14.3f}" for k in keys)
                     + f" {units:>10} {basket:>7} {v.fps:6.0f}")  # fmt: skip
    p = score.pooled
    lines.append(f"{'all ' + str(len(score.videos)) + ' videos':32} " + " ".join(f"{p.get(k, 0):14.3f}" for k in keys))
    right, n = score.baskets_exact
    items = score.net_items_right
    lines.append(f"through the agent: frame accuracy {p.get('frame_accuracy', 0):.3f}, F1@50 {p.get('f1@50', 0):.1f}"
                 + (f", net items right {items:.3f}, baskets exact {right}/{n}" if items is not None else "")
                 + f", median {statistics.median(v.fps for v in score.videos):.0f} fps")  # fmt: skip
    return "\n".join(lines)
