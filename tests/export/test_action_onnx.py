"""The action model's ONNX graphs against PyTorch: the per-frame encoder, and the LSTM step graph run frame
by frame over a video against the PyTorch model run on the whole sequence."""

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from edge.action import ActionRecognizer
from edge.bundle import load_bundle
from edge.preprocess import shrink, to_input
from export.action_onnx import export_encoder, export_sequence, export_step
from export.checks import difference
from training.train_action import load_model


def video_frames(folder, limit=120):
    cap = cv2.VideoCapture(str(sorted(folder.glob("*.mp4"))[0]))
    frames = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return np.stack(frames)


def test_encoder_graph_matches_pytorch_on_random_and_real_frames(runs, tmp_path):
    model, _ = load_model(runs["action"] / "best.pt")
    spec = model.config.input
    session = ort.InferenceSession(str(export_encoder(model, tmp_path / "encoder.onnx")))
    frames = np.stack([shrink(f, spec) for f in video_frames(runs["test"], 40)])
    real = to_input(frames, None, spec)
    random = np.random.default_rng(1).normal(size=(8, spec.channels, spec.height, spec.width)).astype(np.float32)
    for x in (real, random):
        onnx_features = session.run(None, {"frames": x})[0]
        with torch.no_grad():
            torch_features = model.encoder(torch.from_numpy(x)).numpy()
        assert onnx_features.shape == (len(x), model.encoder.out_features)
        assert np.abs(onnx_features - torch_features).max() <= 1e-4


def test_step_graph_streamed_over_a_video_equals_pytorch_on_the_whole_sequence(runs, int8_bundle, tmp_path):
    model, _ = load_model(runs["action"] / "best.pt")
    spec = model.config.input
    export_encoder(model, tmp_path / "action_encoder.onnx")
    export_step(model, tmp_path / "action_step.onnx")
    manifest = load_bundle(int8_bundle).model_copy(update={"files": {}})  # same names; FP32 graphs in tmp_path
    recognizer = ActionRecognizer(manifest, tmp_path)
    frames = video_frames(runs["test"])
    streamed = []
    for i, frame in enumerate(frames):
        small = shrink(frame, spec)
        features = recognizer.encode(small[None], shrink(frames[i - 1], spec) if i else None)[0]
        streamed.append(recognizer.step(features))
    with torch.no_grad():
        whole = model(torch.from_numpy(to_input(np.stack([shrink(f, spec) for f in frames]), None, spec))[None])[0]
    assert np.abs(np.stack(streamed) - whole.numpy()).max() <= 1e-4
    # push() is the same path with the softmax applied; reset() starts a new stream.
    recognizer.reset()
    probs = np.stack([recognizer.push(f) for f in frames])
    assert np.allclose(probs, torch.softmax(whole, -1).numpy(), atol=1e-5)


def test_sequence_graph_scores_any_length(runs, tmp_path):
    model, _ = load_model(runs["action"] / "best.pt")
    session = ort.InferenceSession(str(export_sequence(model, tmp_path / "sequence.onnx")))
    spec = model.config.input
    for t in (1, 17):
        x = np.random.default_rng(t).normal(size=(1, t, spec.channels, spec.height, spec.width)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        assert np.abs(session.run(None, {"frames": x})[0] - expected).max() <= 1e-4


def test_the_imagenet_mobilenet_v2_encoder_exports_within_the_parity_limit(tmp_path):
    from edge.preprocess import InputSpec
    from training.action_model import ActionModel, ModelConfig

    model = ActionModel(ModelConfig(encoder="mobilenet_v2", hidden=16, input=InputSpec(96, 72))).eval()
    session = ort.InferenceSession(str(export_encoder(model, tmp_path / "encoder.onnx")))
    x = np.random.default_rng(2).normal(size=(4, 4, 72, 96)).astype(np.float32)
    with torch.no_grad():
        expected = model.encoder(torch.from_numpy(x)).numpy()
    got = session.run(None, {"frames": x})[0]
    assert got.shape == (4, 1280) and np.abs(got - expected).max() <= 1e-4


def test_parity_is_absolute_for_small_values_and_relative_for_large_ones():
    """FP32 rounding grows with the values: an ImageNet backbone's features of 5-10 may differ by 1e-4 in absolute
    terms where a scratch encoder's (under 1) differ by 1e-6; both are the same relative precision."""
    reference = np.array([0.5, 8.0], np.float32)
    assert difference(reference + np.array([2e-4, 0], np.float32), reference) == pytest.approx(2e-4, rel=1e-3)
    assert difference(reference + np.array([0, 8e-4], np.float32), reference) == pytest.approx(1e-4, rel=1e-2)
    assert difference(reference, reference) == 0.0
