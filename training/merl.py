"""MERL Shopping label files (`<subject>_<session>_label.mat`).

Each holds one variable, `tlabs`: a 5x1 MATLAB cell array, cell k for MERL class k+1 (reach to shelf,
retract from shelf, hand in shelf, inspect product, inspect shelf), each cell an N x 2 matrix of
[first frame, last frame] rows, 1-based and inclusive. Frames in no segment are "no action". The file
stores no frame count and no frame rate: MERL Shopping videos run at 30 fps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from edge.classes import MERL_CLASS_NAMES
from training.labels import ActionLabels, LabelError, Segment, make_labels

MERL_FPS = 30.0


def read_merl_labels(path: str | Path, *, frame_count: int | None = None, fps: float = MERL_FPS) -> ActionLabels:
    path = Path(path)
    if not path.is_file():
        raise LabelError(path, "no such file")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types (ValueError, MatReadError, TypeError) for junk
        raise LabelError(path, f"is not a readable MATLAB file ({exc})") from None
    if "tlabs" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise LabelError(path, f"has no 'tlabs' variable (found {found or 'none'}); not a MERL Shopping label file")
    tlabs = mat["tlabs"]
    if tlabs.dtype != object or tlabs.size != len(MERL_CLASS_NAMES):
        raise LabelError(
            path, f"'tlabs' must be a cell array of {len(MERL_CLASS_NAMES)} cells, got {tlabs.dtype} {tlabs.shape}"
        )
    segments: list[Segment] = []
    for k, cell in enumerate(tlabs.reshape(-1)):
        rows = np.asarray(cell)
        if rows.size == 0:
            continue
        if rows.ndim != 2 or rows.shape[1] != 2 or not np.issubdtype(rows.dtype, np.number):
            raise LabelError(path, f"cell {k + 1} ({MERL_CLASS_NAMES[k]}) must be an N x 2 matrix, got {rows.shape}")
        if not np.all(np.isfinite(rows)) or not np.all(rows == np.round(rows)):
            raise LabelError(path, f"cell {k + 1} ({MERL_CLASS_NAMES[k]}) holds frame numbers that are not integers")
        for first, last in rows.astype(np.int64):
            if first < 1 or last < first:
                raise LabelError(path, f"{MERL_CLASS_NAMES[k]} segment [{first}, {last}] is not a 1-based frame range")
            segments.append(Segment(k + 1, int(first) - 1, int(last)))
    last_frame = max((s.end for s in segments), default=0)
    if frame_count is None:
        frame_count = last_frame
    try:
        return make_labels(segments, frame_count, fps)
    except ValueError as exc:
        raise LabelError(path, str(exc)) from None


def write_merl_labels(labels: ActionLabels, path: str | Path) -> None:
    """Write `tlabs` as MATLAB would, so that tools written for MERL Shopping read our videos too."""
    tlabs = np.empty((len(MERL_CLASS_NAMES), 1), dtype=object)
    for k in range(len(MERL_CLASS_NAMES)):
        rows = [(s.start + 1, s.end) for s in labels.segments if s.label == k + 1]
        tlabs[k, 0] = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
    scipy.io.savemat(str(path), {"tlabs": tlabs})
