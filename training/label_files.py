"""Any action label file, chosen by its suffix: our JSON (`training.labels`) or MERL Shopping's .mat
(`training.merl`). Both of those depend only on `training.labels`; only this module knows them both."""

from __future__ import annotations

from pathlib import Path

from training.labels import ActionLabels, LabelError, action_labels, read_label_file, to_label_file, write_label_file
from training.merl import MERL_FPS, read_merl_labels, write_merl_labels


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
