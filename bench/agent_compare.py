"""The agent of this tree against the agent of another checkout (a refactor's "before"), side by side in one
run: the events each emits on the same videos must be the same, and the frames per second are compared as a
median ratio over interleaved runs.

    git worktree add /tmp/before <commit>
    python bench/agent_compare.py --before /tmp/before --videos data/test --repeat 3

Events are compared on everything but their ids, sequence numbers and times (`event_id`, `seq`, `ts`,
`start_ts`/`end_ts`: a file's clock starts at its modification time, and before issue 14 at the time the run
started). Status heartbeats are left out. Against a checkout from before issue 14, action events differ by their
new `zone`/`sku` fields and `visit` events are new.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOLATILE = {"event_id", "seq", "ts", "start_ts", "end_ts"}

CHILD = """
import json, sys
from pathlib import Path
from edge.agent import RunOptions, run_agent
from edge.config import BoxConfig, Camera, OutboxConfig
video, bundle, out, threads = sys.argv[1:5]
config = BoxConfig(store="bench", box="box1", camera=Camera(source=video), bundle=Path(bundle),
                   outbox=OutboxConfig(path=Path(out) / "outbox.sqlite"), threads=int(threads))
s = run_agent(config, RunOptions(events_jsonl=Path(out) / "events.jsonl"))
print(json.dumps({"fps": s.fps, "detections": s.detections_run}))
"""


def run(tree: Path, video: Path, bundle: Path, threads: int = 1) -> tuple[dict, list[dict]]:
    """The agent of the checkout `tree` on `video`: its run's fps and detections, and its events without the fields
    that change from run to run and without status heartbeats. `threads`: ONNX Runtime's (0: its default)."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", CHILD, str(video.resolve()), str(bundle.resolve()), out,
                               str(threads)],
                              cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"the agent in {tree} failed on {video}:\n{done.stderr}")
        events = [json.loads(line) for line in (Path(out) / "events.jsonl").read_text().splitlines()]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    return stats, [{k: v for k, v in e.items() if k not in VOLATILE} for e in events if e["kind"] != "status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--videos", type=Path, nargs="+", required=True, help="folders of .mp4 files")
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--before-bundle", type=Path, default=None,
                        help="the other checkout's bundle if its manifest rules differ (default --bundle)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs per video, for the speed ratio")
    args = parser.parse_args()
    videos = sorted(v for folder in args.videos for v in folder.glob("*.mp4"))
    ratios, same, kinds = [], 0, {}
    for video in videos:
        fps = {"before": [], "after": []}
        for _ in range(args.repeat):
            (b, events_b) = run(args.before, video, args.before_bundle or args.bundle)
            (a, events_a) = run(ROOT, video, args.bundle)
            fps["before"].append(b["fps"])
            fps["after"].append(a["fps"])
        ratio = statistics.median(fps["after"]) / statistics.median(fps["before"])
        ratios.append(ratio)
        identical = events_a == events_b
        same += identical
        for e in events_a:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        print(f"{video.name}: {len(events_a)} events, {'identical' if identical else 'DIFFERENT'}; fps before "
              f"{statistics.median(fps['before']):.0f}, after {statistics.median(fps['after']):.0f} "
              f"(x{ratio:.3f})", flush=True)  # fmt: skip
        if not identical:
            for i, (x, y) in enumerate(zip(events_b, events_a, strict=False)):
                if x != y:
                    print(f"  first difference at event {i}:\n  before {x}\n  after  {y}")
                    break
    print(f"\n{same}/{len(videos)} videos emit identical events ({kinds}); speed after/before: median "
          f"x{statistics.median(ratios):.3f} (min x{min(ratios):.3f}, max x{max(ratios):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
