"""Where training computes (`--device auto|cpu|cuda`) and how its checkpoints stay device-free.

The device is a property of the run, not of the model: it is never stored in the options a checkpoint carries (so
`--resume` and `export` read a run the same whichever device trained it), and every checkpoint is written with CPU
tensors (`to_cpu`), so that export, the benches and the CPU-only tools load it unchanged. On the CPU nothing here
copies or changes anything: a CPU run is bit for bit what it was before devices existed.
"""

from __future__ import annotations

import copy
from typing import Literal, TypeVar

import torch
from torch import nn

from edge.errors import ShelfWatchError

DeviceChoice = Literal["auto", "cpu", "cuda"]
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")

T = TypeVar("T")


def resolve_device(choice: str) -> torch.device:
    """`--device` -> a torch device; asking for CUDA where PyTorch has none is one line, not a crash at the first
    tensor moved."""
    if choice not in DEVICE_CHOICES:
        raise ShelfWatchError(f"--device {choice!r}: choose auto, cpu or cuda")
    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        built = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ShelfWatchError(f"--device cuda: PyTorch {torch.__version__} ({built}) sees no CUDA GPU here; "
                              "use --device cpu or auto")  # fmt: skip
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and cuda) else "cpu")


def describe(device: torch.device) -> str:
    """What a run prints and records about where it trained, e.g. 'cuda (NVIDIA H100 80GB HBM3)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def device_of(module: nn.Module) -> torch.device:
    """The device a model's weights are on: the helpers that run it send their inputs there."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def to_cpu(obj: T) -> T:
    """Tensors anywhere in nested dicts, lists and tuples moved to the CPU (what every checkpoint is saved with).

    Dicts are shallow-copied with `copy.copy`, which keeps a state dict's type and its `_metadata` (module versions
    that `load_state_dict` reads); a tensor already on the CPU is returned as it is, so a CPU checkpoint's bytes are
    unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()  # type: ignore[return-value]
    if isinstance(obj, dict):
        out = copy.copy(obj)
        for key, value in obj.items():
            out[key] = to_cpu(value)
        return out  # type: ignore[return-value]
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]  # type: ignore[return-value]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)  # type: ignore[return-value]
    return obj
