"""`shelfwatch bundle recover`: a bundle's action model back as a PyTorch checkpoint, for bundles exported before
`export` kept the checkpoint they came from (`models/demo` was one).

An FP32 step graph (export keeps it so when dynamic INT8 is not faster) gives the LSTM and the classifier back
exactly; a dynamically quantized one gives their INT8 weights dequantized. The encoder graph has every batch norm
folded into the convolution before it (the exporter's eval-mode fusion); the convolutions come back with the folded
weights and biases and each batch norm as the identity, which computes the same function. An INT8 encoder (QOperator
or QDQ) comes back with its weights dequantized: the weights the box runs, as floats, not the FP32 weights they were
rounded from (those are gone); a new export quantizes them again onto the same grid, up to the activation scales its
calibration frames give.

The result is a run folder `export` and `train adapt` take as they are: `best.pt` in the format `train action`
writes and `metrics.json` with the bundle's recorded commands, this command and the checkpoint's sha256.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from edge.bundle import Manifest, load_bundle
from edge.errors import ShelfWatchError
from training.action_model import ActionModel, SlimResNet18
from training.options import ModelConfig
from training.provenance import command_line
from training.train_action import checkpoint_entry, save_atomic


class _Graph:
    """An ONNX graph's initializers and the node making each tensor, with weights read as floats."""

    def __init__(self, path: Path) -> None:
        try:
            self.graph = onnx.load(str(path)).graph
        except Exception as exc:
            raise ShelfWatchError(f"{path}: not an ONNX model ({exc.__class__.__name__})") from None
        self.path = path
        self.init = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.maker = {out: node for node in self.graph.node for out in node.output}

    def const(self, name: str) -> np.ndarray:
        """An initializer, or a DequantizeLinear of initializers (QDQ graphs), as float32."""
        if name in self.init:
            return self.init[name].astype(np.float32)
        node = self.maker.get(name)
        if node is not None and node.op_type == "DequantizeLinear" and all(i in self.init for i in node.input):
            q, scale = self.init[node.input[0]], self.init[node.input[1]]
            zero = self.init[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            return _dequantize(q, scale, zero, axis)
        raise ShelfWatchError(f"{self.path}: {name!r} is not a constant weight; cannot recover from this graph")


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    """Per-tensor (one value) or per-channel (along `axis`) dequantization: (q - zero) * scale."""
    shape = [1] * q.ndim
    shape[axis] = -1
    return ((q.astype(np.float32) - zero.reshape(shape).astype(np.float32)) * scale.reshape(shape)).astype(np.float32)


def _conv_weights(g: _Graph) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every convolution's (weight, bias) by its node's name (the exporter's, which the quantizer suffixes), from an
    FP32, QLinearConv or QDQ graph. Names, not outputs: pre-processing fuses a ReLU into a Conv and takes its output's
    name."""
    convs = {}
    for node in g.graph.node:
        if node.op_type == "Conv":
            weight = g.const(node.input[1])
            bias = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(len(weight), "f4")
        elif node.op_type == "QLinearConv":
            x_scale = g.init[node.input[1]]
            weight = _dequantize(g.init[node.input[3]], g.init[node.input[4]], g.init[node.input[5]], 0)
            # A QLinearConv bias is int32 on the scale x_scale * w_scale (per output channel).
            bias = (g.init[node.input[8]].astype(np.float64) * x_scale * g.init[node.input[4]]).astype(np.float32) \
                if len(node.input) > 8 and node.input[8] else np.zeros(len(weight), "f4")  # fmt: skip
        else:
            continue
        convs[node.name.removesuffix("_quant")] = (weight, bias)
    return convs


def _scope(module_name: str) -> str:
    """The name the TorchScript exporter gives a module's Conv node: stages.2.down.0 ->
    /stages/stages.2/down/down.0/Conv (a Sequential's child is named with its parent)."""
    parts, segments, i = module_name.split("."), [], 0
    while i < len(parts):
        if i + 1 < len(parts) and parts[i + 1].isdigit():
            segments += [parts[i], f"{parts[i]}.{parts[i + 1]}"]
            i += 2
        else:
            segments.append(parts[i])
            i += 1
    return "/" + "/".join(segments) + "/Conv"


def _norm_after(conv_name: str) -> str:
    """The batch norm that follows a convolution in SlimResNet18: conv1 -> bn1, stem.0 -> stem.1, down.0 -> down.1."""
    head, _, last = conv_name.rpartition(".")
    if last.isdigit():
        return f"{head}.{int(last) + 1}"
    return f"{head}.{last.replace('conv', 'bn')}"


@torch.no_grad()
def _load_encoder(encoder: SlimResNet18, convs: dict[str, tuple[np.ndarray, np.ndarray]], g: _Graph) -> None:
    modules = dict(encoder.named_modules())
    wanted = {name: _scope(name) for name, m in modules.items() if isinstance(m, torch.nn.Conv2d)}
    missing = [name for name, scope in wanted.items() if scope not in convs]
    if missing or len(convs) != len(wanted):
        raise ShelfWatchError(f"{g.path}: its {len(convs)} convolutions do not line up with a resnet18-slim encoder's "
                              f"{len(wanted)} (missing {', '.join(missing[:3]) or 'none'})")  # fmt: skip
    for name, scope in wanted.items():
        weight, bias = convs[scope]
        conv, norm = modules[name], modules[_norm_after(name)]
        if tuple(conv.weight.shape) != weight.shape:
            raise ShelfWatchError(f"{g.path}: {name} has shape {weight.shape}, the encoder {tuple(conv.weight.shape)}")
        conv.weight.copy_(torch.from_numpy(weight))
        # The identity batch norm: (x - 0) / sqrt(1 + eps) * sqrt(1 + eps) + bias.
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
        norm.weight.copy_(torch.sqrt(norm.running_var + norm.eps))
        norm.bias.copy_(torch.from_numpy(bias))


def _onnx_lstm_to_torch(w: np.ndarray) -> torch.Tensor:
    """ONNX orders an LSTM's gates i, o, f, c; PyTorch i, f, g (= c), o."""
    i, o, f, c = np.split(w, 4, axis=0)
    return torch.from_numpy(np.concatenate([i, f, c, o]).copy())


def _lstm_weights(g: _Graph, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, R, B) of one direction in ONNX's layout, from an LSTM or a dynamically quantized one (com.microsoft's
    DynamicQuantizeLSTM keeps W and R transposed, INT8, with a scale and zero point per tensor or per column)."""
    if node.op_type == "LSTM":
        w, r, b = (g.const(name)[0] for name in node.input[1:4])
        return w, r, b
    # (directions, features, 4 * hidden), with one scale per direction or per column (axis 2).
    x = node.input
    w = _dequantize(g.init[x[1]], g.init[x[8]].reshape(-1), g.init[x[9]].reshape(-1), 2)[0].T
    r = _dequantize(g.init[x[2]], g.init[x[10]].reshape(-1), g.init[x[11]].reshape(-1), 2)[0].T
    return w, r, g.const(node.input[3])[0]


def _classifier_weights(g: _Graph) -> tuple[np.ndarray, np.ndarray]:
    """(weight (classes, features), bias) from a Gemm, or from dynamic quantization's MatMulInteger and its Add."""
    gemm = [n for n in g.graph.node if n.op_type == "Gemm"]
    if len(gemm) == 1:
        weight = g.const(gemm[0].input[1])
        transposed = next((a.i for a in gemm[0].attribute if a.name == "transB"), 0)
        return (weight if transposed else weight.T.copy()), g.const(gemm[0].input[2])
    matmul = [n for n in g.graph.node if n.op_type == "MatMulInteger"]
    adds = [n for n in g.graph.node if n.op_type == "Add" and any(i in g.init for i in n.input)]
    if len(matmul) != 1 or len(adds) != 1:
        raise ShelfWatchError(f"{g.path}: no linear classifier (a Gemm, or a MatMulInteger and its bias) found")
    base = matmul[0].input[1].removesuffix("_quantized")
    weight = _dequantize(g.init[matmul[0].input[1]], g.init[f"{base}_scale"], g.init[matmul[0].input[3]], 1)
    return weight.T.copy(), g.const(next(i for i in adds[0].input if i in g.init))


@torch.no_grad()
def _load_step(model: ActionModel, g: _Graph) -> None:
    lstm_nodes = [n for n in g.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM")]
    if len(lstm_nodes) != 1 or model.lstm is None:
        raise ShelfWatchError(f"{g.path}: not a step graph of one LSTM and a linear classifier")
    w, r, b = _lstm_weights(g, lstm_nodes[0])
    hidden = model.config.hidden
    model.lstm.weight_ih_l0.copy_(_onnx_lstm_to_torch(w))
    model.lstm.weight_hh_l0.copy_(_onnx_lstm_to_torch(r))
    model.lstm.bias_ih_l0.copy_(_onnx_lstm_to_torch(b[: 4 * hidden]))
    model.lstm.bias_hh_l0.copy_(_onnx_lstm_to_torch(b[4 * hidden :]))
    weight, bias = _classifier_weights(g)
    model.classifier.weight.copy_(torch.from_numpy(weight))
    model.classifier.bias.copy_(torch.from_numpy(bias))


def model_config(manifest: Manifest, convs: dict[str, tuple[np.ndarray, np.ndarray]], encoder: _Graph) -> ModelConfig:
    """The checkpoint's shape from the manifest (input, hidden, delay) and the encoder's first convolution (width)."""
    first = next(iter(convs.values()))[0]
    spec = manifest.action.input
    config = ModelConfig(encoder="resnet18-slim", width=first.shape[0], head="lstm", hidden=manifest.action.hidden,
                         delay=manifest.action.delay,
                         input=spec.spec())  # fmt: skip
    if first.shape[1] != config.input.channels or first.shape[0] * 8 != manifest.action.features:
        raise ShelfWatchError(f"{encoder.path}: not a resnet18-slim encoder (first convolution {first.shape}, "
                              f"{manifest.action.features} features)")  # fmt: skip
    return config


def recover(bundle: Path, out: Path) -> dict:
    """Write OUT/best.pt and OUT/metrics.json from BUNDLE's action graphs; return the metrics."""
    manifest = load_bundle(bundle)
    encoder_graph = _Graph(bundle / manifest.action.encoder)
    convs = _conv_weights(encoder_graph)
    config = model_config(manifest, convs, encoder_graph)
    model = ActionModel(config)
    assert isinstance(model.encoder, SlimResNet18)  # model_config builds no other
    _load_encoder(model.encoder, convs, encoder_graph)
    _load_step(model, _Graph(bundle / manifest.action.step))
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    save_atomic({"config": config.to_dict(), "model": model.state_dict(), "step": 0, "options": {},
                 "source": {"bundle": str(bundle), "bundle_id": manifest.bundle_id}}, out / "best.pt")  # fmt: skip
    quantized = {name: q.method for name, q in manifest.action.quantization.items()}
    metrics = {
        "model": config.to_dict(),
        "recovered_from": {"bundle": str(bundle), "bundle_id": manifest.bundle_id, "quantization": quantized},
        "command": command_line(),
        "commands": [*manifest.provenance.commands, command_line()],
        "checkpoint": checkpoint_entry(out / "best.pt"),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
