"""What one box needs to run: `BoxConfig`, read from YAML (unknown keys are errors).

Secrets never sit in the YAML: the MQTT password comes from an environment variable or a file (a
Docker/systemd secret), named in the config. Relative paths are relative to the config file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.errors import ShelfWatchError
from edge.geometry import layout_problems
from edge.schema import Slug, Strict, describe
from edge.small_files import read_small

MAX_CONFIG_BYTES = 1 << 20  # a box config is a few KB; a bigger file is a mistake (or an attack)
Pixel = Annotated[float, Field(ge=-100_000, le=100_000)]
Point = tuple[Pixel, Pixel]
# A DNS name or an IP address (v4, or v6 without brackets); it also lands in the broker's certificate.
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.:-]{0,252})")


class _Config(Strict):
    """Config values are finite: `.inf` or `.nan` would disable a timeout or a threshold without a word."""

    model_config = ConfigDict(allow_inf_nan=False)


class Slot(_Config):
    """A place on a shelf zone that holds one product (optional): a polygon inside its zone, and the store's SKU
    (one of the catalogue's) that belongs there."""

    sku: str = Field(min_length=1, max_length=64, description="the SKU that belongs here (the catalogue's)")
    polygon: list[Point] = Field(min_length=3, max_length=64)


class Zone(_Config):
    """A shelf zone: a polygon in the camera frame's pixels (at least three corners) that does not cross itself;
    optionally its slots (what goes where)."""

    name: Slug
    polygon: list[Point] = Field(min_length=3, max_length=256)
    slots: list[Slot] = Field(default_factory=list, max_length=256, description="places for one SKU each, inside "
                              "the zone, not overlapping each other")  # fmt: skip

    @model_validator(mode="after")
    def _drawable(self) -> Zone:
        problems = layout_problems([self])  # on its own (bounds and other zones: BoxConfig's check)
        if problems:
            raise ValueError(problems[0].describe([self]))
        return self


class SkuMap(_Config):
    """The store's SKU id (and name) for one of the detector's classes."""

    detector_class: str = Field(min_length=1, max_length=64)
    sku: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=128)


