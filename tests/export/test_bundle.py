"""`shelfwatch export` writes a bundle the agent can verify: hashes, sizes, classes, catalogue, how it was
made, its quantization and its held-out scores; a bundle whose files do not match is refused."""

import json
import shutil

import pytest

from edge import reference
from edge.bundle import CHECKPOINT, MANIFEST, load_bundle, sha256_of
from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from tests.export.conftest import run


def test_int8_bundle_manifest_says_what_every_file_is(int8_bundle, runs):
    manifest = load_bundle(int8_bundle)
    assert manifest.precision == "int8" and manifest.target == "cpu"
    assert sorted(manifest.files) == ["action_encoder.onnx", "action_step.onnx", "detector.onnx", "familiarity.npz",
                                      "reference.npz"]  # fmt: skip
    for name, entry in manifest.files.items():
        assert entry.sha256 == sha256_of(int8_bundle / name) and entry.bytes == (int8_bundle / name).stat().st_size
    assert manifest.action.classes == list(ACTION_CLASSES)
    assert (manifest.action.input.width, manifest.action.input.height, manifest.action.input.motion) == (64, 48, True)
    assert manifest.action.delay == 2 and manifest.action.hidden == 8
    assert manifest.detector.imgsz == 64
    assert [(s.class_index, s.sku) for s in manifest.detector.catalog][:2] == [(0, "sku00"), (1, "sku01")]
    assert manifest.detector.catalog[0].name == "Cola can"
    # Every graph says how it was quantized and why: INT8 is kept only where it measured faster here.
    for q in [*manifest.action.quantization.values(), manifest.detector.quantization]:
        assert q.why and q.method in ("none", "static-qoperator-u8s8-per-channel", "static-qdq-u8s8-per-channel",
                                      "dynamic")  # fmt: skip
        assert "fp32" in q.ms_per_run
    assert any("train action" in c for c in manifest.provenance.commands)
    assert any("train products" in c for c in manifest.provenance.commands)
    assert any(c.startswith("shelfwatch export") for c in manifest.provenance.commands)
    # It leads back to its weights: the checkpoint's sha256, and the checkpoint itself beside the manifest (unlisted,
    # so no box receives it), for `train adapt --from BUNDLE`.
    assert manifest.provenance.checkpoint_sha256 == sha256_of(runs["action"] / "best.pt")
    assert sha256_of(int8_bundle / CHECKPOINT) == manifest.provenance.checkpoint_sha256
    assert json.loads((runs["action"] / "metrics.json").read_text())["checkpoint"]["sha256"] == sha256_of(
        runs["action"] / "best.pt"
    )
    # The graphs agree with PyTorch, and INT8 was scored next to FP32 on the held-out videos.
    assert max(manifest.metrics["onnx_vs_pytorch_max_abs"].values()) <= 1e-4
    accuracy = manifest.metrics["action_frame_accuracy"]
    assert accuracy["videos"] == 2 and accuracy["frames"] == 180
    # "shipped" is what the bundle's own graphs score, measured here on the same held-out videos.
    assert measured_accuracy(int8_bundle, runs["test"]) == pytest.approx(accuracy["shipped"], abs=1e-9)
    assert_within_precision_limits(manifest)
    # The reference clip for the boxes' health gate: the shipped graphs' outputs on a second of held-out video, which
    # the same graphs on the same provider give again.
    assert manifest.reference.frames == 32 and manifest.reference.provider == "CPUExecutionProvider"
    assert manifest.reference.source.startswith(sorted(p.name for p in runs["test"].glob("*.mp4"))[0])
    clip, recorded = reference.load(int8_bundle / manifest.reference.file, manifest)
    assert reference.compare(recorded, reference.run(reference.Models(manifest, int8_bundle), clip)).ok


