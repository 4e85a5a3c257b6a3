"""The health gate on bundles made to fail one check each (the graphs edited after export, then resealed): a step
graph whose classes were shuffled fails its reference clip, an encoder made slow fails the frame rate, a provider the
box does not have fails to load; the demo bundle against itself passes them all. The helpers also make the bundle
that crashes the agent on bright footage only (its reference clip is dark), for the switch's end-to-end test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge import gate
from edge.bundle import MANIFEST, load_bundle, seal, sha256_of
from edge.preprocess import shrink, to_input
from edge.reference import Models, clip_from_frames, labels, run
from export.reference import add_reference, read_frames
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample


def resealed(folder: Path, graphs: dict[str, onnx.ModelProto]) -> Path:
    """`folder` with `graphs` written over its files and the manifest sealed again (the reference clip kept as it
    was: recorded from the graphs before)."""
    data = json.loads((folder / MANIFEST).read_text())
    for name, model in graphs.items():
        onnx.save(model, folder / name)
        data["files"][name] = {"sha256": sha256_of(folder / name), "bytes": (folder / name).stat().st_size}
    (folder / MANIFEST).write_text(json.dumps(seal(data | {"created": "2026-12-06T00:00:00+00:00"})))
    (folder / "signature.json").unlink(missing_ok=True)
    return folder


def demo_copy(folder: Path) -> Path:
    shutil.copytree(DEMO_BUNDLE, folder)
    return folder


def shuffled_classes(step: onnx.ModelProto) -> onnx.ModelProto:
    """The step graph with its classifier's rows rotated: every frame's class comes out as another."""
    for init in step.graph.initializer:
        if init.name == "model.classifier.weight" or init.name == "model.classifier.bias":
            init.CopyFrom(numpy_helper.from_array(np.roll(numpy_helper.to_array(init), 1, axis=0), init.name))
    return step


def _features_plus(encoder: onnx.ModelProto, nodes: list, inits: list, zero_from: str) -> onnx.ModelProto:
    """The encoder with `features` = its features + `zero_from` (a scalar that is always 0 but depends on the
    input, so that ONNX Runtime cannot fold what computes it away)."""
    g = encoder.graph
    for node in g.node:
        node.output[:] = ["features_inner" if o == "features" else o for o in node.output]
    g.node.extend([*nodes, helper.make_node("Add", ["features_inner", zero_from], ["features"])])
    g.initializer.extend(inits)
    return encoder


def slow_encoder(encoder: onnx.ModelProto, size: int = 384, rounds: int = 3) -> onnx.ModelProto:
    """The same features, after `rounds` needless (size x size) matrix products per frame."""
    rng = np.random.default_rng(0)
    big = numpy_helper.from_array((rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32), "slow_big")
    nodes = [helper.make_node("ReduceMean", ["frames"], ["slow_m"], keepdims=0),
             helper.make_node("Mul", ["slow_m", "slow_zero"], ["slow_m0"]),
             helper.make_node("Add", ["slow_m0", "slow_one"], ["slow_s"]),
             helper.make_node("Mul", ["slow_big", "slow_s"], ["slow_a0"])]  # fmt: skip
    for i in range(rounds):
        nodes.append(helper.make_node("MatMul", [f"slow_a{i}", "slow_big"], [f"slow_a{i + 1}"]))
    nodes += [helper.make_node("ReduceSum", [f"slow_a{rounds}"], ["slow_sum"], keepdims=0),
              helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"])]  # fmt: skip
    inits = [
        big,
        numpy_helper.from_array(np.float32(0), "slow_zero"),
        numpy_helper.from_array(np.float32(1), "slow_one"),
    ]
    return _features_plus(encoder, nodes, inits, "slow_nothing")


def crashing_encoder(encoder: onnx.ModelProto, brightness: float) -> onnx.ModelProto:
    """The encoder inside an ONNX `If` on the frames' mean input value: below `brightness` it runs as it was, above
    it a Reshape that cannot be done stops ONNX Runtime (and so the agent) on that frame."""
    g = encoder.graph
    for node in g.node:
        node.output[:] = ["features_ok" if o == "features" else o for o in node.output]
    then = helper.make_graph(list(g.node), "bundle_as_exported", [],
                             [helper.make_tensor_value_info("features_ok", TensorProto.FLOAT, None)])  # fmt: skip
    bad = helper.make_tensor_value_info("features_bad", TensorProto.FLOAT, None)
    broken = helper.make_graph([helper.make_node("Reshape", ["frames", "crash_shape"], ["features_bad"])],
                               "too_bright", [], [bad])  # fmt: skip
    del g.node[:]
    g.node.extend([
        helper.make_node("ReduceMean", ["frames"], ["crash_m"], keepdims=0),
        helper.make_node("Less", ["crash_m", "crash_threshold"], ["crash_dark"]),
        helper.make_node("If", ["crash_dark"], ["features"], then_branch=then, else_branch=broken),
    ])  # fmt: skip
    g.initializer.extend([numpy_helper.from_array(np.float32(brightness), "crash_threshold"),
                          numpy_helper.from_array(np.array([5, 5, 5], np.int64), "crash_shape")])  # fmt: skip
    return encoder


def mean_input(frames: list[np.ndarray]) -> list[float]:
    """Each frame's mean encoder input, as `crashing_encoder`'s test sees it."""
    spec = load_bundle(DEMO_BUNDLE).action.input.spec()
    small = np.stack([shrink(f, spec) for f in frames])
    return [float(x.mean()) for x in to_input(small, None, spec)]


def darkened(video: Path, out: Path, factor: float = 0.35) -> Path:
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
        writer.write((frame * factor).astype(np.uint8))
    cap.release()
    writer.release()
    return out


def crashing_bundle(folder: Path, live: Path, work: Path) -> Path:
    """A bundle that passes its health gate (its reference clip is dark) and crashes the agent on `live` (brighter):
    the demo's encoder wrapped by `crashing_encoder`, with a reference clip recorded from a darkened copy of `live`."""
    dark = darkened(live, work / "dark.mp4")
    dark_means, live_means = mean_input(read_frames(dark, 0, 90)), mean_input(read_frames(live, 0, 90))
    assert max(dark_means) < min(live_means)  # the premise: every live frame is brighter than every dark one
    threshold = (max(dark_means) + min(live_means)) / 2
    bundle = resealed(demo_copy(folder), {"action_encoder.onnx": crashing_encoder(
        onnx.load(DEMO_BUNDLE / "action_encoder.onnx"), threshold)})  # fmt: skip
    add_reference(bundle, dark)
    return bundle