class Camera(_Config):
    source: str = Field(
        min_length=1, max_length=2048, description="a video file, an rtsp:// or http(s):// stream, or a camera index"
    )
    read_timeout_s: float = Field(default=5.0, gt=0, le=600)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    realtime: bool = Field(default=False, description="pace a file at its frame rate, as a camera would")
    frame_size: tuple[int, int] | None = Field(default=None, description=(
        "[width, height] of the camera's picture, in which the zones are drawn (the zone editor writes it): "
        "every zone must lie inside it, and the agent warns when the camera's picture is another size"))  # fmt: skip

    @field_validator("frame_size")
    @classmethod
    def _positive(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and not (16 <= size[0] <= 16384 and 16 <= size[1] <= 16384):
            raise ValueError("width and height must be 16 to 16384 pixels")
        return size


class Thresholds(_Config):
    detector_confidence: float = Field(default=0.4, gt=0, lt=1)
    motion_fraction: float = Field(default=0.002, ge=0, lt=1, description="share of changed pixels that is motion")
    motion_hold_s: float = Field(
        default=1.0, ge=0, le=3600, description="keep the models running this long after motion"
    )
    detect_every_s: float = Field(default=2.0, gt=0, le=3600, description="slow periodic product refresh")
    shelf_quiet_s: float = Field(
        default=0.5, gt=0, le=3600, description="no motion in a shelf zone this long: recount it"
    )
    shopper_gone_s: float = Field(
        default=4.0,
        gt=0,
        le=3600,
        description="a shopper's blob unseen this long is dropped; one who vanished away from the picture's edge "
        "(stood still until the background learned them) stays dormant for 15 s and gets their id back",
    )
    # On held-out synthetic video the segments the model gets right have a mean confidence of 0.73 (hard preset) to
    # 0.85 (standard) at their 5th percentile, the wrong ones 0.60-0.73 at their median; on real footage of people
    # walking past (no shelf) every segment stayed under 0.78.
    action_confidence: float = Field(
        default=0.75, ge=0, le=1, description="emit an action segment only if its mean confidence reaches this"
    )


class FamiliarityConfig(_Config):
    """What the box does with what comes from footage unlike the model's training (`edge.familiarity`; the bundle's
    guard decides what is unfamiliar, with its calibrated threshold). A bundle without a guard: nothing to do."""

    policy: Literal["flag", "drop"] = Field(default="flag", description=(
        "flag: such actions, picks and put-backs are sent with familiar: false (and kept out of baskets and "
        "visits); drop: they are not sent at all"))  # fmt: skip


class ClipsConfig(_Config):
    """Clips of the box's unsure moments for review (`edge.clips`). Off unless `keep` is set: footage of shoppers leaves
    the camera only where the store decided it may. A clip is the frames a few seconds before and after an unsure
    event, from the box's memory (never re-read from the camera), written whole or not at all, kept on the box for
    `retention_days` and sent to central (which keeps it for its own retention)."""

    keep: bool = Field(default=False, description="keep clips of unsure moments (off: no footage is kept)")
    review_confidence: float = Field(default=0.85, ge=0, le=1, description=(
        "an action sent with a confidence under this is unsure (it passed thresholds.action_confidence)"))  # fmt: skip
    product_confidence: float = Field(default=0.6, ge=0, le=1, description=(
        "a pick or put-back, or an action's product, less sure than this is unsure"))  # fmt: skip
    unfamiliar: bool = Field(default=True, description="an event from unfamiliar footage is unsure")
    sure_share: float = Field(default=0.0, ge=0, le=1, description=(
        "this share of sure events, drawn at random, is kept too, so that confident mistakes surface"))  # fmt: skip
    before_s: float = Field(default=3.0, ge=0, le=30, description="seconds kept before the moment")
    after_s: float = Field(default=2.0, ge=0, le=30, description="seconds kept after it")
    max_s: float = Field(default=30.0, gt=0, le=120, description="a clip that takes in more unsure moments grows up "
                         "to this length")  # fmt: skip
    max_per_hour: int = Field(default=12, ge=0, le=3600, description="at most this many clips an hour")
    max_mb: float = Field(default=500, gt=0, le=1_000_000, description=(
        "kept clips use at most this much of the box's disk; beyond it the oldest are deleted"))  # fmt: skip
    retention_days: float = Field(default=7, gt=0, le=366, description="a kept clip is deleted from the box after this")
    max_width: int = Field(default=640, ge=160, le=4096, description=(
        "frames are kept in memory, and clips written, at most this wide (smaller pictures as they are)"))  # fmt: skip
    memory_mb: float = Field(default=200, gt=0, le=16_000, description=(
        "the memory of recent frames (before_s plus the time an event takes to close) is at most this"))  # fmt: skip
    blur_heads: bool = Field(default=False, description=(
        "blur the shoppers' heads (the tracked blobs' centres, seen from above) before a clip leaves the "
        "box"))  # fmt: skip


class Tls(_Config):
    ca: Path
    cert: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key, or neither")
        return self


class MqttConfig(_Config):
    host: str = Field(pattern=f"^{HOST.pattern}$", description="the broker's host name or IP address")
    port: int = Field(default=1883, ge=1, le=65535)
    tls: Tls | None = None
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
                                     description="environment variable that holds the password")  # fmt: skip
    password_file: Path | None = Field(default=None, description="file that holds the password")
    keepalive_s: int = Field(default=30, ge=5, le=65535)  # MQTT's keep-alive is 16 bits
    reconnect_max_s: float = Field(default=30.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _one_secret(self) -> MqttConfig:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ShelfWatchError(f"mqtt.password_env: the environment variable {self.password_env} is not set")
            return value
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ShelfWatchError(f"mqtt.password_file: {self.password_file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ShelfWatchError(f"mqtt.password_file: {self.password_file}: not UTF-8 text") from None
        return None


def state_dir() -> Path:
    """Where a box keeps its state when its config does not say (XDG Base Directory): $SHELFWATCH_STATE_DIR, else
    $XDG_STATE_HOME/shelfwatch, else ~/.local/state/shelfwatch. Provisioned boxes set /var/lib/shelfwatch."""
    if os.environ.get("SHELFWATCH_STATE_DIR"):
        return Path(os.environ["SHELFWATCH_STATE_DIR"])
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "shelfwatch"


class OutboxConfig(_Config):
    path: Path | None = Field(default=None, description=(
        "the outbox database; default: <state dir>/<store>/<box>/outbox.sqlite, never the working "
        "directory"))  # fmt: skip
    max_events: int = Field(default=100_000, ge=10, le=100_000_000)
    max_age_s: float = Field(default=7 * 24 * 3600, gt=0, le=366 * 24 * 3600)


class UplinkConfig(_Config):
    """The box's HTTPS channel to central (`edge.uplink`): files up (clips, snapshots), files down (bundles,
    configs). Control messages arrive over MQTT."""

    url: str = Field(
        pattern=r"^https?://[A-Za-z0-9.:\[\]-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$",
        description="central's HTTP API, https://host:port (http:// on a trusted network only)",
    )
    token_file: Path | None = Field(default=None, description=(
        "the box's own API token; `shelfwatch provision` mints it and sets this"))  # fmt: skip
    ca: Path | None = Field(default=None, description="the CA that signed central's certificate (default: the "
                            "system's trusted CAs)")  # fmt: skip
    spool_max_mb: float = Field(default=500, gt=0, le=1_000_000, description=(
        "files waiting to be uploaded may use this much disk; beyond it the oldest are dropped (and "
        "counted)"))  # fmt: skip
    download_kbps: float = Field(default=0, ge=0, le=10_000_000, description=(
        "at most this many kilobytes a second for downloads (0: no limit), so a bundle does not fill the store's "
        "line"))  # fmt: skip

    def token(self) -> str:
        if self.token_file is None:
            raise ShelfWatchError("uplink.token_file: not set (provision the box: it mints the box's token)")
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ShelfWatchError(f"uplink.token_file: {self.token_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ShelfWatchError(f"uplink.token_file: {self.token_file}: not UTF-8 text") from None


class BoxConfig(_Config):
    store: Slug
    box: Slug
    camera: Camera
    bundle: Path
    bundle_keys: list[Path] = Field(default_factory=list, max_length=16, description=(
        "public keys (PEM, Ed25519; `shelfwatch bundle keygen`'s .pub) of which one must have signed the bundle; "
        "several while keys rotate. None: the bundle's signature is not checked (unsigned bundles run, the demo)"
    ))  # fmt: skip
    zones: list[Zone] = Field(
        default_factory=list, max_length=64, description="shelf zones; none: the bundle's default layout"
    )
    catalog: list[SkuMap] = Field(
        default_factory=list, max_length=10_000, description="detector class -> SKU; none: the bundle's"
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    familiarity: FamiliarityConfig = Field(default_factory=FamiliarityConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    provider: Literal["auto", "tensorrt", "cuda", "cpu"] = "auto"
    threads: int = Field(default=0, ge=0, le=256, description="ONNX Runtime threads; 0: all cores")
    mqtt: MqttConfig | None = None
    uplink: UplinkConfig | None = None
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    heartbeat_s: float = Field(default=30.0, gt=0, le=3600)

    def outbox_file(self) -> Path:
        """The outbox's database: the config's path, else one per store and box under the state directory (two
        agents on one machine must not share one)."""
        return self.outbox.path or state_dir() / self.store / self.box / "outbox.sqlite"

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, zones: list[Zone]) -> list[Zone]:
        names = [z.name for z in zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique")
        return zones

    @model_validator(mode="after")
    def _layout(self) -> BoxConfig:
        """The zones together: inside the picture (when its size is known), not overlapping, slots with SKUs of
        the catalogue (when the config has one; else the bundle's, checked by the agent)."""
        skus = {c.sku for c in self.catalog} if self.catalog else None
        problems = layout_problems(self.zones, self.camera.frame_size, skus)
        if problems:
            raise ValueError("zones: " + "; ".join(p.describe(self.zones) for p in problems[:3]))
        return self


class ConfigLoader(yaml.SafeLoader):
    """Safe YAML for configs, stricter still: no aliases (a 700-byte "billion laughs" of nested aliases expands
    to billions of values) and no duplicate keys (YAML would keep the last one without a word)."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"aliases (*{event.anchor}) are not allowed in a config: "
                                              "write the value out", event.start_mark)  # fmt: skip
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        check_unique_keys(self, node)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses to read an integer of more than 4300 digits (a guard against quadratic parsing), with a
        # ValueError that YAML does not expect: it becomes this file's one-line error, with its line.
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            problem = f"an integer of {len(node.value)} characters is too long to be a config value"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


ConfigLoader.add_constructor("tag:yaml.org,2002:int", ConfigLoader.construct_yaml_int)


def check_unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: {...}`: merged in by flatten_mapping, not a key
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor says so
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (first on line {first})",
                                                    key_node.start_mark)  # fmt: skip
        seen[key] = key_node.start_mark.line + 1


def read_config_text(path: Path) -> str:
    """A config file's text; a file that is too big or not UTF-8 is a one-line ShelfWatchError."""
    data = read_small(path, MAX_CONFIG_BYTES, "a config file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ShelfWatchError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def parse_config(text: str, loader: type[yaml.SafeLoader] = ConfigLoader) -> object:
    """YAML text with `loader`; RecursionError (thousands of nested brackets) becomes a YAMLError."""
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader subclass: plain data only
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


def yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """A YAML error's line and its message on one line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (mark.line + 1 if mark else None), " ".join(str(problem).split())


def resolve_paths(data: dict, base: Path) -> dict:
    """Make the config's relative paths relative to its own folder."""
    data = dict(data)
    if isinstance(data.get("bundle"), str):
        data["bundle"] = str(base / data["bundle"])
    if isinstance(data.get("bundle_keys"), list):
        data["bundle_keys"] = [str(base / k) if isinstance(k, str) else k for k in data["bundle_keys"]]
    for section, keys in (("outbox", ("path",)), ("mqtt", ("password_file",)), ("uplink", ("token_file", "ca"))):
        if isinstance(data.get(section), dict):
            data[section] = {**data[section], **{k: str(base / data[section][k]) for k in keys
                                                  if isinstance(data[section].get(k), str)}}  # fmt: skip
    if isinstance(data.get("mqtt"), dict) and isinstance(data["mqtt"].get("tls"), dict):
        tls = data["mqtt"]["tls"]
        data["mqtt"] = {**data["mqtt"], "tls": {k: str(base / v) if isinstance(v, str) else v for k, v in tls.items()}}
    camera = data.get("camera")
    if isinstance(camera, dict) and isinstance(camera.get("source"), str):
        source = camera["source"]
        if "://" not in source and not source.isdigit():
            data["camera"] = {**camera, "source": str(base / source)}
    return data


def load_box_config(path: Path) -> BoxConfig:
    if not path.is_file():
        raise ShelfWatchError(f"{path}: no such config file")
    try:
        data = parse_config(read_config_text(path))
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        where = f"line {line}: " if line else ""
        raise ShelfWatchError(f"{path}: {where}not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ShelfWatchError(f"{path}: a box config is a YAML mapping")
    try:
        return BoxConfig.model_validate(resolve_paths(data, path.parent))
    except ValueError as exc:  # pydantic's ValidationError, or a value that resolve_paths cannot take
        if not isinstance(exc, ValidationError):
            raise ShelfWatchError(f"{path}: {' '.join(str(exc).split())}") from None
        raise ShelfWatchError(f"{path}: {describe(exc)}") from None
