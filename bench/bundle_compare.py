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


def real_footage(bundle: Path, clips: list[Path]) -> dict[str, dict[str, float]]:
    """Per clip: shelf actions, picks and put-backs, negative basket entries, minutes and fps (each clip run once)."""
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            events, fps, frames = run_box(bundle, clip, Path(tmp))
            cap = cv2.VideoCapture(str(clip))
            minutes = frames / (cap.get(cv2.CAP_PROP_FPS) or 30.0) / 60
            cap.release()
            found[clip.name] = {
                "actions": sum(e["kind"] == "action" for e in events),
                "picks_putbacks": sum(e["kind"] in ("pick", "putback") for e in events),
                "negative": sum(n < 0 for e in events if e["kind"] == "basket" for n in e["items"].values()),
                "minutes": minutes,
                "fps": fps,
            }
    return found


def per_minute(clips: list[dict[str, float]]) -> float:
    return sum(c["actions"] for c in clips) / max(sum(c["minutes"] for c in clips), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--held-out", type=Path, nargs="+", default=[ROOT / "data" / "test", ROOT / "data" / "hard"])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    args = parser.parse_args()
    clips = sorted(p for p in args.clips.iterdir() if p.suffix in (".mp4", ".avi"))
    head = (
        f"{'bundle':28}"
        + "".join(f" {f'{d.name} acc':>10} {f'{d.name} F1@50':>11} {f'{d.name} items':>11}" for d in args.held_out)
        + f" {'fps':>5} {'walkers act/min':>16} {'all clips act/min':>18} {'picks':>6} {'neg':>4}"
    )
    rows = []
    for bundle in args.bundles:
        cells, speeds = [], []
        for folder in args.held_out:
            score = score_bundle(bundle, labelled_videos(folder))
            items = score.net_items_right
            cells.append(f" {score.pooled['frame_accuracy']:10.3f} {score.pooled['f1@50']:11.1f} "
                         f"{(f'{items:.3f}' if items is not None else '-'):>11}")  # fmt: skip
            speeds += [v.fps for v in score.videos]
        real = real_footage(bundle, clips)
        walkers = [c for name, c in real.items() if name == "vtest.avi"]
        picks = sum(c["picks_putbacks"] for c in real.values())
        negative = sum(c["negative"] for c in real.values())
        rows.append(f"{str(bundle)[-28:]:28}" + "".join(cells) + f" {statistics.median(speeds):5.0f}"
                    f" {per_minute(walkers):16.2f} {per_minute(list(real.values())):18.2f}"
                    f" {picks:6d} {negative:4d}")  # fmt: skip
        print(rows[-1] if len(rows) > 1 else head + "\n" + rows[-1], flush=True)


if __name__ == "__main__":
    main()
