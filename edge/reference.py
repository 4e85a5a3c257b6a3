"""A bundle's reference clip: a second of video stored in the bundle with the outputs its graphs gave on it where it
was made, so that a box can check, before it switches to the bundle, that the graphs give those outputs on its own
execution provider (`edge.gate`).

The clip is a file the manifest lists (`reference.npz`, so its sha256 and the bundle's signature cover it) and the
manifest's `reference` field (added in v1) names it. It holds, losslessly (PNG, so every box decodes the same
pixels):
- `frames`: REFERENCE_FRAMES consecutive frames, shrunk to the action model's input size as the agent shrinks them;
- `images`: every DETECT_EVERY-th of those frames at the detector's input size (its longer side);
- the outputs recorded: the action model's per-frame probabilities, and the detector's sightings down to
  RECORD_FLOOR (lower than the agent's floor, so that a sighting whose score crosses the floor on another provider
  is still found).

Bounds: a box's outputs pass when they cost no more than the export itself allows a reduced precision to cost
(`MAX_DROP`, which `export/bundle.py` applies on held-out data): at most 1 % of the frames labelled otherwise by the
agent's own smoothing, at most 2 % of the sightings missing or new, each with at least one frame or sighting of slack
(a 32-frame clip cannot express 1 %). `TOLERANCE` (FP32 ONNX against PyTorch on the exporting machine) is not a
bound here, since another provider's kernels (TensorRT's FP16, another CPU's INT8) legitimately differ by more: the
comparison only says whether the scores matched within it.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle import Manifest
from edge.detector import SIGHTING_FLOOR, ProductDetector
from edge.errors import ShelfWatchError
from edge.preprocess import shrink
from edge.segments import segment_scores, segments_to_frames

REFERENCE = "reference.npz"
REFERENCE_FRAMES = 32  # a second of video: enough for the LSTM's delay and the smoothing window to settle
DETECT_EVERY = 8  # the detector runs on every 8th frame: 4 images
RECORD_FLOOR = 0.1  # sightings are recorded down to here; the comparison is made at the agent's SIGHTING_FLOOR
IOU_SAME = 0.5  # two sightings of one class overlapping this much are the same product (mAP50's rule)
# The precision rules of `shelfwatch export` (export/bundle.py uses these): the most a reduced precision may cost on
# held-out data before a graph ships in FP32 instead (frame accuracy; mAP50), and how far FP32 ONNX may differ from
# PyTorch (max |difference|, relative above 1).
MAX_DROP = {"action": 0.01, "detector": 0.02}
TOLERANCE = 1e-4
MAX_REFERENCE_BYTES = 16 << 20
_MAX_MEMBER_BYTES = 64 << 20  # any one array, decompressed (a header cannot make the box allocate more)
_ARRAYS = ("frames_png", "frames_end", "images_png", "images_end", "probs", "det_image", "det_box", "det_class",
           "det_conf")  # fmt: skip

Sighting = tuple[tuple[float, float, float, float], int, float]  # box (x1, y1, x2, y2), class, confidence


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8 BGR at the action model's input size
    images: np.ndarray  # (K, H', W', 3) uint8 BGR, the longer side the detector's input size (empty: no detector)


@dataclass(frozen=True)
class Outputs:
    probs: np.ndarray  # (T, classes) float32
    sightings: list[list[Sighting]]  # per image, down to RECORD_FLOOR


@dataclass(frozen=True)
class Parity:
    ok: bool
    detail: str  # one line: how close, and the bound that applied


class Models:
    """A bundle's graphs as the agent runs them (the action model frame by frame, the detector when it has one)."""

    def __init__(self, manifest: Manifest, folder: Path, providers: list | None = None, threads: int = 0) -> None:
        from edge.action import ActionRecognizer

        self.manifest = manifest
        self.action = ActionRecognizer(manifest, folder, providers, threads)
        self.detector = (ProductDetector(manifest, folder, providers, threads, conf=RECORD_FLOOR)
                         if manifest.detector is not None else None)  # fmt: skip

    def sessions(self) -> list:
        out = [self.action.encoder, self.action.step_graph]
        return out + ([self.detector.session] if self.detector is not None else [])

    def frame(self, small: np.ndarray) -> np.ndarray:
        return self.action.push(small)

    def image(self, image: np.ndarray) -> list[Sighting]:
        assert self.detector is not None
        return [(d.box, d.class_index, d.confidence) for d in self.detector(image)]


