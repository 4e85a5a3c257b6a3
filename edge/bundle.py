"""The model bundle: the ONNX files the agent runs and `manifest.json`, which says what they are.

The manifest is the contract between `export/` (which writes it) and the agent (which refuses a bundle
whose files do not match it): every file's sha256, the input sizes and normalisation, the class list and
SKU catalogue, the precision and quantization method, how it was made, and what it scored.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.preprocess import MEAN_RGB, MOTION_GAIN, STD_RGB, InputSpec
from edge.schema import Strict, describe

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20
Precision = Literal["int8", "fp16", "fp32"]
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _plain_name(name: str) -> str:
    # The names are joined to the bundle folder when the agent loads and when `provision` copies: a path
    # (`../../x`, `/etc/x`, `sub/x`) would read or write outside the bundle.
    if not _PLAIN_NAME.fullmatch(name) or name == MANIFEST:
        raise ValueError(f"{name!r} is not a plain file name (letters, digits, '.', '_', '-'; no folders)")
    return name


FileName = Annotated[str, AfterValidator(_plain_name)]


class FileEntry(Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Quantization(Strict):
    """How one graph was made smaller; `method` is what ran, `why` what the measurement said."""

    method: Literal["none", "static-qoperator-u8s8-per-channel", "static-qdq-u8s8-per-channel", "dynamic", "fp16"]
    why: str = ""
    ms_per_run: dict[str, float] = Field(default_factory=dict)  # candidate -> median ms, measured at export


class ActionInput(Strict):
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    motion: bool
    colour: Literal["rgb"] = "rgb"
    mean: tuple[float, float, float] = tuple(float(v) for v in MEAN_RGB)
    std: tuple[float, float, float] = tuple(float(v) for v in STD_RGB)
    motion_gain: float = MOTION_GAIN

    def spec(self) -> InputSpec:
        return InputSpec(width=self.width, height=self.height, motion=self.motion)


class ActionModelEntry(Strict):
    encoder: FileName  # frames (N, C, H, W) -> features (N, F)
    step: FileName  # features (B, F), h, c (1, B, hidden) -> scores (B, classes), h', c'
    sequence: FileName | None = None  # frames (1, T, C, H, W) -> scores (1, T, classes), for offline use
    input: ActionInput
    classes: list[str]
    features: int = Field(gt=0)
    hidden: int = Field(gt=0)
    delay: int = Field(ge=0)  # the score emitted at frame t is for frame t - delay
    quantization: dict[str, Quantization]


class SkuEntry(Strict):
    class_index: int = Field(ge=0)  # the detector's output class
    sku: str
    name: str


class DetectorEntry(Strict):
    model: FileName  # images (1, 3, S, S) RGB 0..1 letterboxed -> (1, 4 + classes, anchors), boxes as cx, cy, w, h
    imgsz: int = Field(gt=0)
    catalog: list[SkuEntry]
    quantization: Quantization


class Provenance(Strict):
    commands: list[str]
    seeds: dict[str, int] = Field(default_factory=dict)
    git_commit: str | None = None
    sources: dict[str, str] = Field(default_factory=dict)  # what each part was exported from


class Manifest(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    bundle_id: str  # a digest of the rest of the manifest, file hashes included (see `bundle_id`)
    created: datetime
    precision: Precision
    target: str  # the execution provider the quantization was chosen for
    action: ActionModelEntry
    detector: DetectorEntry | None = None
    files: dict[FileName, FileEntry]
    provenance: Provenance
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_id(data: dict) -> str:
    """The manifest's digest: everything it says (every file's sha256 included) except `bundle_id` itself, as
    canonical JSON. Any edit to the manifest after export (a swapped catalogue, another delay or input size)
    changes it. It detects mistakes and tampering by hand, not an attacker who recomputes it (that needs a
    signature)."""
    content = {k: v for k, v in data.items() if k != "bundle_id"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def seal(data: dict) -> dict:
    """A manifest (as JSON data) with its `bundle_id` set to what `load_bundle` expects."""
    return {**data, "bundle_id": bundle_id(data)}


def sealed(manifest: Manifest) -> Manifest:
    """The manifest with its `bundle_id`, computed over exactly the JSON it will be written as."""
    return manifest.model_copy(update={"bundle_id": bundle_id(json.loads(manifest.model_dump_json()))})


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:  # json would keep the last silently; the digest and the agent must read one meaning
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def load_bundle(folder: Path) -> Manifest:
    """Read and verify a bundle: every file the manifest names exists and has its recorded sha256."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ShelfWatchError(f"{folder}: no such model bundle (make one with `shelfwatch export`)")
    if not path.is_file():
        raise ShelfWatchError(f"{folder}: not a model bundle (it has no {MANIFEST})")
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ShelfWatchError(f"{path}: {len(raw)} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        manifest = Manifest.model_validate(data)
    except OSError as exc:
        raise ShelfWatchError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ShelfWatchError(f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ShelfWatchError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    except ValidationError as exc:
        raise ShelfWatchError(f"{path}: {describe(exc)}") from None
    except (ValueError, RecursionError) as exc:  # a duplicate key; nesting deeper than Python recurses
        raise ShelfWatchError(f"{path}: not a manifest ({exc or 'nested too deeply'})") from None
    if manifest.action.classes != list(ACTION_CLASSES):
        raise ShelfWatchError(f"{path}: its action classes {manifest.action.classes} are not this agent's")
    named = [manifest.action.encoder, manifest.action.step]
    named += [manifest.detector.model] if manifest.detector else []
    for name in named:
        if name not in manifest.files:
            raise ShelfWatchError(f"{path}: {name} is used but has no sha256 in `files`")
    for name, entry in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise ShelfWatchError(f"{folder}: {name} is missing (the manifest lists it)")
        if sha256_of(file) != entry.sha256:
            raise ShelfWatchError(f"{folder}: {name} does not match its sha256 in the manifest (corrupt or replaced)")
    if bundle_id(data) != manifest.bundle_id:
        raise ShelfWatchError(f"{path}: bundle_id does not match the manifest's content (edited after export?)")
    return manifest


def manifest_schema() -> dict:
    return Manifest.model_json_schema()
