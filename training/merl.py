"""MERL Shopping label files (`<subject>_<session>_label.mat`): the only module that speaks MERL's frames.

Each holds one variable, `tlabs`: a 5x1 MATLAB cell array, cell k for MERL class k+1 (reach to shelf,
retract from shelf, hand in shelf, inspect product, inspect shelf), each cell a K x 2 matrix of
[first frame, last frame] rows, 1-based and inclusive (uint16 in the release; any integer-valued
numbers are read). A class with no instance is an empty cell (MATLAB writes a 0x0 uint8). Rows within a
cell are not in time order, and segments overlap: consecutive ones often share one or two boundary
frames and a few lie inside another; `training.labels.resolve_frames` decides those frames and the
segments are kept as annotated. The file stores no frame count and no frame rate: MERL Shopping
videos run at 30 fps.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io

from edge.classes import MERL_CLASS_NAMES
from training.labels import ActionLabels, LabelError, Segment, make_labels

MERL_FPS = 30.0
MAT_HEADER_TEXT = 116  # a MAT-file v5 header: 116 bytes of text, then the subsystem offset, version and byte order
# The release's two folders, as downloaded: `<subject>_<session>_crop.mp4` and `<subject>_<session>_label.mat`.
MERL_VIDEOS = "Videos_MERL_Shopping_Dataset"
MERL_LABELS = "Labels_MERL_Shopping_Dataset"
UINT16_MAX = 65535


def read_merl_segments(path: str | Path) -> list[Segment]:
    """The file's segments as annotated, in ShelfWatch's frames (0-based, end exclusive)."""
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
    if tlabs.dtype != object or tlabs.size != len(MERL_CLASS_NAMES) or max(tlabs.shape) != tlabs.size:
        raise LabelError(
            path, f"'tlabs' must be a cell array of {len(MERL_CLASS_NAMES)} cells, got {tlabs.dtype} {tlabs.shape}"
        )
    segments: list[Segment] = []
    for k, cell in enumerate(tlabs.reshape(-1)):
        rows = np.asarray(cell)
        if rows.size == 0:
            continue  # a class with no instance in this video
        name = MERL_CLASS_NAMES[k]
        if rows.ndim != 2 or rows.shape[1] != 2 or not (np.issubdtype(rows.dtype, np.number) and rows.dtype != bool):
            raise LabelError(path, f"cell {k + 1} ({name}) must be a K x 2 matrix of frame numbers, got {rows.shape}")
        if not np.all(np.isfinite(rows)) or not np.all(rows == np.round(rows)):
            raise LabelError(path, f"cell {k + 1} ({name}) holds frame numbers that are not integers")
        for first, last in rows.astype(np.int64):  # uint16 would wrap below 1
            if first < 1 or last < first:
                raise LabelError(path, f"{name} segment [{first}, {last}] is not a 1-based frame range")
            segments.append(Segment(k + 1, int(first) - 1, int(last)))
    return segments


def read_merl_labels(path: str | Path, *, frame_count: int | None = None, fps: float = MERL_FPS) -> ActionLabels:
    """`frame_count`: the video's length where known (labels are padded with "no action" up to it, and
    one past it is an error); without it the labels end at the last labelled frame."""
    segments = read_merl_segments(path)
    if frame_count is None:
        frame_count = max((s.end for s in segments), default=0)
    try:
        return make_labels(segments, frame_count, fps)
    except ValueError as exc:
        raise LabelError(path, str(exc)) from None


def write_merl_labels(labels: ActionLabels, path: str | Path) -> None:
    """Write `tlabs` as the release stores it (uint16 rows, 0x0 cells for absent classes), segments as
    annotated, so tools written for MERL Shopping read our videos too. Timestamp labels have no MERL form."""
    if labels.partial:
        raise LabelError(path, "timestamp labels have no MERL Shopping form (tlabs holds frame ranges); keep the JSON")
    last = max((s.end for s in labels.segments), default=0)
    dtype = np.uint16 if last <= UINT16_MAX else np.uint32  # longer than 36 min at 30 fps: uint16 cannot hold it
    tlabs = np.empty((len(MERL_CLASS_NAMES), 1), dtype=object)
    for k in range(len(MERL_CLASS_NAMES)):
        rows = [(s.start + 1, s.end) for s in labels.segments if s.label == k + 1]
        tlabs[k, 0] = np.asarray(rows, dtype=dtype) if rows else np.zeros((0, 0), dtype=np.uint8)
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"tlabs": tlabs})
    data = bytearray(buffer.getvalue())
    # The header's 116 bytes of text say when scipy wrote the file; a fixed text keeps the same labels the same bytes
    # (`shelfwatch synth` promises identical files for identical arguments). Readers use only the bytes after it.
    data[:MAT_HEADER_TEXT] = b"MATLAB 5.0 MAT-file, written by ShelfWatch".ljust(MAT_HEADER_TEXT)
    # Written to a temporary name first so that a crash never leaves half a label file behind.
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(data))
    tmp.replace(path)
