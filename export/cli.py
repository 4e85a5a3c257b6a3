"""`shelfwatch export`: trained runs -> a model bundle for the edge."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export trained models to a quantized ONNX model bundle for the edge",
        description="Export the CNN-LSTM action model (a per-frame encoder graph and an LSTM step graph) and the "
        "YOLO product detector to ONNX, check them against PyTorch, quantize, score FP32 and the result on "
        "held-out videos, and write BUNDLE_DIR with manifest.json (sha256 of every file).",
    )
    p.add_argument("bundle_dir", type=Path, help="folder to write the bundle into (replaced if it exists)")
    p.add_argument("--action", type=Path, required=True, help="an action run folder (its best.pt) or a checkpoint")
    p.add_argument("--products", type=Path, default=None, help="a detector run folder (its weights/best.pt)")
    p.add_argument("--detector-from", type=Path, default=None, metavar="BUNDLE",
                   help="keep BUNDLE's detector as it is (file, catalogue, scores): new action model only")  # fmt: skip
    p.add_argument("--precision", choices=["int8", "fp16", "fp32"], default="int8", help="default int8")
    p.add_argument(
        "--target",
        choices=["cpu", "tensorrt"],
        default="cpu",
        help="the execution provider INT8's format is chosen for (cpu: measured here; tensorrt: QDQ)",
    )
    p.add_argument("--calibration", type=Path, default=Path("data/train"),
                   help="folder of videos to draw calibration frames from (default data/train)")  # fmt: skip
    p.add_argument("--calibration-frames", type=int, default=256, help="default 256")
    p.add_argument(
        "--held-out",
        type=Path,
        default=None,
        help="labelled videos (with yolo/data.yaml for the detector) to score FP32 and the bundle on",
    )
    p.add_argument("--held-out-frames", type=int, default=None, help="score only the first N frames of each")
    p.add_argument("--imgsz", type=int, default=None, help="detector input size (default: as trained)")
    p.add_argument("--sequence", action="store_true", help="also write a whole-sequence graph for offline use")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing calibration frames (default 0)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from export.bundle import ExportOptions, build_bundle

    options = ExportOptions(
        precision=args.precision, target=args.target, calibration=args.calibration,
        calibration_frames=args.calibration_frames, held_out=args.held_out, held_out_frames=args.held_out_frames,
        imgsz=args.imgsz, sequence=args.sequence, seed=args.seed, detector_from=args.detector_from,
    )  # fmt: skip
    manifest = build_bundle(args.bundle_dir, args.action, args.products, options)
    size = sum(f.bytes for f in manifest.files.values())
    print(f"bundle {manifest.bundle_id} ({manifest.precision}, {size / 1e6:.1f} MB) -> {args.bundle_dir}")
    for name, q in manifest.action.quantization.items():
        print(f"  action {name}: {q.method}  {q.why}")
    if manifest.detector:
        print(f"  detector: {manifest.detector.quantization.method}  {manifest.detector.quantization.why}")
    for name, values in manifest.metrics.items():
        print(f"  {name}: " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
    return 0
