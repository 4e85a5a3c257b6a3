"""The familiarity guard, measured through the agent itself: does its score tell footage unlike the training from
held-out synthetic video, and what does it cost?

    python bench/familiarity.py models/demo --synthetic data/test data/hard \\
        --real ../shared/real/clips data/extra_real --other data/notreal --guards data/g768 data/g320 \\
        --splice SYNTH=REAL ... --json data/familiarity.json

Every clip runs through `edge.agent.run_agent` (policy flag, one ONNX Runtime thread), with the guard's update and
the frame loop timed and recorded; nothing is re-implemented here.
- Held-out synthetic (labelled): frames flagged unfamiliar, and the accuracy through the agent (frame accuracy and
  F1@50, as `shelfwatch eval bundle` scores them) of what the box sends with policy flag (every action, as before the
  guard) against policy drop (only the familiar ones).
- Real clips (--real) and others' footage that is not real (--other, animation): AUROC of each clip's frames against
  every held-out synthetic frame, per frame (the raw distance) and per window (the box's smoothed score); the share
  flagged; and the events: no pick, put-back, visit or shelf action may go out with `familiar` true or missing.
- Guards against a score that only tells files apart: synthetic video at other sizes and frame rates (--guards)
  stays familiar; a clip spliced in memory from a synthetic and a real stretch of one size (--splice SYNTH=REAL,
  features as the agent computes them) flips within a second of the cut and stays flipped.
- The cost: the guard's time per judged frame against the agent's time per frame, medians over every frame of the
  held-out synthetic runs (side by side in the same runs).
Nothing here is fitted or tuned: the bundle's statistics and threshold come from its own training-domain video.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import familiarity, telemetry  # noqa: E402
from edge.action import ActionRecognizer  # noqa: E402
from edge.agent import RunOptions, run_agent  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.classes import ACTION_CLASSES  # noqa: E402
from edge.config import BoxConfig, Camera, OutboxConfig  # noqa: E402
from edge.familiarity import FamiliarityStats, windowed  # noqa: E402
from edge.segments import ActionSegment, segments_to_frames  # noqa: E402
from export.calibration import video_files  # noqa: E402
from export.features import VideoFeatures, frames_features, read_frames  # noqa: E402

VIDEO = (".mp4", ".avi", ".mov", ".mkv", ".gif")


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney U statistic)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([negatives, positives]))
    n, p = len(negatives), len(positives)
    return float((ranks[n:].sum() - p * (p + 1) / 2) / (n * p))


def clips(folders: list[Path]) -> list[Path]:
    out: list[Path] = []
    for f in folders:
        out += [f] if f.is_file() else sorted(p for p in f.iterdir() if p.suffix.lower() in VIDEO)
    return out


@dataclass
class Run:
    events: list[dict]
    frames: int
    scores: list[float] = field(default_factory=list)  # the judged frames' distances
    smoothed: list[float] = field(default_factory=list)  # their window means
    guard_s: list[float] = field(default_factory=list)
    frame_s: list[float] = field(default_factory=list)


def through_agent(bundle: Path, clip: Path, work: Path) -> Run:
    """The agent on one clip (policy flag, one thread), recording every judged frame's score and the times."""
    run = Run([], 0)
    update, done = familiarity.Familiarity.update, telemetry.Telemetry.frame_done

    def timed(self, index, ts, features):
        t = time.perf_counter()
        reading = update(self, index, ts, features)
        run.guard_s.append(time.perf_counter() - t)
        if reading is not None:
            run.scores.append(reading.score)
            run.smoothed.append(reading.smoothed)
        return reading

    def frame_done(self, frame, active, started):
        run.frame_s.append(time.perf_counter() - started)
        return done(self, frame, active, started)

    familiarity.Familiarity.update = timed  # type: ignore[method-assign]
    telemetry.Telemetry.frame_done = frame_done  # type: ignore[method-assign]
    try:
        jsonl = work / f"{clip.stem}.jsonl"
        config = BoxConfig(store="bench", box="box", camera=Camera(source=str(clip)), bundle=bundle,
                           outbox=OutboxConfig(path=work / f"{clip.stem}.sqlite"), threads=1)  # fmt: skip
        run.frames = run_agent(config, RunOptions(events_jsonl=jsonl)).frames
        run.events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    finally:
        familiarity.Familiarity.update = update  # type: ignore[method-assign]
        telemetry.Telemetry.frame_done = done  # type: ignore[method-assign]
    return run


