"""Edge inference cost and INT8's accuracy price, measured side by side in one run on this machine.

    python bench/export_speed.py --bundle models/demo --action runs/action --products runs/products \
        --held-out data/test

Per-frame time (median over interleaved rounds) of PyTorch FP32, ONNX FP32 and the bundle's ONNX graphs
(INT8 where the export measured it faster) for the encoder, the LSTM step and the detector; the streaming
per-frame cost (one encoder pass + one LSTM step) against re-running a 16-frame clip every frame; and,
on the held-out videos, frame accuracy and detector mAP50 of FP32 against the bundle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from edge.action import ActionRecognizer
from edge.bundle import load_bundle
from edge.detector import letterbox, to_tensor
from edge.preprocess import shrink, to_input
from edge.providers import open_session
from export import checks
from export.action_onnx import export_encoder, export_sequence, export_step
from export.calibration import sample_frames
from export.detector_onnx import detector_weights, export_detector
from training.train_action import load_model

CLIP = 16


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, runs: int) -> dict[str, float]:
    """Median ms per call of each case, the cases taking turns so that machine noise hits them alike."""
    for fn in cases.values():
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(runs):
                fn()
            samples[name].append((time.perf_counter() - start) * 1000 / runs)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("models/demo"))
    parser.add_argument("--action", type=Path, default=Path("runs/action"))
    parser.add_argument("--products", type=Path, default=Path("runs/products"))
    parser.add_argument("--held-out", type=Path, default=Path("data/test"))
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch and ONNX Runtime (default 2)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    os.environ["YOLO_OFFLINE"] = "1"
    torch.set_num_threads(args.threads)

    manifest = load_bundle(args.bundle)
    model, _ = load_model(args.action / "best.pt")
    spec = model.config.input
    frames = [f for f, _ in sample_frames(args.held_out, 32, seed=1)]
    x1 = to_input(shrink(frames[0], spec)[None], shrink(frames[1], spec), spec)
    clip = to_input(np.stack([shrink(f, spec) for f in frames[:CLIP]]), None, spec)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export_encoder(model, work / "action_encoder.onnx")
        export_step(model, work / "action_step.onnx")
        export_sequence(model, work / "sequence.onnx")
        fp32 = ActionRecognizer(manifest, work, threads=args.threads)
        shipped = ActionRecognizer(manifest, args.bundle, threads=args.threads)
        sequence = open_session(work / "sequence.onnx", threads=args.threads)
        imgsz = manifest.detector.imgsz if manifest.detector else 320
        det_fp32_path, _ = export_detector(args.products, work / "detector.fp32.onnx", imgsz)
        det_fp32 = open_session(det_fp32_path, threads=args.threads)
        det_shipped = open_session(args.bundle / manifest.detector.model, threads=args.threads)
        from ultralytics import YOLO

        det_torch = YOLO(str(detector_weights(args.products))).model.eval()
        image = to_tensor(letterbox(frames[0], imgsz)[0])
        hidden = manifest.action.hidden
        h = np.zeros((1, 1, hidden), np.float32)
        feats = fp32.encoder.run(None, {"frames": x1})[0]
        step_feed = {"features": feats, "h": h, "c": h}
        tx, tf, th = torch.from_numpy(x1), torch.from_numpy(feats), torch.from_numpy(h)
        timg = torch.from_numpy(image)

        with torch.no_grad():
            encoder = interleaved({
                "pytorch fp32": lambda: model.encoder(tx),
                "onnx fp32": lambda: fp32.encoder.run(None, {"frames": x1}),
                f"onnx {manifest.precision}": lambda: shipped.encoder.run(None, {"frames": x1}),
            }, args.rounds, 50)  # fmt: skip
            step = interleaved({
                "pytorch fp32": lambda: model.step(tf, th, th),
                "onnx fp32": lambda: fp32.step_graph.run(None, step_feed),
                f"onnx {manifest.precision}": lambda: shipped.step_graph.run(None, step_feed),
            }, args.rounds, 500)  # fmt: skip
            detector = interleaved({
                "pytorch fp32": lambda: det_torch(timg),
                "onnx fp32": lambda: det_fp32.run(None, {"images": image}),
                f"onnx {manifest.precision}": lambda: det_shipped.run(None, {"images": image}),
            }, args.rounds, 10)  # fmt: skip

            def streaming() -> None:
                f = shipped.encoder.run(None, {"frames": x1})[0]
                shipped.step_graph.run(None, {"features": f, "h": h, "c": h})

            per_frame = interleaved({
                "streaming (bundle: encoder + step)": streaming,
                "16-frame clip re-run (onnx fp32 sequence graph)": lambda: sequence.run(None, {"frames": clip[None]}),
                f"16-frame clip re-run (bundle encoder x{CLIP} + {CLIP} steps)": lambda: [
                    shipped.step_graph.run(None, {"features": f[None], "h": h, "c": h})
                    for f in shipped.encoder.run(None, {"frames": clip})[0]
                ],
            }, args.rounds, 10)  # fmt: skip

        print(f"bundle {manifest.bundle_id} ({manifest.precision}); {args.threads} threads; median ms per call\n")
        for title, result in (("encoder (1 frame)", encoder), ("LSTM step", step), (f"detector ({imgsz}px)", detector)):
            base = result["onnx fp32"]
            print(title)
            for name, ms in result.items():
                print(f"  {name:<14} {ms:8.3f} ms   {base / ms:5.2f}x ONNX FP32")
        print("\nper-frame action cost")
        base = per_frame["streaming (bundle: encoder + step)"]
        for name, ms in per_frame.items():
            print(f"  {name:<52} {ms:8.3f} ms   {ms / base:6.1f}x streaming")

        if not args.skip_accuracy:
            from training.action_data import find_videos, load_video
            from training.train_products import local_data_yaml

            videos = [load_video(n, v, lab, spec) for n, (v, lab) in sorted(find_videos(args.held_out).items())]
            acc32, acc_q = checks.action_accuracy(fp32, videos), checks.action_accuracy(shipped, videos)
            frames_n = sum(len(v.labels) for v in videos)
            print(f"\nheld-out ({len(videos)} videos, {frames_n} frames) frame accuracy: FP32 {acc32:.4f}  "
                  f"{manifest.precision} {acc_q:.4f}  drop {100 * (acc32 - acc_q):+.2f} points")  # fmt: skip
            data_yaml = local_data_yaml(args.held_out / "yolo", work, every_image=True)
            m32 = checks.detector_map(det_fp32_path, data_yaml, imgsz, work)
            mq = checks.detector_map(args.bundle / manifest.detector.model, data_yaml, imgsz, work)
            print(f"held-out detector mAP50: FP32 {m32['map50']:.4f}  {manifest.precision} {mq['map50']:.4f}  "
                  f"drop {100 * (m32['map50'] - mq['map50']):+.2f} points; mAP50-95 {m32['map50_95']:.4f} -> "
                  f"{mq['map50_95']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
