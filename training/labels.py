"""Action labels: one in-memory type, the one policy for overlapping segments, and our JSON label file.

Frames are 0-based everywhere in ShelfWatch and a segment's `end` is exclusive; MERL Shopping's
1-based inclusive frame numbers are translated in `training.merl`. Reading a file of either format,
chosen by its suffix, is `training.label_files.read_labels`.

Segments may overlap: MERL Shopping's annotators very often let consecutive segments share one or two
boundary frames, and sometimes put a segment inside another. The segments are kept as annotated, and
`resolve_frames` turns them into one class per frame (see there for the policy).

Labels are either frame-wise (segments: every frame has a class, "no action" where no segment is) or timestamps
(one labelled frame per action instance, "no action" stretches included, as in timestamp supervision, Li et al.,
arXiv 2103.06669): then every other frame's class is unknown, -1 (`UNLABELLED`) in `frame_classes`, and
training decides how the labels spread (`training.timestamps`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from edge.classes import ACTION_CLASSES, Action
from edge.errors import ShelfWatchError
from edge.schema import Strict, describe

LABELS_FORMAT = "shelfwatch-labels"
LABELS_VERSION = 1
UNLABELLED = -1  # a frame of timestamp labels other than a timestamp: its class is not known


class LabelError(ShelfWatchError):
    """A label file that cannot be read, or that contradicts itself or its video."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Segment:
    """One action instance: frames [start, end) of class `label`, by `shopper` where known."""

    label: int
    start: int
    end: int
    shopper: int | None = None

    @property
    def name(self) -> str:
        return ACTION_CLASSES[self.label]


@dataclass(frozen=True)
class Overlaps:
    """What `resolve_frames` had to decide: frames claimed by more than one segment, and the pairs of
    segments that overlap, by kind."""

    frames: int = 0  # frames inside two or more segments: the policy chose their class
    boundaries: int = 0  # pairs that overlap at their ends (the later one starts before the earlier ends)
    nested: int = 0  # pairs where one segment lies inside the other (identical ranges included)

    def __str__(self) -> str:
        if not self.frames:
            return "no overlapping segments"
        return (
            f"{_count(self.frames, 'frame')} in overlapping segments decided by the overlap policy "
            f"({_count(self.boundaries, 'shared boundary', 'shared boundaries')}, "
            f"{_count(self.nested, 'nested segment')})"
        )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


@dataclass(frozen=True)
class Timestamp:
    """One labelled frame standing for the action instance around it (class 0, "no action", included)."""

    frame: int
    label: int
    shopper: int | None = None


@dataclass(frozen=True, eq=False)  # numpy arrays have no single truth value to compare by
class ActionLabels:
    """Per-frame classes plus the action segments behind them, as every reader returns them."""

    frame_classes: np.ndarray  # int64, one class index per frame (overlaps resolved by `resolve_frames`); -1: unknown
    segments: tuple[Segment, ...]  # as annotated: they may overlap
    fps: float
    overlaps: Overlaps = field(default_factory=Overlaps)
    timestamps: tuple[Timestamp, ...] = ()  # timestamp labels: then there are no segments

    @property
    def frame_count(self) -> int:
        return int(self.frame_classes.shape[0])

    @property
    def partial(self) -> bool:
        """Timestamp labels: only the timestamps' frames have a class."""
        return bool(self.timestamps)


