"""Fitting the familiarity guard (`edge.familiarity`) from a bundle's own ONNX encoder: no PyTorch checkpoint needed.

1. Fit: the encoder's features of training-domain video (the frames the box would score), one mean per action
   class (from the videos' labels; unlabelled video: one class) and one covariance of the residuals, shrunk
   towards a multiple of the identity with the Ledoit-Wolf weight (so that 128 dimensions are estimated
   soundly from a few thousand correlated frames), stored as the means and a whitening matrix.
2. Calibrate: on other, held-out training-domain video (never the video the bundle is scored on), the box's
   windowed score; the threshold is its `quantile` (0.99 by default): about 1 % of familiar frames are
   flagged by construction.
`shelfwatch export` does both for a new bundle; `shelfwatch bundle familiarity` adds it to an existing one and
reseals the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.action import ActionRecognizer
from edge.bundle import FamiliarityEntry, FitData, Manifest, load_bundle
from edge.errors import ShelfWatchError
from edge.familiarity import FamiliarityStats, windowed
from export.calibration import video_files
from export.features import VideoFeatures, video_features
from export.reseal import put_file, reseal

FILE = "familiarity.npz"
METHOD = "mahalanobis-tied-ledoit-wolf"
QUANTILE = 0.99
WINDOW_S = 1.0  # about a second: long enough to smooth one odd frame, short enough to flip within a second of a cut


@dataclass(frozen=True)
class Fitted:
    entry: FamiliarityEntry
    means: np.ndarray
    whiten: np.ndarray


def ledoit_wolf(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """The Ledoit-Wolf shrunk covariance of centred rows (Ledoit & Wolf 2004): (1 - a) S + a mu I, with the weight
    a that minimises the expected squared error. Returns (covariance, a)."""
    x = np.asarray(residuals, np.float64)
    n, p = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / p
    target = mu * np.eye(p)
    d2 = float(((s - target) ** 2).sum())
    norms = (x * x).sum(axis=1)
    b2 = float((norms**2).sum() - 2 * np.einsum("ni,ij,nj->", x, s, x) + n * (s * s).sum()) / n**2
    a = 0.0 if d2 == 0 else min(b2, d2) / d2
    return (1 - a) * s + a * target, a


def fit_stats(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(means, whiten, shrinkage) of class-conditional Gaussians with one shared covariance."""
    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    residuals = features - means[np.searchsorted(classes, labels)]
    cov, a = ledoit_wolf(residuals)
    precision = np.linalg.inv(cov)
    whiten = np.linalg.cholesky((precision + precision.T) / 2)  # precision = whiten @ whiten.T
    return means.astype(np.float32), whiten.astype(np.float32), a


def _labels(path: Path, scored: VideoFeatures) -> np.ndarray:
    """The scored frames' action classes from the video's labels, or 0 for all where it has none."""
    from training.label_files import read_labels

    for candidate in (path.with_name(path.stem + ".labels.json"), path.with_name(path.stem + "_label.mat")):
        if candidate.is_file():
            frames = np.asarray(read_labels(candidate, frame_count=scored.frames).frame_classes)
            return frames[np.minimum(scored.index, len(frames) - 1)]
    return np.zeros(len(scored.index), np.int64)


def encode(
    recognizer: ActionRecognizer, videos: list[Path], max_frames: int | None = None
) -> list[tuple[Path, VideoFeatures]]:
    """Each video with its scored frames' features (videos of which no frame passed the motion gate left out)."""
    out = [(v, video_features(recognizer, v, max_frames)) for v in videos]
    return [(p, f) for p, f in out if len(f.index)]


def split_videos(folder: Path, calibrate: Path | None) -> tuple[list[Path], list[Path]]:
    """The fit videos and the calibration videos: `calibrate`'s, or 1 in 5 of `folder`'s, by video."""
    from training.splits import split_by_video

    fit = video_files(folder)
    if calibrate is not None:
        held = video_files(calibrate)
        same = {p.resolve() for p in fit} & {p.resolve() for p in held}
        if same:
            raise ShelfWatchError(f"{calibrate}: calibration videos must not be fit videos ({sorted(same)[0].name})")
        return fit, held
    if len(fit) < 2:
        raise ShelfWatchError(f"{folder}: at least two videos are needed (one to fit, one to calibrate on), or "
                              "name calibration videos")  # fmt: skip
    split = split_by_video([p.name for p in fit], 0.2, seed=0)
    return [p for p in fit if p.name in split.train], [p for p in fit if p.name in split.val]


