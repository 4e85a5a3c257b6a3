"""ONNX Runtime sessions on the best execution provider a box has.

`auto` prefers TensorRT (engines cached on disk: building one takes minutes on a Jetson), then CUDA,
then the CPU. A provider named explicitly but missing is an error, not a silent fall-back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import onnxruntime as ort

from edge.errors import ShelfWatchError

ProviderChoice = Literal["auto", "tensorrt", "cuda", "cpu"]
_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
_AUTO_ORDER = ("tensorrt", "cuda", "cpu")


def choose_providers(
    choice: ProviderChoice, available: list[str] | None = None, cache_dir: Path | None = None
) -> list[tuple[str, dict[str, str]]]:
    """Providers in ONNX Runtime's (name, options) form, best first; the CPU always closes the list."""
    available = ort.get_available_providers() if available is None else available
    if choice not in (*_NAMES, "auto"):
        raise ShelfWatchError(f"unknown execution provider {choice!r}; choose auto, tensorrt, cuda or cpu")
    wanted = _AUTO_ORDER if choice == "auto" else (choice,)
    if choice != "auto" and _NAMES[choice] not in available:
        raise ShelfWatchError(f"execution provider {choice} is not available here (this ONNX Runtime has "
                              f"{', '.join(available)})")  # fmt: skip
    chosen: list[tuple[str, dict[str, str]]] = []
    for key in wanted:
        name = _NAMES[key]
        if name not in available:
            continue
        options: dict[str, str] = {}
        if key == "tensorrt":
            cache = str(cache_dir or Path("trt-cache"))
            options = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": cache, "trt_fp16_enable": "True"}
        chosen.append((name, options))
    if all(name != _NAMES["cpu"] for name, _ in chosen):
        chosen.append((_NAMES["cpu"], {}))
    return chosen


def open_session(
    path: Path, providers: list[tuple[str, dict[str, str]]] | None = None, threads: int = 0
) -> ort.InferenceSession:
    """One model's session. `threads` = 0 lets ONNX Runtime use every core."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The agent runs several small graphs one after another on few cores: threads that spin-wait after one
    # graph would only take the CPU from the next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=providers or [(_NAMES["cpu"], {})])
    except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
        raise ShelfWatchError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
