"""The model bundle: the ONNX files the agent runs and `manifest.json`, which says what they are.

The manifest is the contract between `export/` (which writes it) and the agent (which refuses a bundle
whose files do not match it): every file's sha256, the input sizes and normalisation, the class list and
SKU catalogue, the precision and quantization method, how it was made, and what it scored.

Versions (the README's "Versions: which agent runs which bundle" is the rule in full):
- `schema_version` is the manifest's format. Within a version, an export may add optional fields; an agent
  ignores the fields it does not know (and says which), so older agents keep running newer bundles. A bundle
  that does not use an added field does not carry it (`ADDED_IN_V1` and `provenance.checkpoint_sha256` are left out
  when empty). A change that an agent ignoring it would get wrong (a field renamed, removed or changing meaning)
  bumps the version; an agent refuses a newer version with one line naming both.
- `requires_agent`: an added field that an older agent must not ignore makes the export set the first agent
  version that understands it; an older agent refuses the bundle with one line naming both versions.
Signatures (`signature.json`, checked by `edge.signing`) cover the manifest's bytes, unknown fields included.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_serializer

from edge import __version__ as AGENT_VERSION
from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.preprocess import MEAN_RGB, MOTION_GAIN, STD_RGB, InputSpec
from edge.schema import Strict, describe
from edge.signing import SIGNATURE, TrustedKey, check_signature

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
# The training checkpoint `export` leaves beside the manifest (its sha256: `provenance.checkpoint_sha256`), for
# `train adapt --from BUNDLE`. Not listed under `files`: a box never receives it.
CHECKPOINT = "checkpoint.pt"
VERSION = re.compile(r"(\d{1,6})\.(\d{1,6})\.(\d{1,6})")
# Fields added within schema version 1, written only when a bundle uses them: an agent from before a field was
# added refuses a manifest that carries it (agents up to the one that introduced these rules were strict).
ADDED_IN_V1 = frozenset({"requires_agent", "reference", "familiarity"})
MAX_MANIFEST_BYTES = 1 << 20
Precision = Literal["int8", "fp16", "fp32"]
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _plain_name(name: str) -> str:
    # The names are joined to the bundle folder when the agent loads and when `provision` copies: a path
    # (`../../x`, `/etc/x`, `sub/x`) would read or write outside the bundle.
    if not _PLAIN_NAME.fullmatch(name) or name in (MANIFEST, SIGNATURE):
        raise ValueError(f"{name!r} is not a plain file name (letters, digits, '.', '_', '-'; no folders)")
    return name


def is_plain_name(name: str) -> bool:
    """A bundle file's name as the manifest allows it (see `_plain_name`)."""
    return _PLAIN_NAME.fullmatch(name) is not None


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


class ReferenceEntry(Strict):
    """Added in v1: a short clip with the outputs the bundle's graphs gave on it where it was made (`edge.reference`),
    which a box's health gate compares with its own before it switches to the bundle."""

    file: FileName  # listed under `files`, so its sha256 (and the signature) covers it
    frames: int = Field(ge=2, le=1000)
    images: int = Field(ge=0, le=1000)  # of them, those the detector ran on
    source: str = Field(max_length=512, description="where the frames came from (a video and its frame range)")
    provider: str = Field(max_length=64, description="the execution provider the outputs were recorded with")


class Provenance(Strict):
    commands: list[str]
    seeds: dict[str, int] = Field(default_factory=dict)
    git_commit: str | None = None
    sources: dict[str, str] = Field(default_factory=dict)  # what each part was exported from
    checkpoint_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description=(
        "Optional (added in v1): the sha256 of the PyTorch checkpoint (state dict) the action model was exported "
        "from, which leads the bundle back to its weights (`shelfwatch train adapt --from` checks it); absent in "
        "bundles exported before it"))  # fmt: skip

    @model_serializer(mode="wrap")
    def _leave_out_unused_additions(self, handler: Any) -> Any:
        # Written only when known, so that a manifest without it reads as before to agents that are strict.
        data = handler(self)
        if isinstance(data, dict) and data.get("checkpoint_sha256") is None:
            data.pop("checkpoint_sha256", None)
        return data


