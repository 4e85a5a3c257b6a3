"""Execution providers from the config: `auto` takes TensorRT (with its engine cache), then CUDA, then CPU."""

from pathlib import Path

import pytest

from edge.errors import ShelfWatchError
from edge.providers import choose_providers, open_session

JETSON = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def names(chosen):
    return [name for name, _ in chosen]


def test_auto_prefers_tensorrt_then_cuda_then_cpu():
    chosen = choose_providers("auto", JETSON, cache_dir=Path("/var/lib/shelfwatch/trt"))
    assert names(chosen) == JETSON
    assert chosen[0][1] == {"trt_engine_cache_enable": "True", "trt_engine_cache_path": "/var/lib/shelfwatch/trt",
                            "trt_fp16_enable": "True"}  # fmt: skip
    assert names(choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])) == JETSON[1:]
    assert names(choose_providers("auto", ["CPUExecutionProvider"])) == ["CPUExecutionProvider"]


def test_an_explicit_choice_falls_back_only_to_the_cpu():
    assert names(choose_providers("cuda", JETSON)) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert names(choose_providers("cpu", JETSON)) == ["CPUExecutionProvider"]
    with pytest.raises(ShelfWatchError, match="execution provider tensorrt is not available here"):
        choose_providers("tensorrt", ["CPUExecutionProvider"])
    with pytest.raises(ShelfWatchError, match="unknown execution provider 'npu'"):
        choose_providers("npu", JETSON)


def test_this_machine_runs_on_the_cpu(tmp_path):
    assert names(choose_providers("auto")) == ["CPUExecutionProvider"]
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ShelfWatchError, match=r"broken\.onnx: ONNX Runtime cannot load it"):
        open_session(tmp_path / "broken.onnx")
