"""A tiny action model trained for a few steps: files, an interrupted run resumed, evaluation."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import shelfwatch_command
from training.label_files import read_labels
from training.merl import MERL_LABELS, MERL_VIDEOS
from training.synth.generate import VideoSpec, write_video

DEMO_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "demo"

TINY = (
    "--width 4 --hidden 8 --size 64x48 --frame-batch 8 --clip-len 16 --batch 2 --delay 2 --eval-every 3 "
    "--temporal-steps 3"
).split()


def make_data(folder):
    for i in range(4):
        write_video(VideoSpec(seed=3, index=i, frames=120, width=160, height=120), folder)


def test_train_writes_three_scored_models_and_evaluates(tmp_path, shelfwatch):
    make_data(tmp_path / "data")
    result = shelfwatch("train", "action", tmp_path / "data", "--out", tmp_path / "run", "--encoder-steps", 3, *TINY)
    assert result.returncode == 0, result.stderr
    assert "per_frame_cnn" in result.stdout and "cnn_lstm" in result.stdout and "window_clip" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [(h["head"], h["step"]) for h in metrics["history"]] == [("frame", 3), ("best", 3), ("window", 3)]
    assert metrics["model"]["delay"] == 2 and metrics["model"]["head"] == "lstm" and len(metrics["split"]["val"]) == 1
    for head in ("cnn_lstm", "per_frame_cnn", "window_clip"):
        for key in ("frame_accuracy", "macro_f1", "edit", "f1@10", "f1@25", "f1@50", "map@0.5"):
            assert 0.0 <= metrics["val"][head][key] <= 100.0
    for picture in ("curves.png", "confusion.png", "timeline.png"):
        assert (tmp_path / "run" / picture).stat().st_size > 5000
    scored = shelfwatch("eval", "action", tmp_path / "run", tmp_path / "run" / "frame.pt",
                        "--data", tmp_path / "data", "--json", tmp_path / "s.json")  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert "4 videos" in scored.stdout and "F1@50" in scored.stdout and "mAP@mid" in scored.stdout
    assert len(json.loads((tmp_path / "s.json").read_text())) == 2


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, shelfwatch):
    make_data(tmp_path / "data")
    args = ["train", "action", tmp_path / "data", "--out", tmp_path / "run", "--encoder-steps", "60", *TINY]
    proc = subprocess.Popen(shelfwatch_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "run" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()  # as abrupt as a power cut: possibly in the middle of writing a checkpoint
    proc.wait()
    before = torch.load(last, weights_only=False)
    assert before["stage"] == "encoder" and 3 <= before["step"] < 60
    changed = shelfwatch(*args[:-1], "4", "--resume")  # another --temporal-steps: not the same run
    assert changed.returncode == 2 and "other options" in changed.stderr
    resumed = shelfwatch(*args, "--resume", "--device", "cpu")  # where it trains is not one of the run's options
    assert resumed.returncode == 0, resumed.stderr
    assert f"encoder stage, step {before['step']}" in resumed.stdout
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert [h["step"] for h in history if h["head"] == "frame"] == list(range(3, 61, 3))  # none repeated or lost


def test_temporal_heads_on_an_encoder_trained_before(tmp_path, shelfwatch):
    make_data(tmp_path / "data")
    first = shelfwatch("train", "action", tmp_path / "data", "--out", tmp_path / "a", "--encoder-steps", 3, *TINY)
    assert first.returncode == 0, first.stderr
    again = shelfwatch("train", "action", tmp_path / "data", "--out", tmp_path / "b", "--encoder-from",
                       tmp_path / "a" / "frame.pt", *TINY)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "stage 1 skipped" in again.stdout
    assert (tmp_path / "b" / "frame.pt").read_bytes() == (tmp_path / "a" / "frame.pt").read_bytes()
    heads = [h["head"] for h in json.loads((tmp_path / "b" / "metrics.json").read_text())["history"]]
    assert "frame" not in heads and "best" in heads and (tmp_path / "b" / "best.pt").exists()
    other = [*TINY[: TINY.index("--width")], "--width", "8", *TINY[TINY.index("--width") + 2 :]]
    wrong = shelfwatch("train", "action", tmp_path / "data", "--out", tmp_path / "c", "--encoder-from",
                       tmp_path / "a" / "frame.pt", *other)  # fmt: skip
    assert wrong.returncode == 2 and "a per-frame encoder of another kind" in wrong.stderr


def test_bad_training_input_is_one_line(tmp_path, shelfwatch):
    (tmp_path / "empty").mkdir()
    result = shelfwatch("train", "action", tmp_path / "empty", "--out", tmp_path / "run")
    assert result.returncode == 2 and "no labelled videos" in result.stderr and "Traceback" not in result.stderr
    result = shelfwatch("train", "action", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert result.returncode == 2 and "no such data folder" in result.stderr
    result = shelfwatch("eval", "action", tmp_path / "empty", "--data", tmp_path / "empty")
    assert result.returncode == 2 and "no such checkpoint" in result.stderr


def test_a_wrong_folder_or_checkpoint_is_told_before_pytorch_starts(tmp_path):
    """train action, eval action and train adapt check what they are given first: a mistake costs a second, not
    PyTorch's start-up (five seconds on these machines)."""
    (tmp_path / "empty").mkdir()
    empty, nowhere = str(tmp_path / "empty"), str(tmp_path / "nowhere")
    mistakes = [["train", "action", empty, "--out", nowhere], ["eval", "action", empty, "--data", empty],
                ["train", "adapt", "--from", nowhere, "--data", empty, "--out", nowhere],
                ["train", "adapt", "--from", str(DEMO_BUNDLE), "--data", empty, "--out", nowhere]]  # fmt: skip
    code = (f"import sys; from shelfwatch.cli import main; codes = [main(a) for a in {mistakes!r}]; "
            "print(codes, 'torch' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[2, 2, 2, 2] False", result.stdout + result.stderr
    messages = result.stderr.strip().splitlines()
    assert len(messages) == 4 and "no labelled videos" in messages[0] and "no such checkpoint" in messages[1], messages
    assert "no such training run" in messages[2] and "no labelled videos" in messages[3], messages


@pytest.mark.long  # a training run and an evaluation on the MERL layout (about a minute)
def test_train_and_eval_on_the_merl_release_layout_with_its_split(tmp_path, shelfwatch):
    """The stand-in for the release (920x680, 30 fps, its folders and names, real-style labels), used as a
    user with the dataset would: nothing copied or renamed, MERL's split by subject."""
    made = shelfwatch("synth", tmp_path / "MERL", "--merl-layout", "--subjects", "1,2,21,27,28", "--frames", 180,
                      "--seed", 1, "--jobs", 2)  # fmt: skip
    assert made.returncode == 0, made.stderr
    labels = [read_labels(p) for p in sorted((tmp_path / "MERL" / MERL_LABELS).glob("*_label.mat"))]
    assert sum(x.overlaps.boundaries for x in labels) > 0 and sum(x.overlaps.nested for x in labels) > 0
    assert any(not any(s.label == k for s in x.segments) for x in labels for k in range(1, 6))  # an empty cell
    trained = shelfwatch("train", "action", tmp_path / "MERL", "--split", "merl", "--out", tmp_path / "run",
                         "--encoder-steps", 3, *TINY)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "2 training (1-20), 1 validation (21-26); 2 test videos (27-41)" in trained.stdout
    split = json.loads((tmp_path / "run" / "metrics.json").read_text())["split"]
    assert split == {"train": ["1_1", "2_1"], "val": ["21_1"]}
    assert sorted(p.name for p in (tmp_path / "MERL").iterdir()) == [MERL_LABELS, MERL_VIDEOS]  # nothing added
    scored = shelfwatch("eval", "action", tmp_path / "run", tmp_path / "run" / "frame.pt", "--data", tmp_path / "MERL",
                        "--split", "merl", "--json", tmp_path / "s.json")  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert "2 videos in" in scored.stdout and "test subjects 27-41" in scored.stdout
    for title in ("frame acc", "edit", "F1@10", "F1@25", "F1@50", "mAP@0.1", "mAP@0.25", "mAP@0.5", "mAP@mid"):
        assert title in scored.stdout
    assert "precision / recall" in scored.stdout and "inspect_shelf" in scored.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    for m in scores.values():
        assert 0.0 <= m["map@mid"] <= 1.0 and 0.0 <= m["recall/reach_to_shelf"] <= 1.0
    wrong = shelfwatch("train", "action", tmp_path / "MERL" / MERL_VIDEOS, "--split", "merl", "--out", tmp_path / "x")
    assert wrong.returncode == 2 and "no labelled videos" in wrong.stderr