def clip_from_frames(frames_bgr: Sequence[np.ndarray], manifest: Manifest) -> Clip:
    """Camera frames (any size) -> the clip as this bundle's graphs see it."""
    spec = manifest.action.input.spec()
    small = np.stack([shrink(f, spec) for f in frames_bgr])
    if manifest.detector is None:
        return Clip(small, np.zeros((0, 1, 1, 3), np.uint8))
    import cv2

    size = manifest.detector.imgsz
    images = []
    for f in frames_bgr[::DETECT_EVERY]:
        h, w = f.shape[:2]
        r = min(size / h, size / w)
        images.append(cv2.resize(f, (round(w * r), round(h * r)), interpolation=cv2.INTER_LINEAR))
    return Clip(small, np.stack(images))


def run(models: Models, clip: Clip) -> Outputs:
    """The graphs over the clip, from a fresh state: what is recorded at export and compared on the box."""
    models.action.reset()
    probs = np.stack([models.frame(f) for f in clip.frames]).astype(np.float32)
    sightings = [models.image(i) for i in clip.images] if models.detector is not None else []
    return Outputs(probs, sightings)


def labels(probs: np.ndarray) -> np.ndarray:
    """Each frame's action as the agent's own smoothing reports it."""
    return segments_to_frames(segment_scores(probs), len(probs))


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _unmatched(strong: list[list[Sighting]], other: list[list[Sighting]]) -> int:
    """Sightings at or above the agent's floor in `strong` that `other` does not have at all (same class, IoU ≥ 0.5,
    at any recorded confidence)."""
    missing = 0
    for mine, theirs in zip(strong, other, strict=True):
        for box, cls, conf in mine:
            if conf >= SIGHTING_FLOOR and not any(c == cls and _iou(box, b) >= IOU_SAME for b, c, _ in theirs):
                missing += 1
    return missing


def allowed(share: float, total: int) -> int:
    """How many of `total` may differ at `share`, rounded down, and at least one."""
    return max(1, math.floor(share * total + 1e-9))


def compare(recorded: Outputs, got: Outputs) -> Parity:
    """Whether `got` (the box) costs no more than MAX_DROP against `recorded` (the export): see the module's text."""
    if recorded.probs.shape != got.probs.shape or len(recorded.sightings) != len(got.sightings):
        return Parity(False, f"outputs of shape {got.probs.shape}, recorded {recorded.probs.shape}")
    if not np.isfinite(got.probs).all():
        return Parity(False, "the action model gives non-finite scores")
    frames = len(recorded.probs)
    differ = int((labels(recorded.probs) != labels(got.probs)).sum())
    may = allowed(MAX_DROP["action"], frames)
    worst = float(np.abs(recorded.probs - got.probs).max()) if frames else 0.0
    same = "within" if worst <= TOLERANCE else "beyond"
    action = (f"{differ} of {frames} frames labelled otherwise than at export (at most {may}); scores {same} "
              f"{TOLERANCE:g} of the export's (max difference {worst:.2g})")  # fmt: skip
    if differ > may:
        return Parity(False, f"reference clip: {action}")
    if not recorded.sightings:
        return Parity(True, f"reference clip: {action}")
    strong = sum(c >= SIGHTING_FLOOR for image in recorded.sightings for _, _, c in image)
    strong_got = sum(c >= SIGHTING_FLOOR for image in got.sightings for _, _, c in image)
    off = _unmatched(recorded.sightings, got.sightings) + _unmatched(got.sightings, recorded.sightings)
    may_det = allowed(MAX_DROP["detector"], max(strong, strong_got))
    detector = f"{off} of {max(strong, strong_got)} product sightings missing or new (at most {may_det})"
    return Parity(off <= may_det, f"reference clip: {action}; {detector}")


