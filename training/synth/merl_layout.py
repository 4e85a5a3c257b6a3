"""A stand-in for the MERL Shopping release: synthetic videos named, sized and foldered as the release,
with labels drawn the way its annotators drew them.

The release is a folder holding `Videos_MERL_Shopping_Dataset/<subject>_<session>_crop.mp4` (920x680,
30 fps) and `Labels_MERL_Shopping_Dataset/<subject>_<session>_label.mat`. The real videos cannot be
downloaded here; this writes the same shape so the whole path (reader, layout, split, training,
evaluation) runs end to end on it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from edge.classes import Action
from edge.errors import ShelfWatchError
from training.labels import Segment, make_labels
from training.merl import MERL_LABELS, MERL_VIDEOS, write_merl_labels
from training.synth.generate import VideoSpec, encode_video, plan_segments


def merl_style(segments: Sequence[Segment]) -> list[Segment]:
    """Exact segments redrawn as MERL's annotators draw them, every frame keeping its class under the
    overlap policy (`training.labels.resolve_frames`):

    - consecutive segments share their boundary frame: the earlier one runs one frame into the next;
    - an inspection right after a retract is drawn from the retract's first frame, so the retract lies
      inside it (as in the release's 1_1: retract [2645, 2672] inside inspect product [2644, 2744]).

    Classes with no segment become empty cells, as 7 of the release's 106 files have.
    """
    ordered = sorted(segments, key=lambda s: s.start)
    out = list(ordered)
    for i, (a, b) in enumerate(itertools.pairwise(ordered)):
        if a.end != b.start or a.shopper != b.shopper:
            continue
        if a.label == Action.RETRACT_FROM_SHELF and b.label == Action.INSPECT_PRODUCT:
            out[i + 1] = replace(out[i + 1], start=a.start)
        else:
            out[i] = replace(out[i], end=a.end + 1)
    return out


def parse_subjects(text: str) -> list[int]:
    """'1-3,21,27' -> [1, 2, 3, 21, 27]; MERL Shopping's subjects are 1-41."""
    subjects: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ShelfWatchError(f"--subjects must look like 1-20,21,27, got {text!r}")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 1 <= first <= last <= 41:
            raise ShelfWatchError(f"--subjects must lie within MERL Shopping's subjects 1-41, got {part.strip()!r}")
        subjects.update(range(first, last + 1))
    return sorted(subjects)


def write_merl_video(spec: VideoSpec, out_dir: Path, subject: int, session: int) -> tuple[Path, float]:
    """Write `<subject>_<session>_crop.mp4` and `<subject>_<session>_label.mat` in the release's folders."""
    name = f"{subject}_{session}"
    (out_dir / MERL_VIDEOS).mkdir(parents=True, exist_ok=True)
    (out_dir / MERL_LABELS).mkdir(parents=True, exist_ok=True)
    _, plan, _, fps = encode_video(spec, out_dir / MERL_VIDEOS / f"{name}_crop.mp4")
    segments = merl_style(plan_segments(plan, spec.frames))
    label_path = out_dir / MERL_LABELS / f"{name}_label.mat"
    write_merl_labels(make_labels(segments, spec.frames, spec.fps), label_path)
    return label_path, fps
