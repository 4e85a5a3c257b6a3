"""The product detector to ONNX through ultralytics' own exporter (no NMS in the graph: the edge decodes)."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge.errors import ShelfWatchError


def detector_weights(run_dir: Path) -> Path:
    weights = run_dir / "weights" / "best.pt"
    if not weights.is_file():
        raise ShelfWatchError(f"{run_dir}: has no weights/best.pt (train it with `shelfwatch train products`)")
    return weights


def export_detector(run_dir: Path, path: Path, imgsz: int) -> tuple[Path, list[str]]:
    """ONNX of a run's best weights at a fixed square input -> (path, class names in output order)."""
    from ultralytics import YOLO

    model = YOLO(str(detector_weights(run_dir)))
    names = [model.names[i] for i in range(len(model.names))]
    exported = model.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, nms=False, device="cpu")
    shutil.move(str(exported), path)
    return path, names
