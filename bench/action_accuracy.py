"""The action model's accuracy bar, end to end: synthetic training and held-out test videos (seeds never
used in training), the two-stage training, and the CNN-LSTM against its baselines on the test videos.

    python bench/action_accuracy.py                      # everything, reusing what already exists
    python bench/action_accuracy.py --run runs/action    # score an existing run

Steps already done (videos written, a finished run) are reused, so the script can be re-run cheaply.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BAR = {"frame_accuracy": 0.90, "f1@50": 85.0}


def shelfwatch(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "shelfwatch", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-dir", type=Path, default=Path("data/train"))
    parser.add_argument("--test-dir", type=Path, default=Path("data/test"))
    parser.add_argument("--run", type=Path, default=Path("runs/action"))
    parser.add_argument("--train-videos", type=int, default=30)
    parser.add_argument("--test-videos", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args, train_args = parser.parse_known_args()
    if not any(args.train_dir.glob("*.labels.json")):
        shelfwatch(
            "synth",
            str(args.train_dir),
            "--videos",
            str(args.train_videos),
            "--seed",
            "1",
            "--jobs",
            str(args.jobs),
            "--yolo",
        )
    if not any(args.test_dir.glob("*.labels.json")):
        shelfwatch(
            "synth", str(args.test_dir), "--videos", str(args.test_videos), "--seed", "1000", "--jobs", str(args.jobs)
        )
    if not (args.run / "metrics.json").exists():
        shelfwatch("train", "action", str(args.train_dir), "--out", str(args.run), "--delay", "4", *train_args)
    scores = args.run / "test_scores.json"
    shelfwatch(
        "eval",
        "action",
        str(args.run),
        str(args.run / "frame.pt"),
        str(args.run / "window.pt"),
        "--data",
        str(args.test_dir),
        "--json",
        str(scores),
    )
    rows = json.loads(scores.read_text())
    lstm, frame = rows[str(args.run)], rows[str(args.run / "frame.pt")]
    minutes = json.loads((args.run / "metrics.json").read_text())["train_seconds"] / 60
    print(f"\ntraining time {minutes:.1f} min (both stages, this machine)")
    for key, bar in BAR.items():
        print(f"CNN-LSTM {key} {lstm[key]:.3f} (bar {bar}): {'met' if lstm[key] >= bar else 'NOT met'}")
    verdict = "beats" if lstm["f1@50"] > frame["f1@50"] else "does NOT beat"
    print(f"CNN-LSTM F1@50 {lstm['f1@50']:.1f} vs per-frame CNN {frame['f1@50']:.1f}: {verdict}")


if __name__ == "__main__":
    main()
