"""Recording a bundle's reference clip (`edge.reference`): at export for every new bundle, and for an existing one with
`shelfwatch bundle reference BUNDLE --video CLIP`, which adds the clip and reseals the manifest (`export.reseal`: a
signature made before is then stale and removed: the signer signs the new manifest)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle import ReferenceEntry, read_bundle
from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.reference import REFERENCE, REFERENCE_FRAMES, Models, clip_from_frames, run, save
from export.reseal import put_file, reseal

RECORDED_ON = "CPUExecutionProvider"  # the outputs are recorded on the CPU, which every exporting machine has
LEAD_IN = 4  # frames before the first action: the clip shows it start


@dataclass(frozen=True)
class Added:
    old_id: str
    new_id: str
    entry: ReferenceEntry
    dropped_signature: bool


def default_start(video: Path) -> int:
    """Where the clip starts when not told: a few frames before the first reach into the shelf (else the first
    action) that the labels file beside a generated or labelled video names, so that the clip holds changes of
    action; else at the start."""
    labels = video.with_name(video.stem + ".labels.json")
    try:
        segments = [s for s in json.loads(labels.read_text()).get("segments", []) if isinstance(s, dict)
                    and isinstance(s.get("start"), int) and s.get("label") != ACTION_CLASSES[0]]  # fmt: skip
    except (OSError, ValueError, AttributeError):
        return 0
    reaches = [s["start"] for s in segments if s.get("label") == "reach_to_shelf"]
    starts = reaches or [s["start"] for s in segments]
    return max(0, min(starts) - LEAD_IN) if starts else 0


def read_frames(video: Path, start: int, count: int = REFERENCE_FRAMES) -> list[np.ndarray]:
    import cv2

    if not video.is_file():
        raise ShelfWatchError(f"{video}: no such video file")
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise ShelfWatchError(f"{video}: cannot be read as a video")
        frames, index = [], 0
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            if index >= start:
                frames.append(frame)
            index += 1
    finally:
        cap.release()
    if len(frames) < count:
        raise ShelfWatchError(f"{video}: has {index} frames; a reference clip takes {count} from frame {start}")
    return frames


def export_clip(videos: list[Path]) -> tuple[list[np.ndarray], str]:
    """The frames an export records its reference on: from the first of `videos` long enough, where its labels put
    the first reach (else from its start); with where they came from."""
    for video in videos:
        for start in dict.fromkeys((default_start(video), 0)):
            try:
                return read_frames(video, start), f"{video.name} frames {start}-{start + REFERENCE_FRAMES}"
            except ShelfWatchError:
                continue
    raise ShelfWatchError(f"no video among {len(videos)} has the {REFERENCE_FRAMES} frames a reference clip takes")


def record(folder: Path, manifest, frames: list[np.ndarray], source: str) -> ReferenceEntry:
    """Run the bundle's graphs (in `folder`, described by `manifest`) over `frames` on the CPU and write
    `folder/reference.npz`; the manifest entry that names it."""
    from edge.providers import choose_providers

    clip = clip_from_frames(frames, manifest)
    outputs = run(Models(manifest, folder, choose_providers("cpu")), clip)
    save(folder / REFERENCE, clip, outputs)
    return ReferenceEntry(file=REFERENCE, frames=len(clip.frames), images=len(clip.images), source=source[-512:],
                          provider=RECORDED_ON)  # fmt: skip


def add_reference(folder: Path, video: Path, start: int | None = None) -> Added:
    """Record a reference clip for an existing bundle and reseal its manifest (`export.reseal`); an earlier reference
    clip is replaced."""
    if start is not None and start < 0:
        raise ShelfWatchError("--start must be 0 or more")
    manifest = read_bundle(folder).manifest
    first = default_start(video) if start is None else start
    frames = read_frames(video, first)
    entries: list[ReferenceEntry] = []

    def change(staging: Path, data: dict) -> None:
        entries.append(record(staging, manifest, frames, f"{video.name} frames {first}-{first + len(frames)}"))
        put_file(staging, data, REFERENCE, manifest.reference.file if manifest.reference else None)
        data["reference"] = entries[0].model_dump()

    done = reseal(folder, change)
    return Added(done.old_id, done.manifest.bundle_id, entries[0], done.dropped_signature)