def test_fp16_and_fp32_bundles(runs, yolo_env, tmp_path):
    for precision in ("fp16", "fp32"):
        out = tmp_path / precision
        run("export", out, "--action", runs["action"], "--calibration", runs["train"], "--calibration-frames", 8,
            "--precision", precision, "--held-out", runs["test"], "--held-out-frames", 30, "--no-familiarity",
            env=yolo_env)  # fmt: skip
        manifest = load_bundle(out)
        assert manifest.detector is None
        assert sorted(manifest.files) == ["action_encoder.onnx", "action_step.onnx", "reference.npz"]
        assert manifest.familiarity is None  # --no-familiarity: a bundle as before the guard
        expected = "fp16" if precision == "fp16" else "none"
        assert {q.method for q in manifest.action.quantization.values()} == {expected}
        accuracy = manifest.metrics["action_frame_accuracy"]
        assert accuracy["frames"] == 60 and abs(accuracy["fp32"] - accuracy[precision]) <= 0.01
        # The numbers are the graphs' own: what ships here scores what the manifest says it does.
        assert measured_accuracy(out, runs["test"], 30) == pytest.approx(accuracy["shipped"], abs=1e-9)
        if precision == "fp32":  # the FP32 figure every bundle's limits are measured from
            assert accuracy["shipped"] == accuracy["fp32"]


def test_a_new_action_model_keeps_another_bundles_detector(int8_bundle, runs, tmp_path):
    """Comparing action encoders means swapping the action model only: --detector-from copies a bundle's
    detector, its catalogue and its scores unchanged, and the result passes the agent's own check."""
    out = tmp_path / "swapped"
    run("export", out, "--action", runs["action"], "--detector-from", int8_bundle, "--calibration", runs["train"],
        "--calibration-frames", 8, "--precision", "fp32")  # fmt: skip
    old, new = load_bundle(int8_bundle), load_bundle(out)
    assert new.detector == old.detector
    assert new.files["detector.onnx"] == old.files["detector.onnx"]
    assert new.metrics["detector_map50"] == old.metrics["detector_map50"]
    assert {q.method for q in new.action.quantization.values()} == {"none"}
    assert new.provenance.sources["detector"].endswith(f"detector.onnx (bundle {old.bundle_id})")
    assert any("train products" in c for c in new.provenance.commands)


def test_a_new_detector_keeps_another_bundles_action_graphs(int8_bundle, runs, yolo_env, tmp_path):
    """Comparing detectors means swapping the detector only: --action-from ships a bundle's action graphs as they are
    (their quantization is not measured again, so a noisy timing cannot change them) beside a newly exported
    detector, with the bundle's own checkpoint and the chain of commands its manifest records."""
    out = tmp_path / "new-detector"
    run("export", out, "--action-from", int8_bundle, "--products", runs["products"], "--calibration", runs["train"],
        "--calibration-frames", 8, "--held-out", runs["test"], "--held-out-frames", 30, "--no-familiarity",
        env=yolo_env)  # fmt: skip
    old, new = load_bundle(int8_bundle), load_bundle(out)
    for name in ("action_encoder.onnx", "action_step.onnx"):
        assert new.files[name] == old.files[name]
    assert new.action == old.action
    assert new.provenance.checkpoint_sha256 == old.provenance.checkpoint_sha256 == sha256_of(out / CHECKPOINT)
    assert new.provenance.sources["action"].endswith(f"(the graphs of bundle {old.bundle_id})")
    assert new.provenance.sources["detector"] == str(runs["products"])
    assert new.provenance.commands[: len(old.provenance.commands)] == old.provenance.commands
    assert "--action-from" in new.provenance.commands[-1]
    assert new.metrics["action_frame_accuracy"]["frames"] == 60 and "detector_map50" in new.metrics
    clip, recorded = reference.load(out / new.reference.file, new)  # recorded from what ships
    assert reference.compare(recorded, reference.run(reference.Models(new, out), clip)).ok


def tampered(bundle, tmp_path, change):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    change(copy)
    return copy