def check(candidate: Path, camera=lambda n: None, provider="cpu") -> gate.Verdict:
    return gate.check(candidate, load_bundle(candidate), DEMO_BUNDLE, load_bundle(DEMO_BUNDLE), provider, 0, camera)


def test_the_demo_passes_its_gate_beside_itself_and_a_bundle_whose_graphs_changed_fails_its_reference_clip(tmp_path):
    same = check(demo_copy(tmp_path / "same"))
    assert same.ok, same.detail
    assert "loads on CPU" in same.detail and "0 of 32 frames labelled otherwise" in same.detail
    assert 0.9 <= same.fps_ratio  # two copies of one bundle, side by side
    step = onnx.load(DEMO_BUNDLE / "action_step.onnx")
    changed = resealed(demo_copy(tmp_path / "changed"), {"action_step.onnx": shuffled_classes(step)})
    verdict = check(changed)
    assert not verdict.ok and verdict.detail.startswith("reference clip: ") and "labelled otherwise" in verdict.detail
    assert verdict.fps_ratio is None  # refused before the frame rates were compared


def test_a_slower_bundle_fails_the_frame_rate_side_by_side(tmp_path):
    encoder = onnx.load(DEMO_BUNDLE / "action_encoder.onnx")
    slow = resealed(demo_copy(tmp_path / "slow"), {"action_encoder.onnx": slow_encoder(encoder)})
    verdict = check(slow)
    assert not verdict.ok and "of the running bundle's frame rate on the same clip (at least 90 %)" in verdict.detail
    assert verdict.fps_ratio < 0.9


def test_a_bundle_without_reference_clip_runs_on_the_cameras_frames_and_says_parity_was_not_checked(tmp_path):
    bare = demo_copy(tmp_path / "bare")
    data = json.loads((bare / MANIFEST).read_text())
    data.pop("reference")
    data["files"].pop("reference.npz")
    (bare / "reference.npz").unlink()
    (bare / MANIFEST).write_text(json.dumps(seal(data)))
    assert not check(bare).ok and "no reference clip, and the camera gave no frames" in check(bare).detail
    frames = read_frames(sample(tmp_path, 40, seed=5), 0)
    verdict = check(bare, camera=lambda n: frames[:n])
    assert (
        verdict.ok
        and "no reference clip: run on 32 camera frames, parity with the export not checked" in verdict.detail
    )


def test_a_bundle_whose_graph_fails_on_its_clip_is_refused_not_raised(tmp_path):
    encoder = crashing_encoder(onnx.load(DEMO_BUNDLE / "action_encoder.onnx"), brightness=-100.0)  # fails on all
    verdict = check(resealed(demo_copy(tmp_path / "broken"), {"action_encoder.onnx": encoder}))
    assert not verdict.ok and verdict.detail.startswith("its models fail on the clip (")
    assert "cannot be reshaped to the requested shape" in verdict.detail


def test_a_provider_the_box_lacks_fails_to_load(tmp_path):
    verdict = check(demo_copy(tmp_path / "copy"), provider="cuda")
    assert not verdict.ok and verdict.detail.startswith("its models do not load on provider cuda")


def test_the_crashing_bundle_passes_its_dark_reference_and_crashes_on_bright_frames(tmp_path):
    live = sample(tmp_path, 120, seed=23)
    bundle = crashing_bundle(tmp_path / "crash", live, tmp_path)
    verdict = check(bundle)
    assert verdict.ok, verdict.detail
    manifest = load_bundle(bundle)
    models = Models(manifest, bundle)
    dark = run(models, clip_from_frames(read_frames(tmp_path / "dark.mp4", 0), manifest))
    assert len(labels(dark.probs)) == 32  # positive control: the same graph runs on dark frames
    with pytest.raises(Exception, match=r"(?i)reshape"):
        run(models, clip_from_frames(read_frames(live, 0), manifest))
