"""`shelfwatch bundle recover`: a bundle's action graphs back as a checkpoint that computes what they compute, which
`export` and `train adapt` take like any training run."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge import reference
from edge.bundle import CHECKPOINT, MANIFEST, load_bundle, seal, sha256_of
from edge.preprocess import shrink, to_input
from export.recover import recover
from tests.export.conftest import run
from tests.export.test_action_onnx import video_frames
from training.train_action import load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fp32_bundle(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recover") / "fp32"
    run("export", out, "--action", runs["action"], "--precision", "fp32", "--calibration", runs["train"],
        "--no-familiarity")  # fmt: skip
    return out


def real_input(runs, spec, n=40) -> np.ndarray:
    return to_input(np.stack([shrink(f, spec) for f in video_frames(runs["test"], n)]), None, spec)


def test_from_an_fp32_bundle_it_is_the_trained_model(runs, fp32_bundle, tmp_path):
    recover(fp32_bundle, tmp_path / "recovered")
    trained, _ = load_model(runs["action"] / "best.pt")
    recovered, _ = load_model(tmp_path / "recovered" / "best.pt")
    assert recovered.config == trained.config
    x = torch.from_numpy(real_input(runs, trained.config.input))[None]
    with torch.no_grad():
        assert torch.allclose(recovered(x), trained(x), atol=1e-4)
        # The LSTM and the classifier are the trained tensors themselves, whatever gate order ONNX uses.
        for name, tensor in trained.state_dict().items():
            if name.startswith(("lstm.", "classifier.")):
                assert torch.equal(recovered.state_dict()[name], tensor), name


def test_from_an_int8_qdq_bundle_it_computes_what_the_box_runs(runs, tmp_path):
    """QDQ (always chosen for TensorRT) here; models/demo's QOperator encoder is recovered below."""
    int8_bundle = tmp_path / "qdq"
    run("export", int8_bundle, "--action", runs["action"], "--target", "tensorrt", "--calibration", runs["train"],
        "--calibration-frames", 32, "--no-familiarity")  # fmt: skip
    manifest = load_bundle(int8_bundle)
    assert manifest.action.quantization["encoder"].method == "static-qdq-u8s8-per-channel"
    metrics = recover(int8_bundle, tmp_path / "recovered")
    model, _ = load_model(tmp_path / "recovered" / "best.pt")
    x = real_input(runs, model.config.input)
    box = ort.InferenceSession(str(int8_bundle / manifest.action.encoder), providers=["CPUExecutionProvider"])
    onnx_features = box.run(None, {"frames": x})[0]
    with torch.no_grad():
        features = model.encoder(torch.from_numpy(x)).numpy()
    # The int8 graph also rounds its activations; the recovered float model differs from it by that only.
    assert np.linalg.norm(features - onnx_features) <= 0.1 * np.linalg.norm(onnx_features)
    assert metrics["checkpoint"]["sha256"] == sha256_of(tmp_path / "recovered" / "best.pt")
    assert metrics["commands"][: len(manifest.provenance.commands)] == manifest.provenance.commands


def test_a_dynamically_quantized_step_comes_back_dequantized(runs, fp32_bundle, tmp_path):
    """Export keeps dynamic INT8 for the step where it runs faster: its LSTM and classifier weights come back within
    one quantization step of the trained ones, in PyTorch's gate order."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    bundle = tmp_path / "dynamic"
    shutil.copytree(fp32_bundle, bundle)
    step = bundle / "action_step.onnx"
    quantize_dynamic(str(fp32_bundle / "action_step.onnx"), str(step), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["LSTM", "Gemm", "MatMul"])  # fmt: skip
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= {n.op_type for n in onnx.load(str(step)).graph.node}
    data = json.loads((bundle / MANIFEST).read_text())
    data["files"]["action_step.onnx"] = {"sha256": sha256_of(step), "bytes": step.stat().st_size}
    (bundle / MANIFEST).write_text(json.dumps(seal(data)))
    recover(bundle, tmp_path / "recovered")
    trained, _ = load_model(runs["action"] / "best.pt")
    recovered, _ = load_model(tmp_path / "recovered" / "best.pt")
    for name, tensor in trained.state_dict().items():
        if name.startswith(("lstm.weight", "classifier.weight")):
            step_size = tensor.abs().max() / 127
            assert (recovered.state_dict()[name] - tensor).abs().max() <= step_size, name
        elif name.startswith(("lstm.bias", "classifier.bias")):
            assert torch.equal(recovered.state_dict()[name], tensor), name


def test_the_recovered_run_exports_and_the_new_bundle_leads_back_to_it(runs, fp32_bundle, tmp_path):
    run("bundle", "recover", fp32_bundle, "--out", tmp_path / "recovered")
    out = tmp_path / "again"
    run("export", out, "--action", tmp_path / "recovered", "--precision", "fp32", "--calibration", runs["train"],
        "--no-familiarity")  # fmt: skip
    manifest = load_bundle(out)
    assert manifest.provenance.checkpoint_sha256 == sha256_of(out / CHECKPOINT)
    assert sha256_of(out / CHECKPOINT) == sha256_of(tmp_path / "recovered" / "best.pt")
    assert any(c.startswith("shelfwatch bundle recover") for c in manifest.provenance.commands)
    first = load_bundle(fp32_bundle)
    for graph in ("encoder", "step"):
        a = ort.InferenceSession(str(fp32_bundle / getattr(first.action, graph)))
        b = ort.InferenceSession(str(out / getattr(manifest.action, graph)))
        feed = {i.name: np.random.default_rng(0).normal(size=[d if isinstance(d, int) else 2 for d in i.shape])
                .astype(np.float32) for i in a.get_inputs()}  # fmt: skip
        for left, right in zip(a.run(None, feed), b.run(None, feed), strict=True):
            assert np.abs(left - right).max() <= 1e-4, graph


def test_models_demo_checkpoint_is_what_its_graphs_compute(tmp_path):
    """The committed bundle's checkpoint.pt is the one its manifest records; on the bundle's reference clip it scores
    what the shipped INT8 graphs recorded, and the graphs recover to its LSTM and classifier exactly."""
    demo = ROOT / "models" / "demo"
    manifest = load_bundle(demo)
    assert sha256_of(demo / CHECKPOINT) == manifest.provenance.checkpoint_sha256
    shipped, _ = load_model(demo / CHECKPOINT)
    clip, recorded = reference.load(demo / manifest.reference.file, manifest)
    with torch.no_grad():
        x = torch.from_numpy(to_input(clip.frames, None, shipped.config.input))[None]
        probs = torch.softmax(shipped(x)[0], -1).numpy()
    assert np.abs(probs - recorded.probs).max() <= 0.1
    assert (probs.argmax(1) == recorded.probs.argmax(1)).mean() >= 0.95
    recover(demo, tmp_path / "recovered")
    recovered, _ = load_model(tmp_path / "recovered" / "best.pt")
    for name, tensor in shipped.state_dict().items():
        if name.startswith(("lstm.", "classifier.")):
            assert torch.equal(recovered.state_dict()[name], tensor), name


def test_what_is_not_a_bundle_is_one_line(shelfwatch, tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        result = shelfwatch("bundle", "recover", folder, "--out", tmp_path / "out")
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written for bad input