def fit_familiarity(
    bundle: Path, manifest: Manifest, fit_dir: Path, calibrate_dir: Path | None = None, quantile: float = QUANTILE,
    window_s: float = WINDOW_S, max_frames: int | None = None, threads: int = 0,
) -> Fitted:  # fmt: skip
    """Fit on `fit_dir`'s videos and calibrate on `calibrate_dir`'s (default: a fifth of `fit_dir`'s, by video)
    with `bundle`'s own encoder (`manifest` describes it)."""
    fit_videos, held_videos = split_videos(fit_dir, calibrate_dir)
    recognizer = ActionRecognizer(manifest, bundle, threads=threads)
    fit = encode(recognizer, fit_videos, max_frames)
    if not fit:
        raise ShelfWatchError(f"{fit_dir}: no frame of its videos passed the motion gate: nothing to fit on")
    # The first frame after a gap is not judged on the box (its motion channel is stale): nor is it fitted on.
    features = np.concatenate([v.features[~v.after_gap] for _, v in fit]).astype(np.float64)
    labels = np.concatenate([_labels(p, v)[~v.after_gap] for p, v in fit])
    means, whiten, shrinkage = fit_stats(features, labels)
    held = encode(recognizer, held_videos, max_frames)
    if not held:
        raise ShelfWatchError(f"{calibrate_dir or fit_dir}: no frame of the calibration videos passed the motion "
                              "gate")  # fmt: skip
    stats = FamiliarityStats(means, whiten)
    smoothed = np.concatenate([windowed(stats.score(v.features), v.after_gap, round(window_s * v.fps))
                               for _, v in held])  # fmt: skip
    smoothed = smoothed[~np.isnan(smoothed)]
    threshold = float(np.quantile(smoothed, quantile))
    frames = np.concatenate([stats.score(v.features[~v.after_gap]) for _, v in held])
    fit_source = f"{fit_dir} ({len(fit_videos)} of its videos)" if calibrate_dir is None else str(fit_dir)
    held_source = str(calibrate_dir) if calibrate_dir is not None else f"{fit_dir} (the other {len(held_videos)})"
    entry = FamiliarityEntry(
        file=FILE, method=METHOD, features=int(features.shape[1]), shrinkage=round(shrinkage, 6), window_s=window_s,
        threshold=round(threshold, 4), quantile=quantile,
        fitted_on=FitData(source=fit_source, videos=len(fit), frames=len(features)),
        calibrated_on=FitData(source=held_source, videos=len(held), frames=len(smoothed)),
        measured={"calibration_flagged": round(float((smoothed >= threshold).mean()), 4),
                  "calibration_frame_p50": round(float(np.median(frames)), 3),
                  "calibration_window_p50": round(float(np.median(smoothed)), 3),
                  "calibration_window_max": round(float(smoothed.max()), 3)},
    )  # fmt: skip
    return Fitted(entry, means, whiten)


def write_stats(fitted: Fitted, folder: Path) -> Path:
    path = folder / fitted.entry.file
    with path.open("wb") as f:
        np.savez(f, means=fitted.means, whiten=fitted.whiten)
    return path


def without_refits(commands: list[str]) -> list[str]:
    """The chain of commands less the guard fits made after its last export: a guard fitted again replaces those (they
    no longer made anything here), while a fit before that export belongs to the bundle it took graphs from."""
    exports = [i for i, c in enumerate(commands) if c.startswith("shelfwatch export")]
    last = exports[-1] if exports else -1
    return [c for i, c in enumerate(commands) if i <= last or not c.startswith("shelfwatch bundle familiarity")]


def add_to_bundle(
    bundle: Path, fit_dir: Path, calibrate_dir: Path | None = None, quantile: float = QUANTILE,
    window_s: float = WINDOW_S, max_frames: int | None = None, command: str | None = None,
) -> tuple[Manifest, bool]:  # fmt: skip
    """Fit, calibrate, write the statistics into `bundle` and reseal its manifest (`export.reseal`: a signature of
    the old manifest no longer holds and is removed; sign the bundle again). Returns (the new manifest, whether a
    signature was removed)."""
    manifest = load_bundle(bundle)
    fitted = fit_familiarity(bundle, manifest, fit_dir, calibrate_dir, quantile, window_s, max_frames)

    def change(staging: Path, data: dict) -> None:
        write_stats(fitted, staging)
        put_file(staging, data, FILE, manifest.familiarity.file if manifest.familiarity else None)
        data["familiarity"] = fitted.entry.model_dump(mode="json")
        if command:
            provenance = data.setdefault("provenance", {})
            provenance["commands"] = [*without_refits(provenance.get("commands", [])), command]

    done = reseal(bundle, change)
    return done.manifest, done.dropped_signature
