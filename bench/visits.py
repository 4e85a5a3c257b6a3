"""Shoppers' visits against the truth: the agent watches generated videos of both presets, and each video's visit
events (the units each visit says were picked and put back, per SKU) are compared with the video's ledger.

    python bench/visits.py                     # 10 standard + 10 hard videos, 900 frames each (~15 min on 2 cores)
    python bench/visits.py --videos 2 --frames 240 --size 320x240   # the smoke's size
    python bench/visits.py --seed 2000         # the tuning videos: look at these while changing the box
    python bench/visits.py --bundle NEW --against models/demo   # two boxes on the same videos, pair by pair
    git worktree add /tmp/before HEAD~1 && python bench/visits.py --before /tmp/before   # a change's before and after

The videos are fixed up front, never chosen by their results (training/visit_eval.py: the held-out seed 1000,
indices 0, 1, 2, ... of each preset). A (video, SKU) pair is exact when the visits' units picked and units put
back of that SKU both equal the ledger's takes and returns. The box's own pick and put-back events are scored the
same way beside them: a visit is made of them, and says what they say. Visits split over several events (a visit
over the 1 KB limit) are summed; products left out of every event (`products_left_out`) are counted, and are none.
Pairs with a take or return whose hand visit the clip's end cuts (the shopper's arm still in the shelf at the last
frame) are also counted apart: the ledger dates a take when the product leaves its place and a return halfway through
the hand's stay in the shelf, under the hand, so until the arm comes out no frame tells a take from a return yet.
With `--against`, a second bundle watches the same videos and the two are compared pair by pair: the pairs only one
of them gets exact, and a two-sided sign test on those (a few flips either way are what one video's luck moves). With
`--before`, the agent of another checkout (a change's before) is the second box, with the same bundle (or
`--against`'s), so that a change of the box's code is measured side by side the same way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agent_compare import run as run_other  # noqa: E402
from training.bundle_eval import run_box  # noqa: E402
from training.labels import read_label_file  # noqa: E402
from training.synth.generate import write_video  # noqa: E402
from training.visit_eval import (  # noqa: E402
    PRESETS,
    SEED,
    TUNING_SEED,
    VisitScore,
    cut_by_the_end,
    paired,
    score,
    video_specs,
    wilson,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--videos", type=int, default=10, help="videos per preset (default 10: 20 in all)")
    parser.add_argument("--first", type=int, default=0, help="the first video index (default 0)")
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"default {SEED}: the reported videos; {TUNING_SEED}: videos to tune on")  # fmt: skip
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--against", type=Path, default=None, metavar="BUNDLE",
                        help="another bundle run on the same videos, compared pair by pair")  # fmt: skip
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                        help="another checkout's agent run on the same videos (with --against's bundle, else "
                             "--bundle), compared pair by pair")  # fmt: skip
    args = parser.parse_args()
    if args.before is not None and not (args.before / "edge" / "agent.py").is_file():
        parser.error(f"{args.before}: no ShelfWatch checkout there (no edge/agent.py)")
    other = args.against or (args.bundle if args.before is not None else None)
    side = "before" if args.before is not None else "against"
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: give WIDTHxHEIGHT, e.g. 640x480")
    if args.videos < 1 or args.first < 0 or args.frames < 30 or width < 64 or height < 48:
        parser.error("--videos at least 1, --first at least 0, --frames at least 30, --size at least 64x48")
    for bundle in (args.bundle, args.against):
        if bundle is not None and not (bundle / "manifest.json").is_file():
            parser.error(f"{bundle}: no model bundle there (no manifest.json)")
    scores: list[VisitScore] = []
    theirs: list[VisitScore] = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in video_specs(args.videos, args.frames, width, height, args.first, args.seed):
            work = Path(tmp) / spec.name
            labels_path, _ = write_video(spec, work)
            video = labels_path.with_name(f"{spec.name}.mp4")
            labels = read_label_file(labels_path)
            for bundle, into, name in ((args.bundle, scores, ""), (other, theirs, side)):
                if bundle is None:
                    continue
                if name == "before":
                    _, events = run_other(args.before, video, bundle, threads=0)
                else:
                    (work / name).mkdir(exist_ok=True)  # each bundle its own event log and outbox
                    events, _, _ = run_box(bundle, video, work / name, threads=0)
                s = score(spec.name, events, labels.ledger, cut=cut_by_the_end(labels))
                into.append(s)
                said, tag = (f"  {name}: ", f"{name} ") if name else ("", "")
                print(f"{said}{s.name}: {s.visits} visit event(s), {s.pairs} SKU(s): visits exact {s.visits_exact}, "
                      f"pick events exact {s.events_exact}, visits agree with them: {'yes' if s.agree else 'NO'}, "
                      f"products left out {s.left_out}"
                      + "".join(f"\n    {tag}wrong: {w}" for w in s.wrong), flush=True)  # fmt: skip
    pairs = sum(s.pairs for s in scores)
    exact = sum(s.visits_exact for s in scores)
    events_exact = sum(s.events_exact for s in scores)
    last = args.first + args.videos - 1
    tuning = "" if args.seed == SEED else ", tuning videos, not the reported ones"
    print(f"\n{len(scores)} videos (indices {args.first}..{last} of each preset: {', '.join(PRESETS)}; "
          f"seed {args.seed}{tuning}), {pairs} (video, SKU) pairs")  # fmt: skip
    print(f"visits exact: {exact}/{pairs} = {exact / max(1, pairs):.3f}")
    low, high = wilson(exact, pairs)
    print(
        f"  95 % interval (Wilson): {low:.3f}-{high:.3f}; a SKU's pairs in one video are not independent: wider still"
    )
    cut, cut_exact = sum(s.cut for s in scores), sum(s.cut_exact for s in scores)
    print(
        f"  of them, with a take or return the clip's end cuts (the arm still in the shelf): {cut_exact}/{cut} exact; "
        f"the pairs the clip shows whole: {exact - cut_exact}/{pairs - cut} = "
        f"{(exact - cut_exact) / max(1, pairs - cut):.3f}"
    )
    print(f"pick and put-back events exact: {events_exact}/{pairs} = {events_exact / max(1, pairs):.3f}")
    print(
        f"videos whose visits agree with their pick and put-back events: {sum(s.agree for s in scores)}/{len(scores)}"
    )
    print(f"products left out of visit events: {sum(s.left_out for s in scores)}")
    if other is not None:
        both = paired(scores, theirs)
        what, box = (f"the agent of {args.before}", "box") if args.before is not None else (args.against, "bundle")
        print(f"against {what} on the same {both.pairs} (video, SKU) pairs: this {box} {both.exact[0]}, that "
              f"one {both.exact[1]}; exact only with this {box} {both.only[0]}, only with that one {both.only[1]} "
              f"(two-sided sign test: p = {both.p_value:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
