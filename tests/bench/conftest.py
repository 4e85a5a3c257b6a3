"""What the bench smoke runs on, made here and kept tiny: two short labelled store videos, a tiny training run of
each model and a bundle exported from them. Each bench is run as a user runs it, `python bench/NAME.py ...`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shelfwatch_command

ROOT = Path(__file__).resolve().parents[2]
DEMO_BUNDLE = ROOT / "models" / "demo"
# The smallest action run that trains both stages and its baselines (as tests/export/conftest.py's).
TINY_ACTION = (
    "--width 4 --hidden 8 --size 64x48 --frame-batch 8 --clip-len 16 --batch 2 --delay 2 --eval-every 3 "
    "--temporal-steps 3 --encoder-steps 3"
).split()


@pytest.fixture(scope="session")
def bench_env(tmp_path_factory) -> dict[str, str]:
    """This checkout's code first (also in the benches' own child processes); ultralytics offline, its settings in a
    folder of the session's (not the user's home)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    settings = tmp_path_factory.mktemp("ultralytics-settings")
    return dict(os.environ, PYTHONPATH=path, YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(settings), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session")
def bench(bench_env):
    """Run `python bench/SCRIPT ARGS...` from the project root; its stdout, once it has exited 0."""

    def run(script: str, *args: object, timeout: float = 300) -> str:
        command = [sys.executable, str(ROOT / "bench" / script), *(str(a) for a in args)]
        done = subprocess.run(command, cwd=ROOT, env=bench_env, capture_output=True, text=True, timeout=timeout)
        print(f"$ python bench/{script} {' '.join(str(a) for a in args)}\n{done.stdout}")  # pytest -rP shows it
        assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        return done.stdout

    return run


@pytest.fixture(scope="session")
def store_videos(tmp_path_factory) -> Path:
    """Two 8-second labelled videos at 320x240 (held-out seed 1000): in each a shopper takes one product; in the
    first a second shopper walks in at the bottom."""
    from training.synth.generate import VideoSpec, write_video

    folder = tmp_path_factory.mktemp("store-videos")
    for index in (2, 6):
        write_video(VideoSpec(seed=1000, index=index, frames=240, width=320, height=240), folder)
    return folder


def shelfwatch(*args: object, env: dict) -> None:
    done = subprocess.run(shelfwatch_command(*args), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, bench, bench_env, store_videos) -> dict:
    """Training videos and held-out videos (each with a YOLO set), a tiny action run, a tiny detector run and the
    INT8 bundle exported from them: what benches that start from `runs/` need. The action run is the one
    bench/action_accuracy.py trains and scores on the store videos (its output is kept for its test): one
    training fewer."""
    from training.synth.generate import VideoSpec, write_video
    from training.synth.yolo import write_yolo_dataset

    root = tmp_path_factory.mktemp("tiny")
    train = [write_video(VideoSpec(seed=3, index=i, frames=120, width=160, height=120), root / "train")[0]
             for i in range(2)]  # fmt: skip
    write_yolo_dataset(train, root / "train" / "yolo", every=10)
    held = [write_video(VideoSpec(seed=7, index=i, frames=90, width=160, height=120), root / "test")[0]
            for i in range(2)]  # fmt: skip
    write_yolo_dataset(held, root / "test" / "yolo", every=15)
    accuracy = bench("action_accuracy.py", "--train-dir", root / "train", "--test-dir", store_videos, "--run",
                     root / "action", *TINY_ACTION)  # fmt: skip
    shelfwatch("train", "products", root / "train" / "yolo", "--out", root / "products", "--scale", "p", "--imgsz", 64,
               "--epochs", 1, "--batch", 4, env=bench_env)  # fmt: skip
    shelfwatch("export", root / "bundle", "--action", root / "action", "--products", root / "products",
               "--calibration", root / "train", "--calibration-frames", 16, env=bench_env)  # fmt: skip
    return {"train": root / "train", "test": root / "test", "action": root / "action", "products": root / "products",
            "bundle": root / "bundle", "action_accuracy output": accuracy}  # fmt: skip
