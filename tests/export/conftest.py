"""Tiny trained runs (a few steps each), made once per test session and exported by the tests."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import shelfwatch_command
from training.synth.generate import VideoSpec, write_video
from training.synth.yolo import write_yolo_dataset

TINY_ACTION = (
    "--width 4 --hidden 8 --size 64x48 --frame-batch 8 --clip-len 16 --batch 2 --delay 2 --eval-every 3 "
    "--temporal-steps 3 --encoder-steps 3"
).split()


def run(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(shelfwatch_command(*args), capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def yolo_env(tmp_path_factory) -> dict:
    return dict(os.environ, YOLO_CONFIG_DIR=str(tmp_path_factory.mktemp("ultralytics-settings")))


@pytest.fixture(scope="session")
def runs(tmp_path_factory, yolo_env) -> dict[str, Path]:
    """Training videos, held-out videos (with a YOLO set), a tiny action run and a tiny detector run."""
    root = tmp_path_factory.mktemp("runs")
    train = [write_video(VideoSpec(seed=3, index=i, frames=120, width=160, height=120), root / "train")[0]
             for i in range(3)]  # fmt: skip
    write_yolo_dataset(train, root / "train" / "yolo", every=10)
    held = [write_video(VideoSpec(seed=7, index=i, frames=90, width=160, height=120), root / "test")[0]
            for i in range(2)]  # fmt: skip
    write_yolo_dataset(held, root / "test" / "yolo", every=15)
    run("train", "action", root / "train", "--out", root / "action", *TINY_ACTION)
    run("train", "products", root / "train" / "yolo", "--out", root / "products", "--scale", "p", "--imgsz", 64,
        "--epochs", 1, "--batch", 4, env=yolo_env)  # fmt: skip
    return {"train": root / "train", "test": root / "test", "action": root / "action", "products": root / "products"}


@pytest.fixture(scope="session")
def int8_bundle(runs, yolo_env, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "int8"
    run("export", out, "--action", runs["action"], "--products", runs["products"], "--calibration", runs["train"],
        "--calibration-frames", 32, "--held-out", runs["test"], env=yolo_env)  # fmt: skip
    return out