class FitData(Strict):
    """Which video a familiarity description was fitted or calibrated on."""

    source: str = Field(max_length=512, description="the folder, and which videos of it")
    videos: int = Field(ge=1)
    frames: int = Field(ge=1, description="scored frames (those the motion gate let through)")


class FamiliarityEntry(Strict):
    """Added in v1, optional: how like the training video a frame's encoder features are (`edge.familiarity`).
    An agent that does not know it runs the bundle as before (familiarity unknown)."""

    file: FileName  # npz: `means` (classes, features), `whiten` (features, features)
    method: Literal["mahalanobis-tied-ledoit-wolf"] = Field(description=(
        "one Gaussian per action class with one shared covariance, shrunk towards a multiple of the identity "
        "(Ledoit-Wolf); a frame's score is its Mahalanobis distance to the nearest class mean"))  # fmt: skip
    features: int = Field(gt=0)
    shrinkage: float = Field(ge=0, le=1, description="the Ledoit-Wolf weight of the identity target")
    window_s: float = Field(gt=0, le=60, description="scores are averaged over this many seconds of scored frames")
    threshold: float = Field(gt=0, description="a window mean at or above this is unfamiliar")
    quantile: float = Field(gt=0, lt=1, description="the threshold is this quantile of the calibration windows")
    fitted_on: FitData
    calibrated_on: FitData
    measured: dict[str, float] = Field(default_factory=dict, description=(
        "what the calibration measured: the share of calibration frames flagged, score percentiles"))  # fmt: skip


def version_key(version: str) -> tuple[int, int, int]:
    """`0.1.0` -> (0, 1, 0); a suffix (`0.2.0.dev1`, `0.2.0+local`) is not compared."""
    match = VERSION.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a version (MAJOR.MINOR.PATCH)")
    return (int(match[1]), int(match[2]), int(match[3]))


class Manifest(Strict):
    """A model bundle's manifest.json, schema version 1. Within a version, newer exports may add optional fields: a
    reader ignores the fields it does not know (this schema lists the ones it knows) and refuses a newer
    `schema_version` or `requires_agent`."""

    schema_version: Literal[1] = SCHEMA_VERSION
    requires_agent: str | None = Field(default=None, pattern=f"^{VERSION.pattern}$", description=(
        "Optional (added in v1): the oldest agent version that runs this bundle correctly; absent: every agent "
        "that reads its schema_version."))  # fmt: skip
    bundle_id: str  # a digest of the rest of the manifest, file hashes included (see `bundle_id`)
    created: datetime
    precision: Precision
    target: str  # the execution provider the quantization was chosen for
    action: ActionModelEntry
    detector: DetectorEntry | None = None
    files: dict[FileName, FileEntry]
    provenance: Provenance
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    reference: ReferenceEntry | None = Field(default=None, description=(
        "Optional (added in v1): the reference clip the health gate of a box compares outputs on before switching "
        "to the bundle."))  # fmt: skip
    familiarity: FamiliarityEntry | None = Field(default=None, description=(
        "Optional (added in v1): the familiarity guard's statistics and calibrated threshold; absent: familiarity "
        "is unknown on the box"))  # fmt: skip

    @model_serializer(mode="wrap")
    def _leave_out_unused_additions(self, handler: Any) -> Any:
        data = handler(self)
        for name in ADDED_IN_V1:
            if isinstance(data, dict) and data.get(name) is None:
                data.pop(name, None)
        return data


@dataclass(frozen=True)
class Bundle:
    """A bundle as the agent checked it: its manifest, the trusted key that signed it (None: no keys were given,
    the signature was not checked) and the fields it carries that this agent does not know (ignored)."""

    manifest: Manifest
    signed_by: TrustedKey | None
    ignored: tuple[str, ...]


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


def load_bundle(folder: Path, keys: Sequence[TrustedKey] = ()) -> Manifest:
    """Read and verify a bundle: every file the manifest names exists and has its recorded sha256 (and, given
    `keys`, the manifest is signed by one of them)."""
    return read_bundle(folder, keys).manifest


