"""`shelfwatch export`: trained runs -> a model bundle for the edge (ONNX files and a verified manifest).

Steps: export FP32 graphs; check them against PyTorch (≤ 1e-4, or the export stops); make the requested
precision (INT8 by measurement, FP16, or FP32); score FP32 and the result on held-out videos; record the reference
clip (`edge.reference`); write the bundle into a fresh folder and swap it in, so a failed export never leaves half a
bundle behind.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx

from edge.action import ActionRecognizer
from edge.bundle import (
    CHECKPOINT,
    MANIFEST,
    ActionInput,
    ActionModelEntry,
    DetectorEntry,
    FileEntry,
    Manifest,
    Provenance,
    Quantization,
    SkuEntry,
    load_bundle,
    sealed,
    sha256_of,
)
from edge.classes import ACTION_CLASSES
from edge.detector import letterbox, to_tensor
from edge.errors import ShelfWatchError
from edge.preprocess import shrink, to_input
from edge.reference import MAX_DROP, TOLERANCE
from export import checks
from export.action_onnx import check_streams, export_encoder, export_sequence, export_step
from export.calibration import sample_frames, video_files
from export.detector_onnx import export_detector
from export.inputs import check_inputs
from export.options import ExportOptions
from export.quantize import Frames, quantize_conv_graph, quantize_step_graph, to_fp16
from export.reference import export_clip, record
from training.provenance import command_line, run_commands

# TOLERANCE: ONNX FP32 against PyTorch, on features and scores (relative above 1: checks.difference). MAX_DROP: the most
# a reduced precision may cost on held-out data before that graph ships in FP32 instead (frame accuracy; mAP50). Both
# live in edge/reference.py, whose health gate holds a box's provider to the same rules.


def _detect_head_postprocess(model_path: Path) -> list[str]:
    """Nodes of YOLO's Detect head that decode boxes (DFL, anchors, sigmoid, concat): quantizing them would
    put box coordinates (0..imgsz) and class probabilities (0..1) on one INT8 scale."""
    graph = onnx.load(str(model_path)).graph
    layers = [int(n.name.split("/")[1].split(".")[1]) for n in graph.node if n.name.startswith("/model.")]
    head = f"/model.{max(layers)}/"
    branches = (f"{head}cv2.", f"{head}cv3.")  # the box and class convolutions, which quantize well
    return [n.name for n in graph.node if n.name.startswith(head) and not n.name.startswith(branches)]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_bundle(out: Path, action_run: Path | None, products_run: Path | None, options: ExportOptions) -> Manifest:
    from training.action_data import find_videos, load_video
    from training.train_action import load_model
    from training.train_products import local_data_yaml

    inputs = check_inputs(action_run, products_run, options)
    checkpoint, kept = inputs.checkpoint, inputs.detector_from
    checkpoint_sha256 = sha256_of(checkpoint)  # before loading: the digest is of the very bytes exported
    model, ckpt = load_model(checkpoint)
    check_streams(model)
    spec = model.config.input
    pairs = sample_frames(options.calibration, options.calibration_frames, options.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    work = Path(tempfile.mkdtemp(prefix="shelfwatch-export-"))
    try:
        metrics: dict[str, dict[str, float]] = {}
        quant: dict[str, Quantization] = {}
        # 1. FP32 graphs, checked against PyTorch.
        export_encoder(model, work / "encoder.fp32.onnx")
        export_step(model, work / "step.fp32.onnx")
        fp32_manifest = _draft_manifest(work, model, "encoder.fp32.onnx", "step.fp32.onnx")
        fp32 = ActionRecognizer(fp32_manifest, work)
        diffs = checks.encoder_difference(model, fp32, pairs)
        clip = np.stack([f for f, _ in pairs[:64]])
        diffs["streaming"] = checks.streaming_difference(model, fp32, clip)
        metrics["onnx_vs_pytorch_max_abs"] = diffs
        worst = max(diffs, key=diffs.get)
        if diffs[worst] > TOLERANCE:
            raise ShelfWatchError(f"ONNX differs from PyTorch by {diffs[worst]:.2e} ({worst}); limit {TOLERANCE}")

        # 2. The requested precision.
        encoder_in = np.concatenate([to_input(shrink(f, spec)[None], shrink(p, spec), spec) for f, p in pairs])
        one_frame = {"frames": encoder_in[:1]}
        hidden = model.config.hidden
        step_feed = {"features": fp32.encoder.run(None, one_frame)[0], "h": np.zeros((1, 1, hidden), np.float32),
                     "c": np.zeros((1, 1, hidden), np.float32)}  # fmt: skip
        if inputs.action_from is not None:  # the kept graphs as they are: a new detector beside the same action model
            for name in ("encoder", "step"):
                shutil.copy(
                    options.action_from / getattr(inputs.action_from.action, name), staging / f"action_{name}.onnx"
                )
            quant = dict(inputs.action_from.action.quantization)
        elif options.precision == "int8":
            reader = Frames("frames", [encoder_in[i : i + 1] for i in range(len(encoder_in))])
            quant["encoder"] = quantize_conv_graph(
                work / "encoder.fp32.onnx", staging / "action_encoder.onnx", reader, one_frame, options.target
            )
            quant["step"] = quantize_step_graph(work / "step.fp32.onnx", staging / "action_step.onnx", step_feed)
        elif options.precision == "fp16":
            quant["encoder"] = to_fp16(work / "encoder.fp32.onnx", staging / "action_encoder.onnx")
            quant["step"] = to_fp16(work / "step.fp32.onnx", staging / "action_step.onnx")
        else:
            shutil.copy(work / "encoder.fp32.onnx", staging / "action_encoder.onnx")
            shutil.copy(work / "step.fp32.onnx", staging / "action_step.onnx")
            quant = {k: Quantization(method="none") for k in ("encoder", "step")}
        sequence = None
        if options.sequence:
            sequence = "action_sequence.onnx"
            export_sequence(model, staging / sequence)

        detector: DetectorEntry | None = None
        detector_source: str | None = None  # where the detector came from, for the provenance
        imgsz = options.imgsz
        if products_run is not None:
            detector_source = str(products_run)
            imgsz = imgsz or _trained_imgsz(products_run)
            fp32_det, names = export_detector(products_run, work / "detector.fp32.onnx", imgsz)
            detector_q = _detector_precision(fp32_det, staging / "detector.onnx", pairs, imgsz, options)
            detector = DetectorEntry(model="detector.onnx", imgsz=imgsz, catalog=_catalog(names),
                                     quantization=detector_q)  # fmt: skip
        elif kept is not None:
            detector = kept.detector
            detector_source = f"{options.detector_from}/{detector.model} (bundle {kept.bundle_id})"
            shutil.copy(options.detector_from / detector.model, staging / detector.model)
            metrics.update({k: v for k, v in kept.metrics.items() if k.startswith("detector_")})

        # 3. Held-out scores: FP32 next to the requested precision. A graph whose reduced precision costs more
        #    than the limits (MAX_DROP) ships in FP32 instead; "shipped" is what the bundle scores.
        if options.held_out is not None:
            videos = [
                load_video(name, v, lab, spec) for name, (v, lab) in sorted(find_videos(options.held_out).items())
            ]
            if options.held_out_frames:
                videos = [_first_frames(v, options.held_out_frames) for v in videos]
            reduced = ActionRecognizer(_draft_manifest(staging, model, "action_encoder.onnx", "action_step.onnx"),
                                       staging)  # fmt: skip
            scores = {
                "fp32": checks.action_accuracy(fp32, videos),
                options.precision: checks.action_accuracy(reduced, videos),
            }
            drop = scores["fp32"] - scores[options.precision]
            if options.precision != "fp32" and drop > MAX_DROP["action"]:
                for name in ("encoder", "step"):
                    shutil.copy(work / f"{name}.fp32.onnx", staging / f"action_{name}.onnx")
                    quant[name] = quant[name].model_copy(update={"method": "none", "why": (
                        f"{options.precision} cost {100 * drop:.1f} points of frame accuracy on held-out videos "
                        f"(limit {100 * MAX_DROP['action']:.0f}): shipped FP32")})  # fmt: skip
            scores["shipped"] = scores["fp32"] if drop > MAX_DROP["action"] else scores[options.precision]
            metrics["action_frame_accuracy"] = {**scores, "videos": float(len(videos)),
                                                "frames": float(sum(len(v.labels) for v in videos))}  # fmt: skip
            yolo = options.held_out / "yolo" / "data.yaml"
            if products_run is not None and yolo.is_file():
                data_yaml = local_data_yaml(yolo, work, every_image=True)
                fp32_map = checks.detector_map(work / "detector.fp32.onnx", data_yaml, imgsz, work)
                reduced_map = checks.detector_map(staging / "detector.onnx", data_yaml, imgsz, work)
                drop = fp32_map["map50"] - reduced_map["map50"]
                fallback = options.precision != "fp32" and drop > MAX_DROP["detector"]
                if fallback:
                    shutil.copy(work / "detector.fp32.onnx", staging / "detector.onnx")
                    why = (f"{options.precision} cost {100 * drop:.1f} points of mAP50 on held-out images "
                           f"(limit {100 * MAX_DROP['detector']:.0f}): shipped FP32")  # fmt: skip
                    detector = detector.model_copy(update={"quantization": detector.quantization.model_copy(
                        update={"method": "none", "why": why})})  # fmt: skip
                for key in ("map50", "map50_95"):
                    shipped = fp32_map[key] if fallback else reduced_map[key]
                    metrics[f"detector_{key}"] = {"fp32": fp32_map[key], options.precision: reduced_map[key],
                                                  "shipped": shipped}  # fmt: skip
        entry = _action_entry(model, "action_encoder.onnx", "action_step.onnx", sequence, quant)
        fitted = None
        if options.familiarity:  # from the bundle's own encoder, as the box will run it
            from export.familiarity import fit_familiarity, write_stats

            draft = _draft_manifest(staging, model, "action_encoder.onnx", "action_step.onnx")
            fitted = fit_familiarity(staging, draft, options.familiarity_fit or options.calibration,
                                     options.familiarity_calibrate)  # fmt: skip
            write_stats(fitted, staging)

        # 4. The reference clip: what the shipped graphs give on a second of video, for the boxes' health gate.
        shipped = {p.name: FileEntry(sha256=sha256_of(p), bytes=p.stat().st_size) for p in staging.iterdir()}
        draft = Manifest(bundle_id="draft", created=datetime.now(timezone.utc), precision=options.precision,
                         target=options.target, action=entry, detector=detector, files=shipped,
                         provenance=Provenance(commands=[]))  # fmt: skip
        videos = [*(video_files(options.held_out) if options.held_out is not None else []),
                  *video_files(options.calibration)]  # fmt: skip
        reference = record(staging, draft, *export_clip(videos))

        # 5. The manifest, and the swap.
        files = {p.name: FileEntry(sha256=sha256_of(p), bytes=p.stat().st_size) for p in sorted(staging.iterdir())}
        # A kept bundle's chain from its manifest as loaded and checked above, not read again from its folder.
        earlier = inputs.action_from.provenance.commands if inputs.action_from else run_commands(checkpoint.parent)
        commands = [*earlier, *(run_commands(products_run) if products_run else [])]
        if kept is not None:
            commands += [c for c in kept.provenance.commands
                         if c.startswith("shelfwatch train products") and c not in commands]  # fmt: skip
        commands.append(command_line())
        action_source = str(checkpoint)
        if inputs.action_from is not None:
            action_source += f" (the graphs of bundle {inputs.action_from.bundle_id})"
        manifest = Manifest(
            bundle_id="",  # sealed below, over the manifest's own content
            created=datetime.now(timezone.utc),
            precision=options.precision,
            target=options.target,
            action=entry,
            detector=detector,
            files=files,
            provenance=Provenance(
                commands=commands,
                seeds={"calibration": options.seed, "training": int(ckpt.get("options", {}).get("seed", 0))},
                git_commit=_git_commit(),
                sources={"action": action_source, **({"detector": detector_source} if detector_source else {})},
                checkpoint_sha256=checkpoint_sha256,
            ),
            metrics=metrics,
            reference=reference,
            familiarity=fitted.entry if fitted is not None else None,
        )
        manifest = sealed(manifest)
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        # The weights travel with the bundle, for `train adapt --from BUNDLE`; unlisted under `files`, so a box never
        # receives it (a bundle's tar holds the listed files only); its sha256 in the manifest vouches for it.
        shutil.copy(checkpoint, staging / CHECKPOINT)
        load_bundle(staging)  # what ships must pass the agent's own check
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        out.chmod(0o755)  # mkdtemp made it private
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)


def _first_frames(video, n: int):
    return type(video)(video.name, video.frames[:n], video.labels[:n])


def _trained_imgsz(run_dir: Path) -> int:
    import yaml

    args = run_dir / "args.yaml"
    if args.is_file():
        return int(yaml.safe_load(args.read_text()).get("imgsz", 320))
    return 320


def _catalog(names: list[str]) -> list[SkuEntry]:
    from training.synth.catalog import CATALOG

    known = {s.id: s.name for s in CATALOG}
    return [SkuEntry(class_index=i, sku=n, name=known.get(n, n)) for i, n in enumerate(names)]


def _action_entry(model, encoder: str, step: str, sequence: str | None, quant: dict) -> ActionModelEntry:
    spec = model.config.input
    return ActionModelEntry(
        encoder=encoder,
        step=step,
        sequence=sequence,
        input=ActionInput(width=spec.width, height=spec.height, motion=spec.motion),
        classes=list(ACTION_CLASSES),
        features=model.encoder.out_features,
        hidden=model.config.hidden,
        delay=model.config.delay,
        quantization=quant,
    )


def _draft_manifest(folder: Path, model, encoder: str, step: str) -> Manifest:
    """An unverified manifest, to run graphs that are not in a bundle yet."""
    files = {n: FileEntry(sha256=sha256_of(folder / n), bytes=(folder / n).stat().st_size) for n in (encoder, step)}
    quant = {k: Quantization(method="none") for k in ("encoder", "step")}
    return Manifest(bundle_id="draft", created=datetime.now(timezone.utc), precision="fp32", target="cpu",
                    action=_action_entry(model, encoder, step, None, quant), files=files,
                    provenance=Provenance(commands=[]))  # fmt: skip


def _detector_precision(src: Path, dst: Path, pairs: list, imgsz: int, options: ExportOptions) -> Quantization:
    if options.precision == "fp32":
        shutil.copy(src, dst)
        return Quantization(method="none")
    if options.precision == "fp16":
        return to_fp16(src, dst)
    images = [to_tensor(letterbox(f, imgsz)[0]) for f, _ in pairs[:64]]
    return quantize_conv_graph(src, dst, Frames("images", images), {"images": images[0]}, options.target,
                               exclude=_detect_head_postprocess(src))  # fmt: skip
