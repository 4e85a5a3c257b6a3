"""Item counting against the truth: the agent on held-out synthetic videos, its picks, put-backs and final
baskets compared with each video's ledger.

    python bench/item_counts.py --bundle models/demo --videos data/test

Per video: picks and put-backs per SKU (matched as multisets: right SKU, right kind), and whether the
shoppers' final baskets equal the ledger's (shopper ids are the agent's own, so baskets are compared as a
multiset of item lists).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.bundle_eval import item_counts, run_box  # noqa: E402
from training.labels import read_label_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--videos", type=Path, default=ROOT / "data" / "test")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    videos = sorted(args.videos.glob("*.mp4"))[: args.limit]
    truth_total, found_total, right_total, exact = Counter(), Counter(), 0, 0
    units, unit_errors = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for video in videos:
            labels = read_label_file(video.with_name(video.name.replace(".mp4", ".labels.json")))
            events, _, _ = run_box(args.bundle, video, Path(tmp), threads=0)
            truth = Counter((("pick" if e.kind == "take" else "putback"), e.sku) for e in labels.ledger)
            found: Counter = Counter()
            for e in events:
                if e["kind"] in ("pick", "putback"):
                    found[(e["kind"], e["sku"])] += e["quantity"]
            right = sum((truth & found).values())
            net, errors, match = item_counts(events, labels)
            units += net
            unit_errors += errors
            exact += match
            truth_total.update(truth)
            found_total.update(found)
            right_total += right
            print(f"{video.stem}: ledger {sum(truth.values())} events, found {sum(found.values())}, right {right}; "
                  f"net unit errors {errors}; baskets {'match' if match else 'DIFFER'}")  # fmt: skip
    t, f = sum(truth_total.values()), sum(found_total.values())
    print(f"\n{len(videos)} videos: {t} ledger events, {f} found, {right_total} right -> recall "
          f"{right_total / max(1, t):.3f}, precision {right_total / max(1, f):.3f}; final baskets exact on "
          f"{exact}/{len(videos)} videos")  # fmt: skip
    print(f"net items taken per SKU (takes minus returns, what checkout compares): {units} in the ledgers, "
          f"{unit_errors} unit(s) wrong -> {1 - unit_errors / max(1, units):.3f} right")  # fmt: skip


if __name__ == "__main__":
    main()
