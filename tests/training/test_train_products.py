"""The product detector's training path, offline, on a tiny synthetic dataset for one epoch."""

import json
import os

import yaml

from training.synth.generate import VideoSpec, write_video
from training.synth.yolo import write_yolo_dataset


def test_train_products_offline_reports_map_per_sku(tmp_path, shelfwatch):
    paths = [write_video(VideoSpec(seed=4, index=i, frames=40, width=160, height=120), tmp_path)[0] for i in range(3)]
    write_yolo_dataset(paths, tmp_path / "yolo", every=10)
    env = dict(os.environ, YOLO_CONFIG_DIR=str(tmp_path / "ultralytics-settings"))
    result = shelfwatch("train", "products", tmp_path / "yolo", "--out", tmp_path / "run", "--scale", "p",
                        "--imgsz", "64", "--epochs", "1", "--batch", "4", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mAP50" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["map50"] <= 1.0 and 0.0 <= metrics["map50_95"] <= metrics["map50"] + 1e-9
    assert set(metrics["per_sku"]) <= {f"sku{i:02d}" for i in range(10)} and metrics["per_sku"]
    assert (tmp_path / "run" / "weights" / "best.pt").exists()
    # The architecture came from ultralytics' yaml at our scale, not from downloaded weights.
    arch = yaml.safe_load((tmp_path / "run" / "shelfwatch-yolov8p.yaml").read_text())
    assert arch["scales"] == {"p": [0.33, 0.125, 1024]}
    # Held-out videos: every image of their dataset is scored.
    held_out = [write_video(VideoSpec(seed=5, index=i, frames=40, width=160, height=120), tmp_path / "test")[0]
                for i in range(2)]  # fmt: skip
    write_yolo_dataset(held_out, tmp_path / "test" / "yolo", every=10)
    tested = shelfwatch("eval", "products", tmp_path / "run", "--data", tmp_path / "test" / "yolo", "--imgsz", 64,
                        env=env)  # fmt: skip
    assert tested.returncode == 0, tested.stderr[-3000:]
    test_metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert 0.0 <= test_metrics["map50"] <= 1.0 and test_metrics["data"] == str(tmp_path / "test" / "yolo")
    scored = yaml.safe_load((tmp_path / "run" / "test_data.yaml").read_text())
    assert scored["val"] == ["images/train", "images/val"]


def test_a_missing_dataset_is_one_line(tmp_path, shelfwatch):
    result = shelfwatch("train", "products", tmp_path / "none", "--out", tmp_path / "run")
    assert result.returncode == 2 and "no such data.yaml" in result.stderr and "Traceback" not in result.stderr
