"""Any action label file, chosen by its suffix: our JSON (`training.labels`) or MERL Shopping's .mat
(`training.merl`). Both of those depend only on `training.labels`; only this module knows them both.

It also reads a data folder's `manifest.json`: a folder of labelled clips written by `shelfwatch dataset export`
(central's verified clips) says there which split each clip belongs to and where it came from."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from edge.errors import ShelfWatchError
from edge.schema import Strict, describe
from training.labels import ActionLabels, LabelError, action_labels, read_label_file, to_label_file, write_label_file
from training.merl import MERL_FPS, read_merl_labels, write_merl_labels

DATASET_FORMAT = "shelfwatch-dataset"
DATASET_MANIFEST = "manifest.json"


def read_labels(path: str | Path, *, frame_count: int | None = None, fps: float | None = None) -> ActionLabels:
    """Read our JSON labels or MERL Shopping `*_label.mat` labels.

    `frame_count` is the video's length where known: labels that run past it are an error, and MERL
    labels (which do not store the length) are padded with "no action" up to it. `fps` is for MERL
    labels, which do not store it either (default 30).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return read_merl_labels(path, frame_count=frame_count, fps=fps if fps is not None else MERL_FPS)
    if suffix == ".json":
        labels = action_labels(read_label_file(path))
        if frame_count is not None and labels.frame_count != frame_count:
            raise LabelError(path, f"has {labels.frame_count} frames but its video has {frame_count}")
        return labels
    raise LabelError(path, "is neither a .json (ShelfWatch) nor a .mat (MERL Shopping) label file")


def write_labels(labels: ActionLabels, path: str | Path) -> None:
    """Write our JSON or, for a .mat path, MERL Shopping's `tlabs` (which keeps the segments only)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        write_merl_labels(labels, path)
    elif suffix == ".json":
        write_label_file(to_label_file(labels), path)
    else:
        raise LabelError(path, "the output must be a .json (ShelfWatch) or .mat (MERL Shopping) label file")


class DatasetClip(Strict):
    """One clip of an exported data folder: its files (`NAME.<video suffix>`, `NAME.labels.json` and, for
    segment labels, `NAME_label.mat`), its split, and where it came from."""

    name: str = Field(description="NAME: the clip's files are NAME.mp4 (or the upload's suffix), NAME.labels.json "
                      "and NAME_label.mat")  # fmt: skip
    split: Literal["train", "val"] = Field(description="Which part of a training run it belongs to.")
    labels: Literal["segments", "timestamps"] = Field(description="Frame-wise segments, or timestamp labels.")
    files: list[str] = Field(description="The clip's files in the folder.")
    clip: str = Field(description="The clip's id in central (its analysis).")
    store: str
    day: date = Field(description="The day the clip was recorded (or, for an upload, analysed), UTC.")
    source: str = Field(description="The name of the video as it was uploaded or found in clips_dir.")
    video_sha256: str
    version: int = Field(ge=1, description="The labels version that was verified.")
    saved_by: str | None = Field(description="The API token (id) that saved that version.")
    saved_at: datetime
    verified_by: str | None = Field(description="The API token (id) that verified it.")
    verified_at: datetime
    prediction: str = Field(description="The model bundle whose prediction the labels were corrected from.")


class DatasetManifest(Strict):
    format: Literal["shelfwatch-dataset"] = DATASET_FORMAT
    version: Literal[1] = 1
    store: str
    exported_at: datetime
    split_rule: str = Field(description="How the clips were split, in words.")
    clips: list[DatasetClip]


def read_dataset_manifest(folder: Path) -> DatasetManifest | None:
    """The folder's dataset manifest; None when it has none (a plain folder of labelled videos)."""
    path = folder / DATASET_MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ShelfWatchError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
        return None  # someone else's manifest.json
    try:
        return DatasetManifest.model_validate(data)
    except ValidationError as exc:
        raise ShelfWatchError(f"{path}: {describe(exc)}") from None


def write_as_timestamps(source: Path, target: Path) -> int:
    """A copy of the JSON label file `source` with its segments replaced by timestamp labels (`stamp_runs`); the
    rest (ledger, baskets, boxes) is kept. Returns how many timestamps it holds."""
    from training.labels import UNLABELLED, TimestampRecord
    from training.timestamps import stamp_runs

    full = read_label_file(source)
    stamps = stamp_runs(full.frame_classes)
    frame_classes = [UNLABELLED] * full.frame_count
    for t in stamps:
        frame_classes[t.frame] = t.label
    records = [TimestampRecord(frame=t.frame, label=full.classes[t.label]) for t in stamps]
    write_label_file(full.model_copy(update={"segments": [], "timestamps": records, "frame_classes": frame_classes}),
                     target)  # fmt: skip
    return len(stamps)
