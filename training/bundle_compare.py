"""Model bundles side by side, scored by what the box emits, and the verdict on whether a new bundle may replace the
old one (`shelfwatch eval compare`; `bench/bundle_compare.py` prints the same measures for several bundles).

Every bundle runs through the agent (`edge run --bundle`, one ONNX Runtime thread) on the same clips, one clip at a
time with each bundle in turn (the order alternating from clip to clip), so that a busy machine slows every bundle
alike:

- labelled folders (`--data`): frame accuracy, F1@50 and net items right, pooled per folder (`training.bundle_eval`);
- negative clips (`--negatives`): footage in which nothing happens at a shelf (people walking past, a hand holding
  a cup): every shelf action, pick or put-back there is invented, and no basket may go below zero;
- speed: the new bundle's frames per second over the old one's, the median of the per-clip ratios.

The verdict (`decide`): promote when the new bundle is better on the first `--data` folder by at least `margin`
points of frame accuracy, over at least `min_clips` labelled clips (with fewer: not enough clips), no more than
`tolerance` points worse on every other folder, and invents no more on the negative clips (shelf actions, picks and
put-backs, negative baskets: each no more than the old bundle's). `Verdict` is what `--json` writes; the fleet
rollout gates on it (`shelfwatch schema verdict`).
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import cv2
from pydantic import Field

from edge.bundle import load_bundle
from edge.errors import ShelfWatchError
from edge.schema import Strict
from training.bundle_eval import BundleScore, VideoRun, labelled_videos, pool, run_box, score_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
VERDICT_FORMAT = "shelfwatch-verdict"


@dataclass
class NegativeClip:
    """One bundle on one clip in which nothing happens at a shelf: everything it reports there is invented."""

    name: str
    minutes: float
    fps: float
    actions: int  # shelf action events
    picks_putbacks: int
    negative: int  # basket entries below zero


@dataclass
class Measured:
    """One bundle's scores: per labelled folder (in the order given), per negative clip."""

    bundle: Path
    folders: dict[Path, BundleScore] = field(default_factory=dict)
    negatives: list[NegativeClip] = field(default_factory=list)

    def fps(self) -> list[float]:
        return [v.fps for s in self.folders.values() for v in s.videos] + [c.fps for c in self.negatives]


