"""The per-frame encoders side by side in ONNX Runtime, one frame at a time as the box runs them: today's
scratch encoder (the one in models/demo) and the ImageNet-trained MobileNetV2 (`--encoder mobilenet_v2`), each
in FP32 and as the export would ship it in INT8 (static, calibrated on real frames of --videos), timed in one
run, interleaved, medians. The agent's frames per second follow from the encoder's share of a frame.

    python bench/encoder_speed.py --videos data/test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.preprocess import InputSpec, shrink, to_input  # noqa: E402
from export.action_onnx import export_encoder  # noqa: E402
from export.calibration import sample_frames  # noqa: E402
from export.quantize import Frames, quantize_conv_graph  # noqa: E402
from training.action_model import ActionModel  # noqa: E402
from training.options import ModelConfig  # noqa: E402


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=ROOT / "data" / "test", help="frames for calibration and timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    spec = InputSpec()  # 160x120 with the motion channel, as models/demo
    pairs = sample_frames(args.videos, 48, seed=0)
    batches = [to_input(shrink(f, spec)[None], shrink(p, spec)[None], spec) for f, p in pairs]
    feed = {"frames": batches[0]}
    graphs: dict[str, Path] = {"scratch (models/demo)": ROOT / "models" / "demo" / "action_encoder.onnx"}
    with tempfile.TemporaryDirectory() as tmp:
        mnv2 = ActionModel(ModelConfig(encoder="mobilenet_v2", input=spec)).eval()
        graphs["mobilenet_v2 fp32"] = export_encoder(mnv2, Path(tmp) / "mnv2.onnx")
        q = quantize_conv_graph(graphs["mobilenet_v2 fp32"], Path(tmp) / "mnv2_int8.onnx",
                                Frames("frames", batches[:32]), feed, "cpu")  # fmt: skip
        graphs[f"mobilenet_v2 shipped ({q.method})"] = Path(tmp) / "mnv2_int8.onnx"
        sessions = {name: session(path, args.threads) for name, path in graphs.items()}
        megabytes = {name: path.stat().st_size / 1e6 for name, path in graphs.items()}
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.rounds):
            for name, s in sessions.items():
                s.run(None, feed)
                started = time.perf_counter()
                for batch in batches:
                    s.run(None, {"frames": batch})
                times[name].append((time.perf_counter() - started) * 1000 / len(batches))
    base = statistics.median(times["scratch (models/demo)"])
    print(f"ms per frame, {args.threads} thread(s), median of {args.rounds} rounds of {len(batches)} frames:")
    for name, ms in times.items():
        m = statistics.median(ms)
        print(f"  {name:48} {m:7.2f} ms  x{m / base:5.1f} the scratch encoder's time  "
              f"({megabytes[name]:.1f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
