"""`shelfwatch train products`: an ultralytics YOLO detector built from its yaml, trained offline.

No weights come from a hub: the network is built from ultralytics' own YOLOv8 yaml at a chosen scale
(`n`, or `p` — "pico", a quarter of nano's width — for CPUs), optionally initialised from a local
weights file. RUN_DIR receives ultralytics' own run files (weights/best.pt, results.csv) and our
metrics.json with mAP50 and mAP50-95 per SKU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from edge.errors import ShelfWatchError
from training.provenance import command_line

# [depth, width, max_channels] as in ultralytics' yolov8.yaml; "p" is ours.
SCALES = {"p": [0.33, 0.125, 1024], "n": [0.33, 0.25, 1024], "s": [0.33, 0.50, 1024]}


def model_yaml(scale: str, out: Path) -> Path:
    """YOLOv8's architecture at one scale, written where ultralytics will read it."""
    import ultralytics

    if scale not in SCALES:
        raise ShelfWatchError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    base = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8.yaml"
    cfg = yaml.safe_load(base.read_text())
    cfg["scales"] = {scale: SCALES[scale]}  # the only scale, so ultralytics picks it without guessing
    path = out / f"shelfwatch-yolov8{scale}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def local_data_yaml(data: Path, out: Path, every_image: bool = False) -> Path:
    """A copy of data.yaml whose `path` is where the dataset is now (it may have moved since synth).

    `every_image` scores on the train and val images together: for a test set, its split is irrelevant.
    """
    if data.is_dir():
        data = data / "data.yaml"
    if not data.is_file():
        raise ShelfWatchError(f"{data}: no such data.yaml (make one with `shelfwatch synth ... --yolo`)")
    try:
        cfg = yaml.safe_load(data.read_text())
    except yaml.YAMLError as exc:
        raise ShelfWatchError(f"{data}: not YAML ({exc.__class__.__name__})") from None
    if not isinstance(cfg, dict) or not {"train", "val", "names"} <= cfg.keys():
        raise ShelfWatchError(f"{data}: an ultralytics data.yaml needs train, val and names")
    cfg["path"] = str(data.parent.resolve())
    if every_image:
        cfg["val"] = [cfg["train"], cfg["val"]]
    path = out / ("test_data.yaml" if every_image else "data.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def train_products(
    data: Path,
    run_dir: Path,
    scale: str = "n",
    imgsz: int = 320,
    epochs: int = 30,
    batch: int = 16,
    weights: Path | None = None,
    seed: int = 0,
) -> dict:
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    data_yaml = local_data_yaml(data, run_dir)
    arch = model_yaml(scale, run_dir)
    from ultralytics import YOLO

    model = YOLO(str(arch))
    if weights is not None:
        if not weights.is_file():
            raise ShelfWatchError(f"{weights}: no such weights file")
        model.load(str(weights))  # transfers whatever layers fit
    started = time.perf_counter()
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device="cpu",
        workers=0,
        seed=seed,
        deterministic=True,
        plots=False,
        amp=False,
        project=str(run_dir.parent),
        name=run_dir.name,
        exist_ok=True,
        verbose=True,
        fliplr=0.5,
        mosaic=1.0,
        close_mosaic=max(0, min(10, epochs // 3)),
    )
    seconds = time.perf_counter() - started
    best = run_dir / "weights" / "best.pt"
    extra = {"train_seconds": seconds, "scale": scale, "command": command_line()}
    return evaluate_products(best, data_yaml, run_dir, imgsz, extra=extra)


def evaluate_products(
    weights: Path, data_yaml: Path, run_dir: Path, imgsz: int, extra: dict | None = None, name: str = "metrics.json"
) -> dict:
    from ultralytics import YOLO

    model = YOLO(str(weights))
    result = model.val(
        data=str(data_yaml),
        imgsz=imgsz,
        batch=16,
        device="cpu",
        plots=False,
        verbose=False,
        project=str(run_dir),
        name="val",
        exist_ok=True,
    )
    names = result.names
    per_sku = {
        names[int(c)]: {"map50": float(result.box.ap50[i]), "map50_95": float(result.box.ap[i])}
        for i, c in enumerate(result.box.ap_class_index)
    }
    metrics = {
        "map50": float(result.box.map50),
        "map50_95": float(result.box.map),
        "per_sku": per_sku,
        "weights": str(weights),
        "imgsz": imgsz,
        **(extra or {}),
    }
    (run_dir / name).write_text(json.dumps(metrics, indent=2))
    return metrics


def score_held_out(run_dir: Path, data: Path, imgsz: int) -> dict:
    """Score a run's best weights on every image of another dataset (held-out videos) -> test_metrics.json."""
    weights = run_dir / "weights" / "best.pt"
    if not weights.is_file():
        raise ShelfWatchError(f"{run_dir}: has no weights/best.pt (train it with `shelfwatch train products`)")
    data_yaml = local_data_yaml(data, run_dir, every_image=True)
    return evaluate_products(weights, data_yaml, run_dir, imgsz, extra={"data": str(data)}, name="test_metrics.json")
