"""The learning curve of `shelfwatch train adapt` on the second store: a trained model adapted with 1, 3 and 10
verified store-b clips (store-b videos with their generated labels, standing in for a store's staff), with full labels
and with timestamp labels only, each exported and scored through the agent (as `eval compare` scores: frame accuracy,
F1@50, net items right) on held-out store-b videos from seeds never used for adaptation and on the original store's
held-out set (what adaptation costs the first store), with `eval compare`'s verdict against the shipped bundle and the
wall time of each adaptation (`train adapt` alone, on this machine).

    python bench/adapt.py --source runs/action --shipped models/demo --replay data/train --original data/test

Everything it renders and trains goes under --work (the rendered videos are kept and reused: synth is
deterministic). Arguments after `--` go to `train adapt` as they are (e.g. `-- --train last-blocks --steps 600`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.bundle_compare import DEFAULT_RULES, decide, folder_score, measure  # noqa: E402
from training.label_files import write_as_timestamps  # noqa: E402
from training.labels import read_label_file  # noqa: E402
from training.synth.generate import VideoSpec, write_video  # noqa: E402


def shelfwatch(*args: object) -> float:
    """Run a `shelfwatch` command (its output to stderr); its wall time in seconds."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "shelfwatch", *(str(a) for a in args)], stdout=sys.stderr)
    if done.returncode != 0:
        sys.exit(f"shelfwatch {' '.join(str(a) for a in args[:3])} ... exited {done.returncode}")
    return time.perf_counter() - began


def render(folder: Path, seed: int, count: int, frames: int, size: tuple[int, int]) -> list[str]:
    """store-b videos (seed, 0..count-1), rendered once: the same arguments always give the same files."""
    names = []
    for i in range(count):
        spec = VideoSpec(seed=seed, index=i, frames=frames, width=size[0], height=size[1], preset="store-b")
        if not (folder / f"{spec.name}.labels.json").is_file():
            write_video(spec, folder)
        names.append(spec.name)
    return names


def verified_folder(folder: Path, pool: Path, names: list[str], labels: str) -> Path:
    """The first clips of the pool as a store's verified folder: links to the videos, the labels full or reduced to
    timestamps (one frame in the middle of every run of one class)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in names:
        (folder / f"{name}.mp4").symlink_to((pool / f"{name}.mp4").resolve())
        if labels == "full":
            (folder / f"{name}.labels.json").symlink_to((pool / f"{name}.labels.json").resolve())
        else:
            write_as_timestamps(pool / f"{name}.labels.json", folder / f"{name}.labels.json")
    return folder


def silent_accuracy(folder: Path) -> float:
    """The frame accuracy of a box that reports no action at all (every frame no action): a bundle that goes quiet on a
    store it does not know scores this, without recognising anything."""
    classes = np.concatenate([read_label_file(p).frame_classes for p in sorted(folder.glob("*.labels.json"))])
    return float(np.mean(classes[classes >= 0] == 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="what `train adapt --from` starts from")
    parser.add_argument("--shipped", type=Path, default=ROOT / "models" / "demo",
                        help="the bundle boxes run: every verdict's baseline, and the detector kept")  # fmt: skip
    parser.add_argument("--replay", type=Path, default=None, help="original-domain training videos to replay")
    parser.add_argument("--original", type=Path, default=ROOT / "data" / "test",
                        help="the original store's held-out labelled videos")  # fmt: skip
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "adapt_bench")
    parser.add_argument("--clips", type=int, nargs="+", default=[1, 3, 10], help="verified clips per adaptation")
    parser.add_argument("--labels", nargs="+", choices=["full", "timestamps"], default=["full", "timestamps"])
    parser.add_argument("--frames", type=int, default=1800, help="frames per verified clip (default 1800: a minute)")
    parser.add_argument("--held-out", type=int, default=5, help="held-out store-b videos (default 5)")
    parser.add_argument("--held-out-frames", type=int, default=900)
    parser.add_argument("--size", default="640x480", help="rendered video size")
    parser.add_argument("--train-seed", type=int, default=2000, help="seed of the verified clips")
    parser.add_argument("--test-seed", type=int, default=3000, help="seed of the held-out store-b videos")
    parser.add_argument("--precision", default="int8", choices=["int8", "fp32"])
    parser.add_argument("--calibration-frames", type=int, default=256)
    args, adapt_args = parser.parse_known_args()
    adapt_args = [a for a in adapt_args if a != "--"]
    size = tuple(int(v) for v in args.size.split("x"))
    if args.train_seed == args.test_seed:
        sys.exit("--train-seed and --test-seed must differ: held-out videos never adapt")

    pool, held = args.work / "store_b_verified", args.work / "store_b_held_out"
    names = render(pool, args.train_seed, max(args.clips), args.frames, size)
    render(held, args.test_seed, args.held_out, args.held_out_frames, size)
    rows = []  # (labels, clips, adaptation seconds, bundle)
    for labels in args.labels:
        for n in args.clips:
            tag = f"{labels}_{n}"
            data = verified_folder(args.work / f"verified_{tag}", pool, names[:n], labels)
            run, bundle = args.work / f"run_{tag}", args.work / f"bundle_{tag}"
            replay = ["--replay", args.replay] if args.replay else []
            seconds = shelfwatch("train", "adapt", "--from", args.source, "--data", data, *replay, "--out", run,
                                 *adapt_args)  # fmt: skip
            shelfwatch("export", bundle, "--action", run, "--detector-from", args.shipped, "--calibration",
                       run / "videos", "--calibration-frames", args.calibration_frames, "--precision",
                       args.precision)  # fmt: skip
            rows.append((labels, n, seconds, bundle))
            print(f"adapted with {n} {labels}-labelled clip(s) in {seconds / 60:.2f} min", flush=True)

    folders = [held, args.original]
    measured = measure([args.shipped, *(r[3] for r in rows)], folders,
                       on_clip=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    shipped = measured[0]
    counts = [len(shipped.folders[f].videos) for f in folders]
    print(f"held out: store-b {counts[0]} videos of {args.held_out_frames} frames (seed {args.test_seed}); original "
          f"{counts[1]} videos ({args.original})")  # fmt: skip
    print(f"a box reporting no action at all scores {silent_accuracy(held):.3f} on store B, "
          f"{silent_accuracy(args.original):.3f} on the original set (frame accuracy; F1@50 0)")  # fmt: skip
    print(f"{'bundle':<22}{'clips':>6}{'adapt min':>10}{'B acc':>8}{'B F1@50':>9}{'B items':>9}"
          f"{'orig acc':>10}{'orig F1@50':>11}{'orig items':>11}  verdict")  # fmt: skip
    for k, m in enumerate(measured):
        cells = []
        for folder in folders:
            s = folder_score(m.folders[folder])
            items = "-" if s.net_items_right is None else f"{s.net_items_right:.3f}"
            cells.append((s.frame_accuracy, s.f1_50, items))
        (b_acc, b_f1, b_items), (o_acc, o_f1, o_items) = cells
        if k == 0:
            name, clips, minutes, verdict = "shipped", "-", "-", "-"
        else:
            labels, n, seconds, _ = rows[k - 1]
            name, clips, minutes = f"adapted, {labels}", str(n), f"{seconds / 60:.2f}"
            verdict = decide(shipped, m, DEFAULT_RULES).verdict  # eval compare's rules: 5 held-out clips at least
        print(f"{name:<22}{clips:>6}{minutes:>10}{b_acc:>8.3f}{b_f1:>9.1f}{b_items:>9}{o_acc:>10.3f}{o_f1:>11.1f}"
              f"{o_items:>11}  {verdict}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
