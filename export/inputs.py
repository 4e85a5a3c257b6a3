"""What `export` is given, checked before anything heavy is imported or computed: a mistake costs a second and
one line, not a PyTorch start-up (what a checkpoint holds is checked once it is loaded)."""

from __future__ import annotations

from pathlib import Path

from edge.bundle import Manifest, load_bundle
from edge.errors import ShelfWatchError
from export.calibration import video_files
from export.detector_onnx import detector_weights
from export.options import ExportOptions


def check_inputs(action_run: Path, products_run: Path | None, options: ExportOptions) -> tuple[Path, Manifest | None]:
    """(the action checkpoint, the bundle whose detector is kept, if any); ShelfWatchError for the first problem."""
    checkpoint = action_run / "best.pt" if action_run.is_dir() else action_run
    if not checkpoint.is_file():
        raise ShelfWatchError(f"{checkpoint}: no such checkpoint")
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
    return checkpoint, kept
