"""A tiny action model trained for a few steps: files, resume and evaluation work end to end."""

import json
import subprocess
import sys

from training.synth.generate import VideoSpec, write_video


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "shelfwatch", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_train_resume_and_evaluate(tmp_path):
    data = tmp_path / "data"
    for i in range(4):
        write_video(VideoSpec(seed=3, index=i, frames=120, width=160, height=120), data)
    common = [
        "--width",
        "4",
        "--hidden",
        "8",
        "--size",
        "64x48",
        "--clips-per-epoch",
        "4",
        "--clip-len",
        "16",
        "--batch",
        "2",
        "--delay",
        "2",
    ]
    first = run("train", "action", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", *common)
    assert first.returncode == 0, first.stderr
    assert "best epoch 1" in first.stdout
    resumed = run("train", "action", str(data), "--out", str(tmp_path / "run"), "--epochs", "2", "--resume", *common)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "epoch 2/2" in resumed.stdout and "epoch 1/2" not in resumed.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["model"]["delay"] == 2 and len(metrics["split"]["val"]) == 1
    for key in ("frame_accuracy", "macro_f1", "edit", "f1@10", "f1@25", "f1@50", "map@0.5"):
        assert key in metrics["val"]
    for picture in ("curves.png", "confusion.png", "timeline.png"):
        assert (tmp_path / "run" / picture).stat().st_size > 5000
    scored = run("eval", "action", str(tmp_path / "run"), "--data", str(data), "--json", str(tmp_path / "s.json"))
    assert scored.returncode == 0, scored.stderr
    assert "4 videos" in scored.stdout and "f1@50" in scored.stdout
    assert 0.0 <= json.loads((tmp_path / "s.json").read_text())[str(tmp_path / "run")]["frame_accuracy"] <= 1.0


def test_bad_training_input_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("train", "action", str(tmp_path / "empty"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "no labelled videos" in result.stderr and "Traceback" not in result.stderr
    result = run("train", "action", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "no such data folder" in result.stderr