def frames_to_segments(frame_classes: np.ndarray) -> list[Segment]:
    """Maximal runs of one non-zero class (adjacent instances of one class merge: frames cannot tell)."""
    frames = np.asarray(frame_classes)
    if frames.size == 0:
        return []
    change = np.flatnonzero(np.diff(frames)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [frames.size]])
    return [Segment(int(frames[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True) if frames[s] != 0]


def check_segments(segments: Sequence[Segment], frame_count: int) -> None:
    """Raise ValueError unless every segment has an action class, a non-empty range and lies inside the video."""
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        if not 1 <= seg.label < len(ACTION_CLASSES):
            raise ValueError(f"segment at frames {seg.start}-{seg.end} has class {seg.label}, not 1-5")
        if seg.start < 0 or seg.end <= seg.start:
            raise ValueError(f"{seg.name} segment has start {seg.start} and end {seg.end}")
        if seg.end > frame_count:
            raise ValueError(f"{seg.name} segment {seg.start}-{seg.end} ends after the video's {frame_count} frames")


def resolve_frames(segments: Sequence[Segment], frame_count: int) -> tuple[np.ndarray, Overlaps]:
    """One class per frame from segments that may overlap: THE overlap policy, applied nowhere else.

    A frame inside several segments goes to the one that began last: a boundary frame shared by two
    consecutive segments goes to the segment that starts there (the next action has begun), and a
    segment inside another keeps its own frames, the outer one resuming after it. Segments that begin on
    the same frame: the shorter one (it lies inside the other); identical ranges: the lower class
    (MERL's cell order). Frames in no segment are "no action". Segments are assumed checked
    (`check_segments`).
    """
    frames = np.zeros(frame_count, dtype=np.int64)
    cover = np.zeros(frame_count, dtype=np.int64)
    # Painted in the policy's order: the segment painted last on a frame wins it.
    for seg in sorted(segments, key=lambda s: (s.start, -s.end, -s.label)):
        frames[seg.start : seg.end] = seg.label
        cover[seg.start : seg.end] += 1
    boundaries = nested = 0
    by_start = sorted(segments, key=lambda s: (s.start, -s.end))
    for i, a in enumerate(by_start):
        for b in by_start[i + 1 :]:
            if b.start >= a.end:
                break
            if b.end <= a.end:
                nested += 1
            else:
                boundaries += 1
    return frames, Overlaps(int(np.count_nonzero(cover > 1)), boundaries, nested)


def check_timestamps(timestamps: Sequence[Timestamp], frame_count: int) -> None:
    """Raise ValueError unless every timestamp has a class (0-5) and its own frame inside the video."""
    seen: set[int] = set()
    for t in sorted(timestamps, key=lambda t: t.frame):
        if not 0 <= t.label < len(ACTION_CLASSES):
            raise ValueError(f"timestamp at frame {t.frame} has class {t.label}, not 0-5")
        if not 0 <= t.frame < frame_count:
            raise ValueError(f"timestamp at frame {t.frame} is outside the video's {frame_count} frames")
        if t.frame in seen:
            raise ValueError(f"two timestamps at frame {t.frame}")
        seen.add(t.frame)


def timestamp_frames(timestamps: Sequence[Timestamp], frame_count: int) -> np.ndarray:
    """-1 (unknown) everywhere but at the timestamps."""
    frames = np.full(frame_count, UNLABELLED, dtype=np.int64)
    for t in timestamps:
        frames[t.frame] = t.label
    return frames


def make_labels(
    segments: Sequence[Segment], frame_count: int, fps: float, timestamps: Sequence[Timestamp] = ()
) -> ActionLabels:
    """Labels from raw segments (kept as they are) and the frame classes the overlap policy gives them; or from
    timestamps (no segments), every other frame unknown."""
    if timestamps:
        if segments:
            raise ValueError("labels are segments or timestamps, not both")
        check_timestamps(timestamps, frame_count)
        ordered_ts = tuple(sorted(timestamps, key=lambda t: t.frame))
        return ActionLabels(timestamp_frames(ordered_ts, frame_count), (), fps, Overlaps(), ordered_ts)
    check_segments(segments, frame_count)
    frames, overlaps = resolve_frames(segments, frame_count)
    ordered = tuple(sorted(segments, key=lambda s: (s.start, s.end, s.label)))
    return ActionLabels(frames, ordered, fps, overlaps)


# ---------------------------------------------------------------------------------------------------
# The JSON label file. It carries more than actions where the source knows more (the synthetic
# generator knows every product box and every item taken); a MERL conversion fills only the actions.

Point = tuple[float, float]
Box = tuple[int, int, int, int]


class SegmentRecord(Strict):
    label: str = Field(description="Action class name, one of `classes` other than no_action.")
    start: int = Field(ge=0, description="First frame (0-based).")
    end: int = Field(gt=0, description="One past the last frame.")
    shopper: int | None = Field(default=None, description="Shopper id, where known.")


class SkuRecord(Strict):
    id: str
    name: str
    shape: str
    yolo_class: int = Field(ge=0, description="Class index in the generated YOLO dataset.")


class ShopperPose(Strict):
    id: int
    head: Point = Field(description="Head centre, pixels.")
    hands: tuple[Point, Point] = Field(description="Left and right hand centres, pixels.")
    passerby: bool = Field(default=False, description="Crossing the aisle; never takes anything.")


class ProductBox(Strict):
    sku: str
    box: Box = Field(description="x1, y1, x2, y2 in pixels.")
    place: Literal["shelf", "hand", "cart"] = Field(description="'hand' means held by `shopper`.")
    shopper: int | None = None
    hand: Literal[0, 1] | None = Field(default=None, description="Which hand holds it (0 left, 1 right).")
    visible: float = Field(ge=0.0, le=1.0, description="Fraction of the box not covered by people.")


class FrameRecord(Strict):
    shoppers: list[ShopperPose] = Field(default_factory=list)
    products: list[ProductBox] = Field(default_factory=list)


class LedgerEntry(Strict):
    frame: int = Field(ge=0, description="Frame at which the item left the shelf (take) or was put back.")
    shopper: int | None = Field(default=None, description="Who took or returned it, where known.")
    sku: str
    kind: Literal["take", "return"]


class TimestampRecord(Strict):
    frame: int = Field(ge=0, description="The labelled frame (0-based).")
    label: str = Field(description="Its class, one of `classes` (no_action included).")
    shopper: int | None = Field(default=None, description="Shopper id, where known.")


class ReviewRecord(Strict):
    """Where a reviewed labels version came from: central keeps every version, the box's prediction included."""

    clip: str = Field(description="The analysis (clip) these labels are of.")
    version: int = Field(ge=0, description="0: the box's prediction; 1, 2, ...: the corrections, in order.")
    based_on: int | None = Field(default=None, ge=0, description="The version it was edited from.")
    prediction: str = Field(description="What predicted version 0: the model bundle's id.")
    saved_by: str | None = Field(default=None, description="The API token that saved it (its id; never the secret).")
    saved_at: datetime | None = Field(default=None, description="When it was saved (UTC).")


class Basket(Strict):
    shopper: int
    items: dict[str, int] = Field(description="SKU id -> items taken minus items put back.")


class LabelFile(Strict):
    format: Literal["shelfwatch-labels"] = LABELS_FORMAT
    version: Literal[1] = LABELS_VERSION
    video: str | None = Field(default=None, description="The video file's name, beside this file.")
    fps: Annotated[float, Field(gt=0)]
    frame_count: Annotated[int, Field(ge=0)]
    width: int | None = None
    height: int | None = None
    shelf: list[Point] | None = Field(
        default=None,
        min_length=3,
        description="The shelf's outline in the picture, a polygon in pixels, where it is known (the generator "
        "knows it): what an installer draws as the box's shelf zone.",
    )
    classes: list[str]
    frame_classes: list[int] = Field(
        description="Class index of every frame: the segments with their overlaps resolved (a frame in several "
        "segments belongs to the one that began last; of two beginning together, the shorter; of identical "
        "ones, the lower class)."
    )
    segments: list[SegmentRecord] = Field(
        description="The action segments as annotated. They may overlap (MERL Shopping's share boundary frames "
        "and nest), so nothing the annotation said is lost."
    )
    skus: list[SkuRecord] = Field(default_factory=list)
    frames: list[FrameRecord] | None = Field(default=None, description="Per-frame shoppers and product boxes.")
    ledger: list[LedgerEntry] = Field(default_factory=list)
    baskets: list[Basket] = Field(default_factory=list)
    timestamps: list[TimestampRecord] = Field(
        default_factory=list,
        description="Timestamp labels: one frame per action instance (no_action stretches included). A file with "
        "timestamps has no segments, and its frame_classes are -1 (unknown) but at the timestamps.",
    )
    review: ReviewRecord | None = Field(default=None, description="Set on labels reviewed in central: provenance.")

    @model_validator(mode="after")
    def _consistent(self) -> LabelFile:
        if tuple(self.classes) != ACTION_CLASSES:
            raise ValueError(f"classes must be {list(ACTION_CLASSES)}, got {self.classes}")
        if len(self.frame_classes) != self.frame_count:
            raise ValueError(f"frame_classes has {len(self.frame_classes)} entries for frame_count {self.frame_count}")
        if self.frames is not None and len(self.frames) != self.frame_count:
            raise ValueError(f"frames has {len(self.frames)} entries for frame_count {self.frame_count}")
        lowest = UNLABELLED if self.timestamps else 0
        bad = [c for c in self.frame_classes if not lowest <= c < len(ACTION_CLASSES)]
        if bad:
            raise ValueError(f"frame_classes holds {bad[0]}, not a class index {lowest}-{len(ACTION_CLASSES) - 1}")
        for seg in self.segments:
            if seg.label not in ACTION_CLASSES or seg.label == ACTION_CLASSES[Action.NO_ACTION]:
                raise ValueError(f"segment label {seg.label!r} is not an action class")
        for t in self.timestamps:
            if t.label not in ACTION_CLASSES:
                raise ValueError(f"timestamp label {t.label!r} at frame {t.frame} is not a class")
        if self.timestamps:
            if self.segments:
                raise ValueError("labels are segments or timestamps, not both")
            stamps = [_timestamp(t) for t in self.timestamps]
            check_timestamps(stamps, self.frame_count)
            expected = timestamp_frames(stamps, self.frame_count)
        else:
            segments = [_segment(s) for s in self.segments]
            check_segments(segments, self.frame_count)
            expected, _ = resolve_frames(segments, self.frame_count)
        mismatch = np.flatnonzero(expected != np.asarray(self.frame_classes, dtype=np.int64))
        if mismatch.size:
            f = int(mismatch[0])
            by = "the timestamps" if self.timestamps else "the segments"
            raise ValueError(
                f"frame {f} is {_class_name(self.frame_classes[f])} in frame_classes but "
                f"{_class_name(int(expected[f]))} by {by} ({mismatch.size} frames disagree)"
            )
        return self


def _class_name(index: int) -> str:
    return "unlabelled" if index == UNLABELLED else ACTION_CLASSES[index]


def _timestamp(record: TimestampRecord) -> Timestamp:
    return Timestamp(record.frame, ACTION_CLASSES.index(record.label), record.shopper)


def _segment(record: SegmentRecord) -> Segment:
    return Segment(ACTION_CLASSES.index(record.label), record.start, record.end, record.shopper)


def to_label_file(labels: ActionLabels, video: str | None = None) -> LabelFile:
    return LabelFile(
        video=video,
        fps=labels.fps,
        frame_count=labels.frame_count,
        classes=list(ACTION_CLASSES),
        frame_classes=labels.frame_classes.tolist(),
        segments=[SegmentRecord(label=s.name, start=s.start, end=s.end, shopper=s.shopper) for s in labels.segments],
        timestamps=[
            TimestampRecord(frame=t.frame, label=ACTION_CLASSES[t.label], shopper=t.shopper) for t in labels.timestamps
        ],
    )


def action_labels(label_file: LabelFile) -> ActionLabels:
    """The in-memory labels of a validated file (its frame classes already agree with the policy)."""
    return make_labels([_segment(s) for s in label_file.segments], label_file.frame_count, label_file.fps,
                       [_timestamp(t) for t in label_file.timestamps])  # fmt: skip


def read_label_file(path: str | Path) -> LabelFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(path, f"cannot be read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelError(path, f"is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        return LabelFile.model_validate(data)
    except ValidationError as exc:
        raise LabelError(path, describe(exc)) from None


def write_label_file(label_file: LabelFile, path: str | Path) -> None:
    # Written to a temporary name first so that a crash never leaves half a label file behind.
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(label_file.model_dump_json(exclude_none=True), encoding="utf-8")
    tmp.replace(path)


def label_file_schema() -> dict:
    return LabelFile.model_json_schema()