def negative_clips(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ShelfWatchError(f"{folder}: no such folder of negative clips")
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not clips:
        raise ShelfWatchError(f"{folder}: no video ({', '.join(VIDEO_SUFFIXES)}) to use as a negative clip")
    return clips


def score_negative(bundle: Path, clip: Path, work: Path, threads: int = 1) -> NegativeClip:
    events, fps, frames = run_box(bundle, clip, work, threads)
    cap = cv2.VideoCapture(str(clip))
    rate = cap.get(cv2.CAP_PROP_FPS) or 30.0
    cap.release()
    return NegativeClip(
        name=clip.name,
        minutes=frames / rate / 60,
        fps=fps,
        actions=sum(e["kind"] == "action" for e in events),
        picks_putbacks=sum(e["kind"] in ("pick", "putback") for e in events),
        negative=sum(n < 0 for e in events if e["kind"] == "basket" for n in e["items"].values()),
    )


def actions_per_minute(clips: list[NegativeClip]) -> float:
    return sum(c.actions for c in clips) / max(sum(c.minutes for c in clips), 1e-9)


def measure(
    bundles: list[Path],
    folders: list[Path],
    negatives: list[Path] | None = None,
    threads: int = 1,
    on_clip: Callable[[str], None] | None = None,
) -> list[Measured]:
    """Every bundle on every clip, one clip at a time with each bundle in turn. `on_clip` hears a line per clip."""
    for bundle in bundles:
        load_bundle(bundle)  # a broken bundle is one line before any clip is run
    seen: set[Path] = set()
    for folder in folders:
        if folder.resolve() in seen:
            raise ShelfWatchError(f"{folder}: given twice as --data (each folder is scored once)")
        seen.add(folder.resolve())
    pairs = {folder: labelled_videos(folder) for folder in folders}
    for folder, found in pairs.items():
        if not found:
            raise ShelfWatchError(f"{folder}: no labelled video to score")
    clips = negatives or []
    results = [Measured(b) for b in bundles]
    runs: list[dict[Path, list[VideoRun]]] = [{f: [] for f in folders} for _ in bundles]
    total = sum(len(p) for p in pairs.values()) + len(clips)
    done = 0
    with tempfile.TemporaryDirectory() as tmp:

        def work(k: int) -> Path:
            """A folder of its own for each run (its outbox and events file): folders may hold clips of one name."""
            path = Path(tmp) / f"{done}-{k}"
            path.mkdir()
            return path

        for folder, found in pairs.items():
            for video, labels in found:
                for k in _alternate(len(bundles), done):
                    runs[k][folder].append(score_video(bundles[k], video, labels, work(k), threads))
                done += 1
                if on_clip:
                    accuracy = " ".join(f"{runs[k][folder][-1].score.report['frame_accuracy']:.3f}"
                                        for k in range(len(bundles)))  # fmt: skip
                    on_clip(f"[{done}/{total}] {video.name}: frame accuracy {accuracy}")
        for clip in clips:
            for k in _alternate(len(bundles), done):
                results[k].negatives.append(score_negative(bundles[k], clip, work(k), threads))
            done += 1
            if on_clip:
                on_clip(f"[{done}/{total}] {clip.name}: shelf actions "
                        + " ".join(str(r.negatives[-1].actions) for r in results))  # fmt: skip
    for k, result in enumerate(results):
        result.folders = {folder: pool(runs[k][folder]) for folder in folders}
    return results


def _alternate(n: int, i: int) -> list[int]:
    """Bundles in turn, the order reversed on every other clip: neither runs first (a colder cache) every time."""
    order = list(range(n))
    return order if i % 2 == 0 else order[::-1]


# -- the verdict, as JSON: what the fleet rollout gates on -----------------------------------------------------------
class BundleRef(Strict):
    path: str
    bundle_id: str = Field(
        description="The bundle's manifest digest: the gate checks it names the bundle it rolls out."
    )


class Rules(Strict):
    margin_points: float = Field(description="Frame accuracy the new bundle must gain on the first folder, points.")
    tolerance_points: float = Field(description="Frame accuracy it may lose on every other folder, points.")
    min_clips: int = Field(
        description="Labelled clips the first folder must have for any verdict but not_enough_clips."
    )


class FolderScore(Strict):
    frame_accuracy: float = Field(ge=0, le=1, description="Pooled over the folder's frames, through the agent.")
    f1_50: float = Field(ge=0, le=100, description="Segment F1 at IoU 0.5, percent, averaged over clips.")
    net_items_right: float | None = Field(description="1 - units wrong / units in the ledgers; None: no ledgers.")
    baskets_exact: int
    baskets_scored: int
    fps: float = Field(description="The agent's median frames per second over the folder's clips.")


class FolderComparison(Strict):
    folder: str
    clips: int
    old: FolderScore
    new: FolderScore
    frame_accuracy_change_points: float = Field(description="New minus old frame accuracy, points.")


class NegativesScore(Strict):
    actions: int = Field(description="Shelf action events: every one is invented.")
    actions_per_minute: float
    picks_putbacks: int
    negative_baskets: int = Field(description="Basket entries below zero.")
    fps: float


class NegativesComparison(Strict):
    folder: str
    clips: int
    minutes: float
    old: NegativesScore
    new: NegativesScore


class Check(Strict):
    rule: str
    passed: bool
    detail: str


class Verdict(Strict):
    format: Literal["shelfwatch-verdict"] = VERDICT_FORMAT
    version: Literal[1] = 1
    created: datetime
    verdict: Literal["promote", "refuse", "not_enough_clips"] = Field(
        description="promote: every check passed; refuse: one failed; not_enough_clips: the first folder has fewer "
        "labelled clips than the rules ask (nothing is promoted on so little)."
    )
    old: BundleRef
    new: BundleRef
    rules: Rules
    checks: list[Check]
    folders: list[FolderComparison] = Field(description="In the order given; the first decides.")
    negatives: NegativesComparison | None = None
    fps_ratio: float = Field(description="New over old frames per second: the median of the per-clip ratios.")


DEFAULT_RULES = Rules(margin_points=2.0, tolerance_points=1.0, min_clips=5)


def folder_score(score: BundleScore) -> FolderScore:
    right, scored = score.baskets_exact
    return FolderScore(
        frame_accuracy=score.pooled["frame_accuracy"],
        f1_50=score.pooled["f1@50"],
        net_items_right=score.net_items_right,
        baskets_exact=right,
        baskets_scored=scored,
        fps=statistics.median(v.fps for v in score.videos),
    )


def negatives_score(clips: list[NegativeClip]) -> NegativesScore:
    return NegativesScore(
        actions=sum(c.actions for c in clips),
        actions_per_minute=actions_per_minute(clips),
        picks_putbacks=sum(c.picks_putbacks for c in clips),
        negative_baskets=sum(c.negative for c in clips),
        fps=statistics.median(c.fps for c in clips),
    )


def decide(
    old: Measured,
    new: Measured,
    rules: Rules,
    negatives_folder: Path | None = None,
    now: datetime | None = None,
) -> Verdict:
    """The verdict on measured bundles (`measure`), by the rules in this module's docstring."""
    folders = []
    for folder in old.folders:
        before, after = folder_score(old.folders[folder]), folder_score(new.folders[folder])
        folders.append(
            FolderComparison(
                folder=str(folder),
                clips=len(old.folders[folder].videos),
                old=before,
                new=after,
                frame_accuracy_change_points=(after.frame_accuracy - before.frame_accuracy) * 100,
            )
        )
    first, others = folders[0], folders[1:]
    checks = [
        Check(
            rule=f"at least {rules.min_clips} labelled clips in {first.folder}",
            passed=first.clips >= rules.min_clips,
            detail=f"{first.clips} clips",
        ),
        Check(
            rule=f"frame accuracy on {first.folder} up by at least {rules.margin_points:g} points",
            passed=first.frame_accuracy_change_points >= rules.margin_points - 1e-9,
            detail=f"{first.old.frame_accuracy:.3f} -> {first.new.frame_accuracy:.3f} "
            f"({first.frame_accuracy_change_points:+.1f} points)",
        ),
    ]
    checks += [
        Check(
            rule=f"frame accuracy on {f.folder} down by at most {rules.tolerance_points:g} points",
            passed=f.frame_accuracy_change_points >= -rules.tolerance_points - 1e-9,
            detail=f"{f.old.frame_accuracy:.3f} -> {f.new.frame_accuracy:.3f} "
            f"({f.frame_accuracy_change_points:+.1f} points)",
        )
        for f in others
    ]
    negatives = None
    if old.negatives:
        o, n = negatives_score(old.negatives), negatives_score(new.negatives)
        negatives = NegativesComparison(
            folder=str(negatives_folder) if negatives_folder else "",
            clips=len(old.negatives),
            minutes=sum(c.minutes for c in old.negatives),
            old=o,
            new=n,
        )
        for what, a, b in (
            ("shelf actions", o.actions, n.actions),
            ("picks and put-backs", o.picks_putbacks, n.picks_putbacks),
            ("negative basket entries", o.negative_baskets, n.negative_baskets),
        ):
            checks.append(Check(rule=f"no more {what} on the negative clips", passed=b <= a, detail=f"{a} -> {b}"))
    if not checks[0].passed:
        verdict = "not_enough_clips"
    else:
        verdict = "promote" if all(c.passed for c in checks) else "refuse"
    ratios = [b / a for a, b in zip(old.fps(), new.fps(), strict=True) if a > 0]
    return Verdict(
        created=now or datetime.now(timezone.utc),
        verdict=verdict,
        old=BundleRef(path=str(old.bundle), bundle_id=load_bundle(old.bundle).bundle_id),
        new=BundleRef(path=str(new.bundle), bundle_id=load_bundle(new.bundle).bundle_id),
        rules=rules,
        checks=checks,
        folders=folders,
        negatives=negatives,
        fps_ratio=statistics.median(ratios) if ratios else 0.0,
    )


def compare(
    old: Path,
    new: Path,
    folders: list[Path],
    negatives: Path | None = None,
    rules: Rules | None = None,
    threads: int = 1,
    on_clip: Callable[[str], None] | None = None,
) -> Verdict:
    rules = rules or DEFAULT_RULES
    clips = negative_clips(negatives) if negatives is not None else None
    measured_old, measured_new = measure([old, new], folders, clips, threads, on_clip)
    return decide(measured_old, measured_new, rules, negatives)


def verdict_schema() -> dict:
    return Verdict.model_json_schema()


def report(v: Verdict) -> str:
    """The comparison as a person reads it: per folder old -> new, the negatives, the speed, then the verdict."""

    def items(s: FolderScore) -> str:
        return "-" if s.net_items_right is None else f"{s.net_items_right:.3f}"

    lines = [f"old {v.old.path} ({v.old.bundle_id})  ->  new {v.new.path} ({v.new.bundle_id})", ""]
    lines.append(f"{'folder':28} {'clips':>5}  {'frame accuracy':>26}  {'F1@50':>13}  {'net items right':>15}  "
                 f"{'baskets exact':>13}  {'fps':>9}")  # fmt: skip
    for f in v.folders:
        accuracy = f"{f.old.frame_accuracy:.3f} -> {f.new.frame_accuracy:.3f} ({f.frame_accuracy_change_points:+.1f})"
        baskets = f"{f.old.baskets_exact}/{f.old.baskets_scored} -> {f.new.baskets_exact}/{f.new.baskets_scored}"
        lines.append(
            f"{f.folder[-28:]:28} {f.clips:>5}  {accuracy:>26}  {f'{f.old.f1_50:.1f} -> {f.new.f1_50:.1f}':>13}  "
            f"{f'{items(f.old)} -> {items(f.new)}':>15}  {baskets:>13}  {f'{f.old.fps:.0f} -> {f.new.fps:.0f}':>9}"
        )
    if v.negatives:
        n = v.negatives
        lines.append(
            f"negatives {n.folder} ({n.clips} clips, {n.minutes:.1f} min): shelf actions a minute "
            f"{n.old.actions_per_minute:.2f} -> {n.new.actions_per_minute:.2f} ({n.old.actions} -> {n.new.actions}), "
            f"picks and put-backs {n.old.picks_putbacks} -> {n.new.picks_putbacks}, negative basket entries "
            f"{n.old.negative_baskets} -> {n.new.negative_baskets}"
        )
    lines.append(f"speed: the new bundle runs at {v.fps_ratio:.2f}x the old one's frames per second "
                 "(median of per-clip ratios, one thread each)")  # fmt: skip
    lines.append("")
    for c in v.checks:
        lines.append(f"  [{'ok' if c.passed else 'FAILED'}] {c.rule}: {c.detail}")
    lines.append(f"verdict: {v.verdict.replace('_', ' ').upper()}")
    return "\n".join(lines)
