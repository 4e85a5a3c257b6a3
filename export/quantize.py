"""Smaller graphs for the edge, chosen by measurement.

Static INT8 for the convolutional graphs (encoder, detector) with calibration frames drawn from videos,
after ONNX Runtime's `quant_pre_process`. Which format wins depends on the execution provider: on x86
CPUs without VNNI, QOperator U8S8 per-channel (with 7-bit weights, `reduce_range`, against the AVX2
saturation problem) has beaten FP32 for ResNet-style encoders while QDQ without pre-processing was
slower; TensorRT wants QDQ. So for the CPU both INT8 formats are timed against FP32 on this machine and
the fastest is kept — FP32 itself if INT8 gains nothing. The LSTM step is quantized dynamically.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge.bundle import Quantization

# INT8 must be clearly faster to be worth its accuracy risk.
MIN_GAIN = 1.05


class Frames(CalibrationDataReader):
    """Feeds calibration inputs to ONNX Runtime's calibrator, one at a time."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.name, self.batches = name, batches
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch}

    def rewind(self) -> None:
        self._it = iter(self.batches)


def median_ms(path: Path, feed: dict[str, np.ndarray], runs: int = 30, threads: int = 0) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the agent runs its graphs
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice on the root logger; what we chose is recorded in the manifest."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _static(src: Path, dst: Path, reader: Frames, fmt: QuantFormat, exclude: list[str]) -> Path:
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        reader.rewind()
        quantize_static(
            str(prepared), str(dst), reader, quant_format=fmt, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=True, reduce_range=fmt == QuantFormat.QOperator,
            nodes_to_exclude=exclude,
        )  # fmt: skip
    _keep_metadata(src, dst)
    return dst


def _keep_metadata(src: Path, dst: Path) -> None:
    # ultralytics stores names, stride and imgsz in the graph's metadata; its tools read them back.
    props = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    if not props:
        return
    model = onnx.load(str(dst))
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(dst))


def quantize_conv_graph(
    src: Path, dst: Path, reader: Frames, feed: dict[str, np.ndarray], target: str, exclude: list[str] | None = None
) -> Quantization:
    """Static INT8 of `src` into `dst`, in the format measured fastest for `target` (FP32 if none gains)."""
    exclude = exclude or []
    if target == "tensorrt":
        _static(src, dst, reader, QuantFormat.QDQ, exclude)
        return Quantization(method="static-qdq-u8s8-per-channel", why="TensorRT builds INT8 engines from QDQ graphs")
    with tempfile.TemporaryDirectory() as tmp:
        qop = _static(src, Path(tmp) / "qoperator.onnx", reader, QuantFormat.QOperator, exclude)
        qdq = _static(src, Path(tmp) / "qdq.onnx", reader, QuantFormat.QDQ, exclude)
        ms = {"fp32": median_ms(src, feed), "qoperator": median_ms(qop, feed), "qdq": median_ms(qdq, feed)}
        best = min(("qoperator", "qdq"), key=ms.get)
        if ms["fp32"] / ms[best] < MIN_GAIN:
            dst.write_bytes(src.read_bytes())
            why = f"INT8 ({best}) ran {ms['fp32'] / ms[best]:.2f}x FP32's speed on the CPU: not worth it, kept FP32"
            return Quantization(method="none", why=why, ms_per_run=ms)
        dst.write_bytes((qop if best == "qoperator" else qdq).read_bytes())
    method = "static-qoperator-u8s8-per-channel" if best == "qoperator" else "static-qdq-u8s8-per-channel"
    why = f"fastest on the CPU: {ms['fp32'] / ms[best]:.2f}x FP32"
    return Quantization(method=method, why=why, ms_per_run=ms)


def quantize_step_graph(src: Path, dst: Path, feed: dict[str, np.ndarray]) -> Quantization:
    """Dynamic INT8 of the LSTM step (weights INT8, activations quantized on the fly), kept if not slower."""
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        q = Path(tmp) / "dynamic.onnx"
        quantize_dynamic(str(src), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM", "Gemm", "MatMul"])
        ms = {"fp32": median_ms(src, feed, runs=200), "dynamic": median_ms(q, feed, runs=200)}
        if ms["fp32"] / ms["dynamic"] < 1.0:
            dst.write_bytes(src.read_bytes())
            why = f"dynamic INT8 ran {ms['fp32'] / ms['dynamic']:.2f}x FP32's speed: kept FP32"
            return Quantization(method="none", why=why, ms_per_run=ms)
        dst.write_bytes(q.read_bytes())
    return Quantization(method="dynamic", why=f"{ms['fp32'] / ms['dynamic']:.2f}x FP32 on the CPU", ms_per_run=ms)


def to_fp16(src: Path, dst: Path) -> Quantization:
    """FP16 weights and arithmetic for GPUs; inputs and outputs stay FP32 so callers need not change."""
    from onnxruntime.transformers import float16

    # Resize's scales must stay FP32 (a known limit of the converter, which it does not block itself).
    blocked = [*float16.DEFAULT_OP_BLOCK_LIST, "Resize"]
    model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=blocked)
    onnx.save(model, str(dst))
    return Quantization(method="fp16", why="half precision for GPU execution providers")
