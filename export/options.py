"""How an export is made (the command line's choices), apart from the export itself so that the inputs can be
checked before PyTorch and ONNX are imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.bundle import Precision


@dataclass(frozen=True)
class ExportOptions:
    precision: Precision = "int8"
    target: str = "cpu"  # the execution provider INT8's format is chosen for: cpu or tensorrt
    calibration: Path = Path("data/train")  # videos to draw calibration frames (and check frames) from
    calibration_frames: int = 256
    held_out: Path | None = None  # labelled videos (and yolo/data.yaml) to score FP32 and the result on
    held_out_frames: int | None = None  # first N frames of each held-out video (None: all)
    imgsz: int | None = None  # detector input; default: what it was trained at
    sequence: bool = False
    seed: int = 0
    detector_from: Path | None = None  # keep this bundle's detector as it is (a new action model, same detector)
    action_from: Path | None = None  # keep this bundle's action graphs as they are (a new detector, same action model)
    # The familiarity guard: fitted on these training-domain videos (default: `calibration`'s) and its threshold
    # calibrated on these held-out ones (default: a fifth of the fit videos, by video); never the held-out set.
    familiarity: bool = True
    familiarity_fit: Path | None = None
    familiarity_calibrate: Path | None = None
