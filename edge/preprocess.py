"""The action model's input, defined once: training imports this module, the agent runs it.

A camera frame (BGR, any size) is shrunk to the model's input size (`shrink`, done once per frame and
cached by training), then turned into the network's float input (`to_input`): RGB normalised with the
ImageNet statistics (so locally stored pretrained encoders fit), plus optionally a motion channel,
the grey-level difference to the previous frame, which tells a reach from a retract in one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MOTION_GAIN = 4.0  # differences are small; scaled so that typical motion spans about -1..1


@dataclass(frozen=True)
class InputSpec:
    # The bounds hold where the spec is validated (`shelfwatch train action`): a small CNN's useful range.
    width: Annotated[int, Field(ge=32, le=640, description="model input width in pixels")] = 160
    height: Annotated[int, Field(ge=32, le=480, description="model input height in pixels")] = 120
    motion: Annotated[bool, Field(description="a frame-difference channel beside RGB")] = True

    @property
    def channels(self) -> int:
        return 4 if self.motion else 3


def shrink(frame_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize a camera frame to the model's size (area averaging: it also suppresses sensor noise)."""
    if frame_bgr.shape[1] == spec.width and frame_bgr.shape[0] == spec.height:
        return frame_bgr
    import cv2  # here, not at the top: every `shelfwatch` command reads InputSpec at start, and cv2 loads slowly

    return cv2.resize(frame_bgr, (spec.width, spec.height), interpolation=cv2.INTER_AREA)


def _grey(small_bgr: np.ndarray) -> np.ndarray:
    # ITU-R BT.601 luma, on the last axis (works for one frame or a stack).
    return small_bgr[..., 0] * 0.114 + small_bgr[..., 1] * 0.587 + small_bgr[..., 2] * 0.299


def to_input(small_bgr: np.ndarray, previous_bgr: np.ndarray | None, spec: InputSpec) -> np.ndarray:
    """(T, H, W, 3) uint8 shrunk frames -> (T, C, H, W) float32 network input.

    `previous_bgr` is the frame before the first one (None at the start of a stream: no motion then).
    """
    frames = np.asarray(small_bgr)
    single = frames.ndim == 3
    if single:
        frames = frames[None]
    rgb = frames[..., ::-1].astype(np.float32) / 255.0
    x = ((rgb - MEAN_RGB) / STD_RGB).transpose(0, 3, 1, 2)
    if spec.motion:
        grey = _grey(frames.astype(np.float32)) / 255.0
        before = np.empty_like(grey)
        before[1:] = grey[:-1]
        before[0] = grey[0] if previous_bgr is None else _grey(np.asarray(previous_bgr, np.float32)) / 255.0
        motion = np.clip((grey - before) * MOTION_GAIN, -1.0, 1.0)[:, None]
        x = np.concatenate([x, motion], axis=1)
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x[0] if single else x