def test_the_agent_refuses_a_bundle_that_does_not_match_its_manifest(int8_bundle, tmp_path):
    def flip_a_byte(folder):
        data = bytearray((folder / "action_step.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / "action_step.onnx").write_bytes(bytes(data))

    def edit_manifest(folder):
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest["precision"] = "int4"
        (folder / MANIFEST).write_text(json.dumps(manifest))

    cases = [
        (flip_a_byte, "action_step.onnx does not match its sha256"),
        (lambda f: (f / "detector.onnx").unlink(), "detector.onnx is missing"),
        (lambda f: (f / MANIFEST).write_text("{"), "manifest.json: not JSON"),
        (edit_manifest, "precision"),
        (lambda f: (f / MANIFEST).unlink(), "not a model bundle"),
    ]
    for i, (change, message) in enumerate(cases):
        bundle = tampered(int8_bundle, tmp_path / str(i), change)
        with pytest.raises(ShelfWatchError, match=message):
            load_bundle(bundle)
    with pytest.raises(ShelfWatchError, match="no such model bundle"):
        load_bundle(tmp_path / "nowhere")


def test_export_bad_input_is_one_line(runs, tmp_path, shelfwatch):
    cases = [
        (("--action", tmp_path / "missing"), "no such checkpoint"),
        (("--action", runs["action"], "--products", tmp_path), "has no weights/best.pt"),
        (("--action", runs["action"], "--calibration", tmp_path), "has no videos"),
        (
            ("--action", runs["action"] / "frame.pt", "--calibration", runs["train"]),
            "only a uni-directional LSTM model streams",
        ),  # found once the checkpoint is loaded
        (
            ("--action", runs["action"], "--products", runs["products"], "--detector-from", tmp_path),
            "--products and --detector-from both name a detector",
        ),
        (("--action", runs["action"], "--detector-from", tmp_path), "manifest"),
        (("--calibration", runs["train"]), "name the action model: --action RUN_OR_CHECKPOINT, or --action-from"),
        (
            ("--action", runs["action"], "--action-from", runs["action"]),
            "--action and --action-from both name an action model",
        ),
        (("--action-from", tmp_path), "manifest"),
    ]
    for args, message in cases:
        result = shelfwatch("export", tmp_path / "bundle", *args, "--calibration-frames", 4)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
        assert not (tmp_path / "bundle").exists()  # nothing half-written


def measured_accuracy(bundle, held_out, frames: int | None = None) -> float:
    """The frame accuracy of the action graphs a bundle holds, on the labelled videos in `held_out` (their first
    `frames`), measured the way export measures: the streaming graphs, then the agent's smoothing."""
    from edge.action import ActionRecognizer
    from edge.preprocess import InputSpec
    from export.checks import action_accuracy
    from training.action_data import find_videos, load_video

    manifest = load_bundle(bundle)
    shape = manifest.action.input
    spec = InputSpec(width=shape.width, height=shape.height, motion=shape.motion)
    videos = [load_video(name, v, lab, spec, cache=False) for name, (v, lab) in sorted(find_videos(held_out).items())]
    if frames:
        videos = [type(v)(v.name, v.frames[:frames], v.labels[:frames]) for v in videos]
    return action_accuracy(ActionRecognizer(manifest, bundle), videos)


def assert_within_precision_limits(manifest) -> None:
    """What ships costs at most 1 point of frame accuracy and 2 of mAP50 on held-out data; INT8 ships only where
    it stayed within those limits, otherwise the graph is FP32 and says why."""
    accuracy = manifest.metrics["action_frame_accuracy"]
    assert accuracy["fp32"] - accuracy["shipped"] <= 0.01
    map50 = manifest.metrics["detector_map50"]
    assert map50["fp32"] - map50["shipped"] <= 0.02
    if map50["fp32"] - map50["int8"] > 0.02:
        assert manifest.detector.quantization.method == "none" and "shipped FP32" in manifest.detector.quantization.why
    if accuracy["fp32"] - accuracy["int8"] > 0.01:
        assert {q.method for q in manifest.action.quantization.values()} == {"none"}