def accuracy(runs: list[tuple[Run, Path]], familiar_only: bool) -> dict[str, float]:
    """Frame accuracy and F1@50 (pooled over the videos, as `eval bundle` prints them) of the action events sent."""
    from training.label_files import read_labels
    from training.metrics import segment_report

    truths, preds, detections, offset = [], [], [], 0
    for run, labels in runs:
        sent = [e for e in run.events if e["kind"] == "action" and not (familiar_only and e.get("familiar") is False)]
        segs = [ActionSegment(ACTION_CLASSES.index(e["action"]), e["start"], e["end"], e["confidence"]) for e in sent]
        truths.append(read_labels(labels, frame_count=run.frames).frame_classes)
        preds.append(segments_to_frames(segs, run.frames))
        detections += [ActionSegment(s.label, s.start + offset, s.end + offset, s.confidence) for s in segs]
        offset += run.frames
    report = segment_report(np.concatenate(truths), np.concatenate(preds), detections)
    return {"frame_accuracy": report["frame_accuracy"], "f1@50": report["f1@50"]}


def splice(recognizer: ActionRecognizer, first: Path, second: Path) -> tuple[VideoFeatures, int, float]:
    fps_a, a = read_frames(first)
    _, b = read_frames(second)
    a_frames = list(a)
    spliced = frames_features(recognizer, itertools.chain(a_frames, b), fps_a, f"{first.stem}+{second.stem}")
    return spliced, len(a_frames), fps_a


