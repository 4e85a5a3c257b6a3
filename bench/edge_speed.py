"""The whole agent against decoding alone and against a naive pipeline, measured side by side in one run;
event latency to a subscriber on loopback; the agent's peak memory, and that it never imports torch.

    python bench/edge_speed.py --bundle models/demo --video data/test/synth_standard_s1000_0000.mp4 \
        --action runs/action --products runs/products

Naive pipeline: ultralytics' PyTorch predict on every frame plus a 16-frame clip re-run of the PyTorch
CNN-LSTM on every frame (what one writes first). It is slow, so it runs on the first --naive-frames frames.

Event latency is the delivery path's: from the moment the box's outbox committed an event (taken in the agent's
process as `Outbox.add` returns) to its arrival at a subscriber of the broker, matched by `event_id`. An event's
`ts` says when it happened on the source's clock (a video file's clock starts at its modification time), so it
cannot measure delivery.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Run inside a child process: the agent alone, so that its peak memory and imports are its own. With "commits",
# it also writes when the outbox committed each event (event_id -> time.time() as Outbox.add returns).
AGENT_CHILD = """
import json, sys, time
from pathlib import Path
from edge.agent import RunOptions, run_agent
from edge.config import BoxConfig, Camera, MqttConfig, OutboxConfig
from edge.outbox import Outbox
args = json.loads(sys.argv[1])
committed = {}
if args["commits"]:
    add = Outbox.add
    def timed_add(self, topic, make_payload):
        stored = add(self, topic, make_payload)
        committed[stored.event_id] = time.time()
        return stored
    Outbox.add = timed_add
mqtt = MqttConfig(host="127.0.0.1", port=args["port"]) if args["port"] else None
config = BoxConfig(store="bench", box="box1", camera=Camera(source=args["video"]), bundle=Path(args["bundle"]),
                   outbox=OutboxConfig(path=Path(args["outbox"])), mqtt=mqtt, threads=args["threads"])
s = run_agent(config, RunOptions(max_frames=args["frames"]))
if args["commits"]:
    Path(args["commits"]).write_text(json.dumps(committed))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (torch-laden) parent process.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"fps": s.fps, "frames": s.frames, "skip": s.motion_skip, "detections": s.detections_run,
                  "events": s.events, "torch": "torch" in sys.modules, "peak_mb": int(hwm) / 1024}))
"""


def run_agent_child(video: Path, bundle: Path, frames: int | None, threads: int, port: int | None, work: Path,
                    commits: Path | None = None) -> dict:  # fmt: skip
    args = {"video": str(video), "bundle": str(bundle), "frames": frames, "threads": threads, "port": port,
            "outbox": str(work / f"outbox-{time.time_ns()}.sqlite"),
            "commits": str(commits) if commits else None}  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", AGENT_CHILD, json.dumps(args)], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def decode_fps(video: Path, frames: int | None) -> float:
    import cv2

    cap = cv2.VideoCapture(str(video))
    n, start = 0, time.perf_counter()
    while frames is None or n < frames:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    return n / (time.perf_counter() - start)


def naive_fps(video: Path, action_run: Path, products_run: Path, frames: int, threads: int) -> float:
    import cv2
    import numpy as np
    import torch

    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics import YOLO

    from edge.preprocess import shrink, to_input
    from training.train_action import load_model

    torch.set_num_threads(threads)
    model, _ = load_model(action_run / "best.pt")
    yolo = YOLO(str(products_run / "weights" / "best.pt"))
    spec = model.config.input
    cap = cv2.VideoCapture(str(video))
    clip: list[np.ndarray] = []
    n, start = 0, time.perf_counter()
    with torch.no_grad():
        while n < frames:
            ok, frame = cap.read()
            if not ok:
                break
            yolo.predict(frame, imgsz=320, verbose=False, device="cpu")
            clip = [*clip[-15:], shrink(frame, spec)]
            model(torch.from_numpy(to_input(np.stack(clip), None, spec))[None])
            n += 1
    return n / (time.perf_counter() - start)


def latency(video: Path, bundle: Path, frames: int | None, threads: int, work: Path) -> tuple[list[float], int]:
    """Seconds from each event's commit to the box's outbox to its arrival at a subscriber on loopback, for the
    events that arrived; and how many events the outbox committed."""
    import paho.mqtt.client as mqtt

    from tests.conftest import Broker

    broker = Broker(work / "broker")
    broker.start()
    arrivals: dict[str, float] = {}  # event_id -> when it first arrived

    def on_message(client, userdata, msg) -> None:
        now = time.time()
        event = json.loads(msg.payload)
        if event["kind"] != "status":  # heartbeats are published directly, not through the outbox
            arrivals.setdefault(event["event_id"], now)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_message = on_message
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("shelfwatch/v1/#", qos=1)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    time.sleep(0.5)
    commits = work / "commits.json"
    try:
        run_agent_child(video, bundle, frames, threads, broker.port, work, commits)
        time.sleep(1)
    finally:
        sub.loop_stop()
        broker.stop()
    committed: dict[str, float] = json.loads(commits.read_text())
    return [arrivals[e] - t for e, t in committed.items() if e in arrivals], len(committed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--video", type=Path, default=ROOT / "data" / "test" / "synth_standard_s1000_0000.mp4")
    parser.add_argument("--action", type=Path, default=ROOT / "runs" / "action")
    parser.add_argument("--products", type=Path, default=ROOT / "runs" / "products")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-frames", type=int, default=150)
    parser.add_argument("--frames", type=int, default=None, help="frames of the video to run (default all)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        agent_runs, decode_runs, naive_runs = [], [], []
        for _ in range(args.repeats):  # interleaved, so that machine noise hits each alike
            decode_runs.append(decode_fps(args.video, args.frames))
            agent_runs.append(run_agent_child(args.video, args.bundle, args.frames, args.threads, None, work))
            naive_runs.append(naive_fps(args.video, args.action, args.products, args.naive_frames, args.threads))
        agent = statistics.median(r["fps"] for r in agent_runs)
        decode = statistics.median(decode_runs)
        naive = statistics.median(naive_runs)
        last = agent_runs[-1]
        print(f"video {args.video.name}: {last['frames']} frames; {args.threads} threads; median of {args.repeats}\n")
        print(f"  decode only                     {decode:8.1f} fps")
        print(f"  agent (bundle, everything)      {agent:8.1f} fps   {agent / 30:5.1f}x real time (30 fps)   "
              f"{agent / decode:5.2f}x decode-only")  # fmt: skip
        print(f"  naive (PyTorch, every frame)    {naive:8.1f} fps   agent is {agent / naive:5.1f}x faster")
        print(f"\n  models skipped (motion gate) on {100 * last['skip']:.0f}% of frames; detector ran on "
              f"{last['detections']} of {last['frames']} frames; events {last['events']}")  # fmt: skip
        print(f"  agent peak memory {max(r['peak_mb'] for r in agent_runs):.0f} MB (VmHWM); "
              f"torch imported: {any(r['torch'] for r in agent_runs)}")  # fmt: skip
        delays, committed = latency(args.video, args.bundle, args.frames, args.threads, work)
        delays.sort()
        line = f"  event latency, committed to the outbox -> subscriber (loopback, {len(delays)} of {committed} events)"
        if delays:
            p50 = delays[len(delays) // 2] * 1000
            p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))] * 1000
            line += f": p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        print(line)
        if len(delays) < committed:
            sys.exit(f"{committed - len(delays)} of {committed} committed events never reached the subscriber")


if __name__ == "__main__":
    main()