# -- the file ---------------------------------------------------------------------------------------------------


def _pngs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    blobs = [cv2.imencode(".png", i, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes() for i in images]
    data = np.frombuffer(b"".join(blobs), np.uint8) if blobs else np.zeros(0, np.uint8)
    return data, np.cumsum([len(b) for b in blobs]).astype(np.int64)


def _unpng(data: np.ndarray, ends: np.ndarray, what: str) -> np.ndarray:
    import cv2

    out, start = [], 0
    for end in ends.tolist():
        if not start <= end <= len(data):
            raise ValueError(f"{what}: offsets out of range")
        image = cv2.imdecode(data[start:end], cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{what}: an image does not decode")
        out.append(image)
        start = end
    if out and len({i.shape for i in out}) != 1:
        raise ValueError(f"{what}: images of different sizes")
    return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def save(path: Path, clip: Clip, outputs: Outputs) -> None:
    frames, frames_end = _pngs(clip.frames)
    images, images_end = _pngs(clip.images)
    flat = [(i, s) for i, image in enumerate(outputs.sightings) for s in image]
    arrays = {
        "frames_png": frames, "frames_end": frames_end, "images_png": images, "images_end": images_end,
        "probs": outputs.probs.astype(np.float32),
        "det_image": np.array([i for i, _ in flat], np.int32),
        "det_box": np.array([s[0] for _, s in flat], np.float32).reshape(-1, 4),
        "det_class": np.array([s[1] for _, s in flat], np.int32),
        "det_conf": np.array([s[2] for _, s in flat], np.float32),
    }  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # PNG inside: compressing again gains nothing
    path.write_bytes(buffer.getvalue())


def load(path: Path, manifest: Manifest) -> tuple[Clip, Outputs]:
    """The clip and its recorded outputs; ShelfWatchError in one line when the file is not a reference clip that
    fits this bundle."""
    try:
        if path.stat().st_size > MAX_REFERENCE_BYTES:
            raise ValueError(f"larger than {MAX_REFERENCE_BYTES >> 20} MiB")
        with zipfile.ZipFile(path) as z:
            names = {i.filename: i.file_size for i in z.infolist()}
        if sorted(names) != sorted(f"{a}.npy" for a in _ARRAYS) or max(names.values()) > _MAX_MEMBER_BYTES:
            raise ValueError("not the arrays of a reference clip")
        with np.load(path, allow_pickle=False) as npz:
            a = {name: npz[name] for name in _ARRAYS}
        clip = Clip(_unpng(a["frames_png"], a["frames_end"], "frames"), _unpng(a["images_png"], a["images_end"],
                                                                              "images"))  # fmt: skip
        probs = a["probs"]
        spec = manifest.action.input
        if clip.frames.shape[1:3] != (spec.height, spec.width) or len(clip.frames) < 2:
            raise ValueError(f"frames of {clip.frames.shape[1:3]}, the model takes {(spec.height, spec.width)}")
        if probs.dtype != np.float32 or probs.shape != (len(clip.frames), len(manifest.action.classes)):
            raise ValueError(f"recorded scores of shape {probs.shape}")
        images = len(clip.images) if manifest.detector is not None else 0
        index, boxes, classes, conf = a["det_image"], a["det_box"], a["det_class"], a["det_conf"]
        n = len(index)
        if (
            boxes.shape != (n, 4)
            or classes.shape != (n,)
            or conf.shape != (n,)
            or (n and not 0 <= index.min() <= index.max() < images)
        ):
            raise ValueError("recorded sightings that do not fit its images")  # fmt: skip
        sightings: list[list[Sighting]] = [[] for _ in range(images)]
        for i, box, cls, c in zip(index.tolist(), boxes.tolist(), classes.tolist(), conf.tolist(), strict=True):
            sightings[i].append((tuple(box), cls, c))
    except ValueError as exc:
        raise ShelfWatchError(f"{path}: not a usable reference clip ({exc})") from None
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ShelfWatchError(f"{path}: not a usable reference clip ({exc})") from None
    return clip, Outputs(probs, sightings)