def sure_facts(events: list[dict]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for e in events:
        if e["kind"] in ("action", "pick", "putback", "visit"):
            key = f"{e['kind']} familiar={e.get('familiar', 'missing')}"
            counted[key] = counted.get(key, 0) + 1
    return counted


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--synthetic", type=Path, nargs="+", required=True, help="held-out labelled synthetic folders")
    p.add_argument("--real", type=Path, nargs="*", default=[], help="real clips or folders of them")
    p.add_argument("--other", type=Path, nargs="*", default=[], help="footage that is neither real nor ours "
                   "(animation): reported apart")  # fmt: skip
    p.add_argument("--guards", type=Path, nargs="*", default=[], help="synthetic video at other sizes and rates")
    p.add_argument("--splice", nargs="*", default=[], metavar="SYNTH=REAL")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    manifest = load_bundle(args.bundle)
    entry = manifest.familiarity
    if entry is None:
        print(f"{args.bundle}: the bundle has no familiarity guard", file=sys.stderr)
        return 2
    thr = entry.threshold
    out: dict = {"bundle": manifest.bundle_id, "threshold": thr, "window_s": entry.window_s}
    print(f"bundle {manifest.bundle_id}: threshold {thr:.3f} on {entry.window_s:g} s windows", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-familiarity-"))

    synthetic: dict[str, list[tuple[Run, Path]]] = {}
    print("\nheld-out synthetic through the agent: flagged; frame accuracy / F1@50, policy flag -> drop", flush=True)
    out["synthetic"] = {}
    for folder in args.synthetic:
        runs = []
        for v in video_files(folder):
            runs.append((through_agent(args.bundle, v, work), v.with_name(v.stem + ".labels.json")))
        synthetic[folder.name] = runs
        w = np.array([x for r, _ in runs for x in r.smoothed])
        flag, drop = accuracy(runs, False), accuracy(runs, True)
        out["synthetic"][folder.name] = {"frames": len(w), "flagged": float((w >= thr).mean()), "flag": flag,
                                         "drop": drop}  # fmt: skip
        print(f"  {folder}: {100 * (w >= thr).mean():.2f} % of {len(w)} judged frames flagged (window p50 "
              f"{np.median(w):.2f}, p99 {np.quantile(w, 0.99):.2f}, max {w.max():.2f}); frame accuracy "
              f"{flag['frame_accuracy']:.4f} -> {drop['frame_accuracy']:.4f}, F1@50 {flag['f1@50']:.2f} -> "
              f"{drop['f1@50']:.2f}", flush=True)  # fmt: skip
    all_runs = [r for runs in synthetic.values() for r, _ in runs]
    neg_f = np.array([x for r in all_runs for x in r.scores])
    neg_w = np.array([x for r in all_runs for x in r.smoothed])
    guard = statistics.median(x for r in all_runs for x in r.guard_s)
    frame = statistics.median(x for r in all_runs for x in r.frame_s)
    out["cost"] = {"guard_ms": guard * 1000, "agent_frame_ms": frame * 1000, "share": guard / frame}
    n = sum(len(r.frame_s) for r in all_runs)
    print(f"\ncost: the guard {guard * 1e6:.0f} µs a judged frame against {frame * 1000:.2f} ms a frame for the whole "
          f"agent (medians over {n} frames, one thread): {100 * guard / frame:.2f} %")  # fmt: skip

    def report(title: str, paths: list[Path]) -> dict:
        rows = {}
        if not paths:
            return rows
        print(f"\n{title}: AUROC against {len(neg_f)} held-out synthetic frames, per frame / per window; flagged; "
              "what the box sent", flush=True)  # fmt: skip
        for clip in paths:
            run = through_agent(args.bundle, clip, work)
            f, w = np.array(run.scores), np.array(run.smoothed)
            facts = sure_facts(run.events)
            sure = sum(n for k, n in facts.items() if not k.endswith("=False"))
            if not len(f):
                print(f"  {clip.name}: no frame was judged (nothing moved)")
                continue
            rows[clip.name] = {"frames": len(f), "auroc_frame": auroc(neg_f, f), "auroc_window": auroc(neg_w, w),
                               "flagged": float((w >= thr).mean()), "window_p5": float(np.quantile(w, 0.05)),
                               "events": facts, "sure_facts": sure}  # fmt: skip
            r = rows[clip.name]
            print(f"  {clip.name:24s} {len(f):5d} frames  {r['auroc_frame']:.4f} / {r['auroc_window']:.4f}  flagged "
                  f"{100 * r['flagged']:5.1f} %  (window p5 {r['window_p5']:.1f})  {facts or 'no event'}  "
                  f"{'OK' if sure == 0 else 'NOT OK'}", flush=True)  # fmt: skip
        if rows:
            print(f"  worst: per frame {min(r['auroc_frame'] for r in rows.values()):.4f}, per window "
                  f"{min(r['auroc_window'] for r in rows.values()):.4f}")  # fmt: skip
        return rows

    out["real"] = report("real clips", clips(args.real))
    out["other"] = report("neither real nor ours (animation)", clips(args.other))

    if args.guards:
        print("\nguards: synthetic at other sizes and frame rates through the agent, frames flagged", flush=True)
        out["guards"] = {}
        for folder in args.guards:
            for v in video_files(folder):
                run = through_agent(args.bundle, v, work)
                w = np.array(run.smoothed)
                out["guards"][v.name] = {"flagged": float((w >= thr).mean()), "size": read_size(v),
                                         "sure_facts_flagged": sum(n for k, n in sure_facts(run.events).items()
                                                                   if k.endswith("=False"))}  # fmt: skip
                g = out["guards"][v.name]
                print(f"  {v.name} ({g['size']}, {read_fps(v):g} fps): {100 * g['flagged']:.2f} % of {len(w)}; "
                      f"events flagged: {g['sure_facts_flagged']}", flush=True)  # fmt: skip
    if args.splice:
        print("\nspliced clips: synthetic then real, cut in memory (flip: the first unfamiliar frame after the cut)")
        stats = FamiliarityStats.load(args.bundle / entry.file, entry)
        recognizer = ActionRecognizer(manifest, args.bundle, threads=1)
        out["splices"] = {}
        for pair in args.splice:
            a, b = (Path(x) for x in pair.split("=", 1))
            vf, cut, fps = splice(recognizer, a, b)
            w = windowed(stats.score(vf.features), vf.after_gap, round(entry.window_s * fps))
            judged = ~np.isnan(w)
            index, bad = vf.index[judged], w[judged] >= thr
            before, after = bad[index < cut], bad[index >= cut]
            after_index = index[index >= cut]
            flip = int(after_index[np.argmax(after)]) if after.any() else None
            latency = (flip - cut) / fps if flip is not None else float("inf")
            held = float(after[after_index >= flip].mean()) if flip is not None else 0.0
            out["splices"][pair] = {"before_flagged": float(before.mean()), "flip_s": latency, "after_held": held}
            print(f"  {a.name} + {b.name}: before the cut {100 * before.mean():.1f} % flagged; flips {latency:.2f} s "
                  f"after the cut; from then on {100 * held:.1f} % flagged", flush=True)  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def read_size(path: Path) -> str:
    import cv2

    cap = cv2.VideoCapture(str(path))
    size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    cap.release()
    return size


def read_fps(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return round(fps, 2)


if __name__ == "__main__":
    sys.exit(main())
