"""Train/validation splits by video, never by frame: frames of one video are near-duplicates, so a
frame-level split would score a model on what it trained on."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]


def merl_subject(video: str) -> str:
    """MERL Shopping names videos `<subject>_<session>`: sessions of one person stay on one side."""
    match = re.match(r"(\d+)_\d+", video)
    return match.group(1) if match else video


def split_by_video(
    videos: Sequence[str],
    val_fraction: float = 0.2,
    seed: int = 0,
    group: Callable[[str], str] = lambda name: name,
) -> Split:
    """Deterministic split: the same names, fraction and seed give the same split in any order.

    Videos with the same `group` key (e.g. one MERL subject) always land on the same side.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if len(set(videos)) != len(videos):
        raise ValueError("video names must be unique")
    groups = sorted({group(v) for v in videos})
    random.Random(seed).shuffle(groups)
    n_val = round(len(groups) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(groups) > 1:
        n_val = 1  # a validation set of nothing would silently hide overfitting
    val_groups = set(groups[:n_val])
    ordered = sorted(videos)
    return Split(
        train=tuple(v for v in ordered if group(v) not in val_groups),
        val=tuple(v for v in ordered if group(v) in val_groups),
    )


# MERL Shopping's published split, by subject (Singh et al., CVPR 2016): nobody appears in two parts.
MERL_SPLIT = {"train": range(1, 21), "val": range(21, 27), "test": range(27, 42)}


def merl_split(videos: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The release's own split of `<subject>_<session>` names: train 1-20, val 21-26, test 27-41."""
    parts: dict[str, list[str]] = {part: [] for part in MERL_SPLIT}
    for video in sorted(videos):
        match = re.fullmatch(r"(\d+)_\d+", video)
        subject = int(match.group(1)) if match else None
        part = next((p for p, subjects in MERL_SPLIT.items() if subject in subjects), None)
        if part is None:
            raise ValueError(f"{video!r} is not a MERL Shopping video name <subject>_<session> with subject 1-41")
        parts[part].append(video)
    return {part: tuple(names) for part, names in parts.items()}
