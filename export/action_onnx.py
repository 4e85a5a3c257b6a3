"""The CNN-LSTM action model as ONNX graphs the edge can stream: an encoder graph (frames -> features),
run once per frame, and a step graph (features, h, c -> scores, h', c') that carries the LSTM state.
A whole-sequence graph is available for offline scoring."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edge.errors import ShelfWatchError
from training.action_model import ActionModel

OPSET = 17


class _Step(nn.Module):
    def __init__(self, model: ActionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.step(features, h, c)


class _Sequence(nn.Module):
    def __init__(self, model: ActionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict) -> Path:
    module.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter (ultralytics uses it too) warns about LSTM batch sizes and its own future.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), dynamo=False, opset_version=OPSET, input_names=inputs, output_names=outputs,
            dynamic_axes=axes,
        )  # fmt: skip
    return path


def input_example(model: ActionModel, n: int = 1) -> torch.Tensor:
    spec = model.config.input
    return torch.randn(n, spec.channels, spec.height, spec.width)


def export_encoder(model: ActionModel, path: Path) -> Path:
    return _export(model.encoder, (input_example(model, 2),), path, ["frames"], ["features"],
                   {"frames": {0: "n"}, "features": {0: "n"}})  # fmt: skip


def check_streams(model: ActionModel) -> None:
    if model.lstm is None or model.lstm.bidirectional:
        raise ShelfWatchError("only a uni-directional LSTM model streams; export a run's best.pt (head lstm)")


def export_step(model: ActionModel, path: Path) -> Path:
    check_streams(model)
    f, hidden = model.encoder.out_features, model.config.hidden
    args = (torch.randn(1, f), torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden))
    return _export(_Step(model), args, path, ["features", "h", "c"], ["scores", "h_out", "c_out"],
                   {"features": {0: "b"}, "h": {1: "b"}, "c": {1: "b"}, "scores": {0: "b"}, "h_out": {1: "b"},
                    "c_out": {1: "b"}})  # fmt: skip


def export_sequence(model: ActionModel, path: Path) -> Path:
    frames = input_example(model, 3)[None]
    return _export(_Sequence(model), (frames,), path, ["frames"], ["scores"],
                   {"frames": {1: "t"}, "scores": {1: "t"}})  # fmt: skip
