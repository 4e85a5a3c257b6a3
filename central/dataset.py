"""A store's verified clips out as a folder `shelfwatch train action` reads (`shelfwatch dataset export`).

For each verified clip `NAME` (`<store>_<day>_<clip id>`): `NAME.<suffix>`, the original video (a hard link where
the folder is on the data directory's file system, else a copy; its SHA-256 checked against the one recorded when
the clip was kept), `NAME.labels.json`, the verified labels version, and, for segment labels, `NAME_label.mat`
(MERL Shopping's form; timestamp labels have none). `manifest.json` (`training.label_files.DatasetManifest`) says
which split each clip is in and where it came from: the clip, its day, the uploaded file, the labels version, who
saved and who verified it, and the bundle whose prediction was corrected.

The split goes by clip and day, so a clip never sits in two splits and clips of one day (one store's light, one
day's shoppers) stay together: with clips of two or more days, whole days are drawn; with one day only, clips are.
Which side a day (or clip) falls on depends on its own name alone (a hash under the share goes to val), so a folder
exported again with more clips keeps the earlier ones where they were; in a small folder, at least one and at most
the share (rounded) go to val, which can move one when it grows.

The folder is written aside and moved into place when complete: a failed export leaves the previous one as it was."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from central.review import Clip, Reviews, link_or_copy, sha256_of
from edge.errors import ShelfWatchError
from training.label_files import DATASET_MANIFEST, DatasetClip, DatasetManifest, read_dataset_manifest
from training.labels import action_labels, write_label_file
from training.merl import write_merl_labels

VAL_SHARE = 0.2


def share_of(key: str) -> float:
    """Where a day or clip falls in [0, 1): the same name, the same place, whatever else is exported with it."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def split_clips(clips: list[Clip], val_share: float = VAL_SHARE) -> tuple[dict[str, str], str]:
    """clip id -> "train" or "val", and the rule in words."""
    by_day = len({c.day for c in clips}) >= 2
    group = (lambda c: c.day) if by_day else (lambda c: c.clip_id)
    groups = sorted({group(c) for c in clips}, key=share_of)
    most = max(1, round(val_share * len(groups)))  # a few clips must not draw most of them into val by chance
    val = {g for g in groups[:most] if share_of(g) < val_share}
    if len(groups) >= 2 and not val:
        val = {groups[0]}  # a validation set of nothing would hide overfitting
    unit = "day" if by_day else "clip (all are of one day)"
    rule = (f"by {unit}: a {'day' if by_day else 'clip'} goes to val when the hash of its name falls under "
            f"{val_share:g}, at least one and at most {most} of {len(groups)}")  # fmt: skip
    return {c.clip_id: "val" if group(c) in val else "train" for c in clips}, rule


def export(reviews: Reviews, store: str, out: Path, val_share: float = VAL_SHARE) -> DatasetManifest:
    clips = reviews.clips(store=store, state="verified")
    if not clips:
        raise ShelfWatchError(f"store {store}: no verified clip to export (verify clips on their result pages)")
    _check_out(out)
    splits, rule = split_clips(clips, val_share)
    partial = out.parent / f".{out.name}.export-{secrets.token_hex(4)}"
    partial.mkdir(parents=True)
    try:
        entries = [_write_clip(reviews, clip, splits[clip.clip_id], partial) for clip in clips]
        manifest = DatasetManifest(store=store, exported_at=datetime.now(timezone.utc), split_rule=rule, clips=entries)
        (partial / DATASET_MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)  # an earlier export (checked above)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return manifest


def _check_out(out: Path) -> None:
    """OUT is new, empty, or an earlier export (which is replaced); anything else is left alone."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ShelfWatchError(f"--out {out}: not a folder")
    if any(out.iterdir()) and read_dataset_manifest(out) is None:
        raise ShelfWatchError(f"--out {out}: a folder holding other files (not an earlier export); choose another")


def _write_clip(reviews: Reviews, clip: Clip, split: str, folder: Path) -> DatasetClip:
    name = f"{clip.store}_{clip.day}_{clip.clip_id}"
    if sha256_of(clip.video) != clip.video_sha256:
        raise ShelfWatchError(f"clip {clip.clip_id}: its video {clip.video} changed since it was kept (its SHA-256 "
                              "differs)")  # fmt: skip
    assert clip.verified_version is not None and clip.verified is not None
    labels = reviews.labels(clip.clip_id, clip.verified_version)
    video = f"{name}{clip.video.suffix.lower()}"
    link_or_copy(clip.video, folder / video)
    labels = labels.model_copy(update={"video": video})
    write_label_file(labels, folder / f"{name}.labels.json")
    files = [video, f"{name}.labels.json"]
    if not labels.timestamps:
        write_merl_labels(action_labels(labels), folder / f"{name}_label.mat")
        files.append(f"{name}_label.mat")
    version = next(v for v in reviews.versions(clip.clip_id) if v.version == clip.verified_version)
    return DatasetClip(
        name=name, split=split, labels="timestamps" if labels.timestamps else "segments", files=files,
        clip=clip.clip_id, store=clip.store, day=clip.day, source=clip.name, video_sha256=clip.video_sha256,
        version=version.version, saved_by=version.token_id, saved_at=version.saved, verified_by=clip.verified_by,
        verified_at=clip.verified, prediction=clip.bundle,
    )  # fmt: skip


def summary(manifest: DatasetManifest, out: Path) -> str:
    parts = {s: sum(c.split == s for c in manifest.clips) for s in ("train", "val")}
    stamps = sum(c.labels == "timestamps" for c in manifest.clips)
    return (f"wrote {len(manifest.clips)} verified clip{'s' if len(manifest.clips) != 1 else ''} of store "
            f"{manifest.store} to {out}: {parts['train']} train, {parts['val']} val"
            + (f" ({stamps} with timestamp labels)" if stamps else "") + f"; {out / DATASET_MANIFEST} says "
            f"where each came from ({json.dumps(manifest.split_rule)})")  # fmt: skip