def read_bundle(folder: Path, keys: Sequence[TrustedKey] = ()) -> Bundle:
    """`load_bundle`, saying also who signed it and what it carries that this agent ignores."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ShelfWatchError(f"{folder}: no such model bundle (make one with `shelfwatch export`)")
    if path.is_symlink():
        raise ShelfWatchError(f"{path}: a symbolic link; a bundle's files are plain files in its folder")
    if not path.is_file():
        raise ShelfWatchError(f"{folder}: not a model bundle (it has no {MANIFEST})")
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ShelfWatchError(f"{path}: {len(raw)} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
        signed_by = check_signature(folder, raw, keys) if keys else None  # before a byte of it is trusted
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        check_versions(path, data)
        ignored: list[str] = []
        manifest = Manifest.model_validate(known_fields(data, Manifest, "", ignored))
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
    named += [manifest.reference.file] if manifest.reference else []
    named += [manifest.familiarity.file] if manifest.familiarity else []
    for name in named:
        if name not in manifest.files:
            raise ShelfWatchError(f"{path}: {name} is used but has no sha256 in `files`")
    for name, entry in manifest.files.items():
        file = folder / name
        if file.is_symlink():  # it would be read (and copied by `provision`) from wherever it points
            raise ShelfWatchError(f"{folder}: {name} is a symbolic link; a bundle's files are plain files in it")
        if not file.is_file():
            raise ShelfWatchError(f"{folder}: {name} is missing (the manifest lists it)")
        if sha256_of(file) != entry.sha256:
            raise ShelfWatchError(f"{folder}: {name} does not match its sha256 in the manifest (corrupt or replaced)")
    if bundle_id(data) != manifest.bundle_id:
        raise ShelfWatchError(f"{path}: bundle_id does not match the manifest's content (edited after export?)")
    return Bundle(manifest, signed_by, tuple(dict.fromkeys(ignored)))


def check_versions(path: Path, data: object) -> None:
    """Refuse, before validating it, a manifest this agent cannot run correctly: a newer schema version, or a
    newer agent required."""
    if not isinstance(data, dict):
        return  # validation says what it is instead
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ShelfWatchError(
            f"{path}: the bundle's schema_version is {version}, newer than this agent's "
            f"{SCHEMA_VERSION} (shelfwatch {AGENT_VERSION}): upgrade the agent to run it"
        )
    needed = data.get("requires_agent")
    if isinstance(needed, str) and VERSION.fullmatch(needed) and version_key(needed) > version_key(AGENT_VERSION):
        raise ShelfWatchError(f"{path}: the bundle requires agent {needed} or newer; this agent is shelfwatch "
                              f"{AGENT_VERSION}: upgrade the agent to run it")  # fmt: skip


def _is_model(annotation: Any) -> bool:
    # `get_origin` first: on Python 3.10 `isinstance(dict[str, float], type)` is true and `issubclass` then raises.
    return get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel)


def known_fields(value: Any, annotation: Any, where: str, ignored: list[str]) -> Any:
    """`value` without the keys that `annotation`'s models do not declare (their paths appended to `ignored`):
    what a newer export added within this schema version. What remains is validated as strictly as ever."""
    origin = get_origin(annotation)
    if _is_model(annotation):
        if not isinstance(value, dict):
            return value
        kept = {}
        for key, item in value.items():
            field = annotation.model_fields.get(key)
            if field is None:
                ignored.append(f"{where}{key}")
            else:
                kept[key] = known_fields(item, field.annotation, f"{where}{key}.", ignored)
        return kept
    if origin is Annotated:
        return known_fields(value, get_args(annotation)[0], where, ignored)
    if origin in (Union, types.UnionType):
        models = [a for a in get_args(annotation) if _is_model(a)]
        return known_fields(value, models[0], where, ignored) if len(models) == 1 else value
    if origin is list and isinstance(value, list):
        return [known_fields(v, get_args(annotation)[0], f"{where}{i}.", ignored) for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        item = get_args(annotation)[1]
        return {k: known_fields(v, item, f"{where}{k}.", ignored) for k, v in value.items()}
    return value


def manifest_schema() -> dict:
    return Manifest.model_json_schema()
