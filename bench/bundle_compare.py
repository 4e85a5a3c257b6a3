"""Model bundles side by side, scored by what the box emits: the agent (`edge run --bundle`) on held-out
labelled videos (frame accuracy, F1@50, net items right, fps) and on real footage with no shelf in view
(`../shared/real/clips`: shelf actions a minute, picks and put-backs, negative baskets — all should be none).
This is how the shipped encoder is chosen (README, "Pretrained or scratch"):

    python bench/bundle_compare.py models/demo runs/bundle_mnv2 --held-out data/test data/hard
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.bundle_eval import labelled_videos, run_box, score_bundle  # noqa: E402

CLIPS = ROOT.parent / "shared" / "real" / "clips"


def real_footage(bundle: Path, clips: list[Path]) -> dict[str, float]:
    """Over all clips: shelf actions a minute, picks and put-backs, negative basket entries, median fps."""
    actions = picks = negative = 0
    minutes, speeds = 0.0, []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            events, fps, frames = run_box(bundle, clip, Path(tmp))
            cap = cv2.VideoCapture(str(clip))
            minutes += frames / (cap.get(cv2.CAP_PROP_FPS) or 30.0) / 60
            cap.release()
            actions += sum(e["kind"] == "action" for e in events)
            picks += sum(e["kind"] in ("pick", "putback") for e in events)
            negative += sum(n < 0 for e in events if e["kind"] == "basket" for n in e["items"].values())
            speeds.append(fps)
    return {"actions_per_min": actions / max(minutes, 1e-9), "actions": actions, "minutes": minutes,
            "picks_putbacks": picks, "negative": negative, "fps": statistics.median(speeds)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--held-out", type=Path, nargs="+", default=[ROOT / "data" / "test", ROOT / "data" / "hard"])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    args = parser.parse_args()
    clips = sorted(p for p in args.clips.iterdir() if p.suffix in (".mp4", ".avi"))
    walkers = [p for p in clips if p.name == "vtest.avi"]
    head = f"{'bundle':28}" + "".join(
        f" {f'{d.name} acc':>10} {f'{d.name} F1@50':>11} {f'{d.name} items':>11}" for d in args.held_out
    ) + f" {'fps':>5} {'walkers act/min':>16} {'all clips act/min':>18} {'picks':>6} {'neg':>4}"
    rows = []
    for bundle in args.bundles:
        cells, speeds = [], []
        for folder in args.held_out:
            score = score_bundle(bundle, labelled_videos(folder))
            items = score.net_items_right
            cells.append(f" {score.pooled['frame_accuracy']:10.3f} {score.pooled['f1@50']:11.1f} "
                         f"{(f'{items:.3f}' if items is not None else '-'):>11}")  # fmt: skip
            speeds += [v.fps for v in score.videos]
        walk, real = real_footage(bundle, walkers), real_footage(bundle, clips)
        rows.append(f"{str(bundle)[-28:]:28}" + "".join(cells) + f" {statistics.median(speeds):5.0f}"
                    f" {walk['actions_per_min']:16.2f} {real['actions_per_min']:18.2f}"
                    f" {real['picks_putbacks']:6d} {real['negative']:4d}")  # fmt: skip
        print(rows[-1] if len(rows) > 1 else head + "\n" + rows[-1], flush=True)


if __name__ == "__main__":
    main()
