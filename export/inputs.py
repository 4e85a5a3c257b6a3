"""What `export` is given, checked before anything heavy is imported or computed: a mistake costs a second and
one line, not a PyTorch start-up (what a checkpoint holds is checked once it is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.bundle import CHECKPOINT, Manifest, load_bundle, sha256_of
from edge.errors import ShelfWatchError
from export.calibration import video_files
from export.detector_onnx import detector_weights
from export.options import ExportOptions
from training.source import checkpoint_file


@dataclass(frozen=True)
class Inputs:
    checkpoint: Path  # the action model's weights
    detector_from: Manifest | None  # the bundle whose detector is kept, if any
    action_from: Manifest | None  # the bundle whose action graphs are kept, if any


def check_inputs(action_run: Path | None, products_run: Path | None, options: ExportOptions) -> Inputs:
    """What the export starts from; ShelfWatchError for the first problem."""
    kept_action = None
    if options.action_from is not None:
        if action_run is not None:
            raise ShelfWatchError("--action and --action-from both name an action model: give one")
        kept_action = load_bundle(options.action_from)
        action_run = options.action_from / CHECKPOINT
        if not action_run.is_file() or sha256_of(action_run) != kept_action.provenance.checkpoint_sha256:
            raise ShelfWatchError(f"{options.action_from}: --action-from needs the bundle's own {CHECKPOINT} (the "
                                  "checkpoint its manifest's provenance.checkpoint_sha256 names)")  # fmt: skip
        if kept_action.precision != options.precision:
            raise ShelfWatchError(f"{options.action_from}: its action graphs are {kept_action.precision}: give "
                                  f"--precision {kept_action.precision}")  # fmt: skip
        if options.sequence:
            raise ShelfWatchError("--sequence with --action-from: the kept bundle's graphs are shipped as they are")
    if action_run is None:
        raise ShelfWatchError("name the action model: --action RUN_OR_CHECKPOINT, or --action-from BUNDLE")
    checkpoint = checkpoint_file(action_run)
    if products_run is not None and options.detector_from is not None:
        raise ShelfWatchError("--products and --detector-from both name a detector: give one")
    if products_run is not None:
        detector_weights(products_run)
    kept = None
    if options.detector_from is not None:
        kept = load_bundle(options.detector_from)
        if kept.detector is None:
            raise ShelfWatchError(f"{options.detector_from}: --detector-from: this bundle has no detector")
    video_files(options.calibration)
    if options.familiarity:
        for folder in (options.familiarity_fit, options.familiarity_calibrate):
            if folder is not None:
                video_files(folder)
    return Inputs(checkpoint, kept, kept_action)
