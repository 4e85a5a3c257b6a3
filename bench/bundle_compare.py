"""Model bundles side by side, scored by what the box emits: the agent (`edge run --bundle`) on held-out
labelled videos (frame accuracy, F1@50, net items right, fps) and on real footage with no shelf in view
(`../shared/real/clips`: shelf actions a minute, picks and put-backs, negative baskets — all should be none).
This is how the shipped encoder is chosen (README, "Pretrained or scratch"). The measuring is
`training.bundle_compare`'s, the same as `shelfwatch eval compare`'s (which adds the verdict for two bundles):

    python bench/bundle_compare.py models/demo runs/bundle_mnv2 --held-out data/test data/hard
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.bundle_compare import actions_per_minute, measure, negative_clips  # noqa: E402

CLIPS = ROOT.parent / "shared" / "real" / "clips"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--held-out", type=Path, nargs="+", default=[ROOT / "data" / "test", ROOT / "data" / "hard"])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    args = parser.parse_args()
    # The measuring is `shelfwatch eval compare`'s (training/bundle_compare.py): every bundle on each clip in turn.
    measured = measure(args.bundles, args.held_out, negative_clips(args.clips),
                       on_clip=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    print(
        f"{'bundle':28}"
        + "".join(f" {f'{d.name} acc':>10} {f'{d.name} F1@50':>11} {f'{d.name} items':>11}" for d in args.held_out)
        + f" {'fps':>5} {'walkers act/min':>16} {'all clips act/min':>18} {'picks':>6} {'neg':>4}"
    )
    for m in measured:
        cells = []
        for score in m.folders.values():
            items = score.net_items_right
            cells.append(f" {score.pooled['frame_accuracy']:10.3f} {score.pooled['f1@50']:11.1f} "
                         f"{(f'{items:.3f}' if items is not None else '-'):>11}")  # fmt: skip
        speeds = [v.fps for score in m.folders.values() for v in score.videos]
        walkers = [c for c in m.negatives if c.name == "vtest.avi"]
        picks = sum(c.picks_putbacks for c in m.negatives)
        negative = sum(c.negative for c in m.negatives)
        print(f"{str(m.bundle)[-28:]:28}" + "".join(cells) + f" {statistics.median(speeds):5.0f}"
              f" {actions_per_minute(walkers):16.2f} {actions_per_minute(m.negatives):18.2f}"
              f" {picks:6d} {negative:4d}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
