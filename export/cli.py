"""`shelfwatch export`: trained runs -> a model bundle for the edge; `shelfwatch bundle keygen|sign|verify`: its
signature; `shelfwatch bundle reference`: its reference clip; `shelfwatch bundle recover`: its action model as a
checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.bundle import FamiliarityEntry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export trained models to a quantized ONNX model bundle for the edge",
        description="Export the CNN-LSTM action model (a per-frame encoder graph and an LSTM step graph) and the "
        "YOLO product detector to ONNX, check them against PyTorch, quantize, score FP32 and the result on "
        "held-out videos, and write BUNDLE_DIR with manifest.json (sha256 of every file).",
    )
    p.add_argument("bundle_dir", type=Path, help="folder to write the bundle into (replaced if it exists)")
    p.add_argument("--action", type=Path, default=None, help="an action run folder (its best.pt) or a checkpoint")
    p.add_argument("--action-from", type=Path, default=None, metavar="BUNDLE",
                   help="keep BUNDLE's action graphs as they are (files, quantization; its checkpoint.pt is the "
                   "action model): new detector only")  # fmt: skip
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
    p.add_argument(
        "--familiarity-fit",
        type=Path,
        default=None,
        metavar="DIR",
        help="training-domain videos to fit the familiarity guard on (default: --calibration's)",
    )
    p.add_argument("--familiarity-calibrate", type=Path, default=None, metavar="DIR",
                   help="held-out training-domain videos to calibrate its threshold on (default: a fifth of the fit "
                   "videos, by video; never the --held-out videos the bundle is scored on)")  # fmt: skip
    p.add_argument("--no-familiarity", action="store_true", help="make a bundle without a familiarity guard")
    p.set_defaults(func=run_export)
    register_bundle(sub)


def register_bundle(sub: argparse._SubParsersAction) -> None:
    bundle = sub.add_parser(
        "bundle",
        help="sign model bundles, verify their signatures (Ed25519), add reference clips",
        description="Boxes with bundle_keys run only bundles signed by one of those keys. The signature "
        "(signature.json, beside manifest.json) covers the manifest, which holds the sha256 of every file.",
    )
    bsub = bundle.add_subparsers(dest="bundle_command", required=True, metavar="COMMAND")
    keygen = bsub.add_parser(
        "keygen",
        help="make a signing key pair: NAME.key (private) and NAME.pub (public, for the boxes)",
        description="Write NAME.key (the private key, PKCS#8 PEM, mode 0600: it stays on the machine that signs) "
        "and NAME.pub (the public key: the boxes' bundle_keys). Existing files are never overwritten.",
    )
    keygen.add_argument("name", type=Path, help="where to write, without suffix (keys/chain-2026)")
    keygen.set_defaults(func=run_keygen)
    sign = bsub.add_parser(
        "sign",
        help="sign a bundle (writes BUNDLE/signature.json)",
        description="Check every file against the manifest, then sign the manifest with --key and write "
        "BUNDLE/signature.json; another key's signature of the same manifest is kept (rotation).",
    )
    sign.add_argument("bundle", type=Path, help="the bundle folder")
    sign.add_argument("--key", type=Path, required=True, help="the private key (NAME.key)")
    sign.set_defaults(func=run_sign)
    verify = bsub.add_parser(
        "verify",
        help="check a bundle as a box with these keys would: signature, versions, every file",
        description="Exit 0 if the bundle is signed by one of the --key public keys and every file matches the "
        "manifest; otherwise one line naming what failed (unsigned, unknown key, a file that does not match).",
    )
    verify.add_argument("bundle", type=Path, help="the bundle folder")
    verify.add_argument("--key", type=Path, action="append", required=True,
                        help="a trusted public key (NAME.pub); repeat it to trust several (rotation)")  # fmt: skip
    verify.set_defaults(func=run_verify)
    reference = bsub.add_parser(
        "reference",
        help="add a reference clip to a bundle (for the boxes' health gate) and reseal it",
        description="Record the bundle's outputs on a short clip of VIDEO (on the CPU) into BUNDLE/reference.npz, "
        "name it in the manifest and reseal it (a new bundle_id). A signature made before is removed: sign the "
        "bundle again (`shelfwatch bundle sign`).",
    )
    reference.add_argument("bundle", type=Path, help="the bundle folder")
    reference.add_argument("--video", type=Path, required=True, help="a video from the store's cameras (or alike)")
    reference.add_argument("--start", type=int, default=None, help="the clip's first frame (default: a few frames "
                           "before the first action its .labels.json names, else 0)")  # fmt: skip
    reference.set_defaults(func=run_reference)
    fam = bsub.add_parser(
        "familiarity",
        help="fit a familiarity guard into an existing bundle and reseal its manifest",
        description="Fit the familiarity guard with the bundle's own ONNX encoder on training-domain videos (--fit), "
        "calibrate its threshold on held-out ones (--calibrate; default: a fifth of --fit's, by video), write "
        "familiarity.npz into the bundle and reseal manifest.json (a new bundle id). A signature of the old "
        "manifest no longer holds and is removed: sign the bundle again.",
    )
    fam.add_argument("bundle", type=Path, help="the bundle folder (changed in place, atomically)")
    fam.add_argument("--fit", type=Path, required=True, metavar="DIR", help="training-domain videos to fit on")
    fam.add_argument(
        "--calibrate",
        type=Path,
        default=None,
        metavar="DIR",
        help="held-out training-domain videos for the threshold (never those it is scored on)",
    )
    fam.add_argument("--quantile", type=float, default=0.99, help="of the calibration windows (default 0.99)")
    fam.add_argument("--window-s", type=float, default=1.0, help="seconds the score is averaged over (default 1)")
    fam.add_argument("--max-frames", type=int, default=None, help="read at most N frames of each video")
    fam.set_defaults(func=run_familiarity)
    recover = bsub.add_parser(
        "recover",
        help="write a bundle's action model back as a PyTorch checkpoint (bundles exported without checkpoint.pt)",
        description="Rebuild a training run folder (OUT/best.pt, OUT/metrics.json) from BUNDLE's action graphs, for "
        "`train adapt --from` and `export`: the FP32 step graph's LSTM and classifier exactly, the encoder's "
        "convolutions with their batch norms folded in (as exported) and, from an INT8 encoder, dequantized: the "
        "weights the box runs, not the FP32 ones they were rounded from. For bundles made before export kept "
        "checkpoint.pt; a bundle that has one needs none of this.",
    )
    recover.add_argument("bundle", type=Path, help="the bundle folder")
    recover.add_argument("--out", type=Path, required=True, help="the run folder to write (best.pt, metrics.json)")
    recover.set_defaults(func=run_recover)


def run_export(args: argparse.Namespace) -> int:
    from export.inputs import check_inputs
    from export.options import ExportOptions

    options = ExportOptions(
        precision=args.precision, target=args.target, calibration=args.calibration,
        calibration_frames=args.calibration_frames, held_out=args.held_out, held_out_frames=args.held_out_frames,
        imgsz=args.imgsz, sequence=args.sequence, seed=args.seed, detector_from=args.detector_from,
        action_from=args.action_from,
        familiarity=not args.no_familiarity, familiarity_fit=args.familiarity_fit,
        familiarity_calibrate=args.familiarity_calibrate,
    )  # fmt: skip
    check_inputs(args.action, args.products, options)  # before PyTorch is imported: a mistake costs a second

    from export.bundle import build_bundle

    manifest = build_bundle(args.bundle_dir, args.action, args.products, options)
    size = sum(f.bytes for f in manifest.files.values())
    print(f"bundle {manifest.bundle_id} ({manifest.precision}, {size / 1e6:.1f} MB) -> {args.bundle_dir}")
    for name, q in manifest.action.quantization.items():
        print(f"  action {name}: {q.method}  {q.why}")
    if manifest.detector:
        print(f"  detector: {manifest.detector.quantization.method}  {manifest.detector.quantization.why}")
    for name, values in manifest.metrics.items():
        print(f"  {name}: " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
    if manifest.familiarity is not None:
        print(f"  {describe_familiarity(manifest.familiarity)}")
    return 0


def describe_familiarity(f: FamiliarityEntry) -> str:
    return (f"familiarity: threshold {f.threshold:.4g} ({100 * f.quantile:g}th percentile of {f.window_s:g} s windows "
            f"on {f.calibrated_on.frames} frames of {f.calibrated_on.videos} held-out video(s)); fitted on "
            f"{f.fitted_on.frames} frames of {f.fitted_on.videos} video(s)")  # fmt: skip


def run_keygen(args: argparse.Namespace) -> int:
    from export.signing import keygen

    pair = keygen(args.name)
    print(f"key {pair.key_id}: private {pair.private} (mode 0600: keep it where bundles are signed, never on a box "
          f"or in a bundle); public {pair.public} (for the boxes: bundle_keys)")  # fmt: skip
    return 0


def run_sign(args: argparse.Namespace) -> int:
    from edge.signing import SIGNATURE
    from export.signing import sign_bundle

    signed = sign_bundle(args.bundle, args.key)
    also = f"; also signed by {', '.join(signed.others)}" if signed.others else ""
    stale = f"; {signed.dropped} signature(s) of an earlier manifest removed" if signed.dropped else ""
    print(f"bundle {signed.manifest.bundle_id} signed by key {signed.key_id} -> {args.bundle / SIGNATURE}{also}"
          f"{stale}")  # fmt: skip
    return 0


def run_familiarity(args: argparse.Namespace) -> int:
    from edge.errors import ShelfWatchError
    from export.calibration import video_files
    from export.familiarity import add_to_bundle
    from training.provenance import command_line

    if not 0.5 <= args.quantile < 1:
        raise ShelfWatchError(f"--quantile {args.quantile}: give a quantile in [0.5, 1)")
    if not 0 < args.window_s <= 60:
        raise ShelfWatchError(f"--window-s {args.window_s}: give seconds in (0, 60]")
    for folder in (args.fit, args.calibrate):
        if folder is not None:
            video_files(folder)  # a wrong folder costs a line, before any video is read
    manifest, unsigned = add_to_bundle(args.bundle, args.fit, args.calibrate, args.quantile, args.window_s,
                                       args.max_frames, command_line())  # fmt: skip
    assert manifest.familiarity is not None
    print(f"bundle {manifest.bundle_id} -> {args.bundle}: {describe_familiarity(manifest.familiarity)}")
    if unsigned:
        print("its signature no longer held (the manifest changed) and was removed: sign it again with `shelfwatch "
              "bundle sign`")  # fmt: skip
    return 0


def run_recover(args: argparse.Namespace) -> int:
    from edge.bundle import load_bundle

    manifest = load_bundle(args.bundle)  # before PyTorch is imported: a wrong folder costs a second

    from export.recover import recover

    metrics = recover(args.bundle, args.out)
    print(
        f"bundle {manifest.bundle_id}: action model -> {args.out / 'best.pt'} "
        f"(sha256 {metrics['checkpoint']['sha256'][:12]}; {metrics['model']['encoder']} width "
        f"{metrics['model']['width']}, hidden {metrics['model']['hidden']}, delay {metrics['model']['delay']})"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from edge.bundle import read_bundle
    from edge.signing import load_trusted_keys

    bundle = read_bundle(args.bundle, load_trusted_keys(args.key))
    m, signer = bundle.manifest, bundle.signed_by
    assert signer is not None  # keys were given: read_bundle refuses what no trusted key signed
    print(f"bundle {m.bundle_id}: signed by key {signer.key_id} ({signer.path}); {len(m.files)} files match the "
          f"manifest (schema_version {m.schema_version})")  # fmt: skip
    if bundle.ignored:
        print(f"note: fields this agent does not know, ignored: {', '.join(bundle.ignored)}")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    from export.reference import add_reference

    added = add_reference(args.bundle, args.video, args.start)
    e = added.entry
    print(f"bundle {added.old_id} -> {added.new_id}: reference clip {e.file} ({e.frames} frames, {e.images} for the "
          f"detector, from {e.source})")  # fmt: skip
    if added.dropped_signature:
        print(f"its signature was of the manifest before: removed; sign it again (shelfwatch bundle sign "
              f"{args.bundle} --key KEY)")  # fmt: skip
    return 0
