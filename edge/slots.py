"""The box's two slots, A and B, under its state directory: what it runs besides what was provisioned, and how it goes
back. A box's own state machine on disk, testable without a broker or a model (`edge.switch` drives it from the
agent; `edge.gate` is the health check between staging and switching).

    <state>/slots/state.json    which slot runs, which one is staged, the fallback, the last switch, crashes since
    <state>/slots/A/, B/        bundle/ (a bundle central sent; absent: the provisioned one) and config.json (a
                                config central sent, validated; absent: the provisioned one)

- `stage` builds the inactive slot aside (`.staging-<slot>`) and renames it into place: a downloaded bundle (a tar:
  regular files with plain names, each once, nothing its manifest does not list), verified with the box's trusted
  keys exactly as the agent verifies its bundle at start, and/or a downloaded config (a box config for this store and
  box, its zones inside the camera's picture). A full disk or an interruption leaves the slot empty, never half
  written, and the running slot is never touched.
- `switch` makes the staged slot the running one and the one before it the fallback, and starts a trial. Every start
  of the agent goes through `start`: a start after a run that did not end cleanly (`ended`) is a crash, and CRASHES
  crashes within TRIAL_S of the switch abandon the slot for the fallback, by itself, at that start (greenboot counts
  boots the same way). After TRIAL_S the switch is done.
- The provisioned bundle and config are the last resort: the fallback when no slot is left, and what runs after a new
  provisioning (another bundle or config file: the installer has the last word).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.bundle import MANIFEST, Bundle, is_plain_name, read_bundle
from edge.config import BoxConfig, Camera, ConfigLoader, parse_config, read_config_text, resolve_paths, yaml_problem
from edge.errors import ShelfWatchError
from edge.schema import describe
from edge.signing import SIGNATURE, TrustedKey
from edge.uplink import DISK_RESERVE_BYTES

Slot = Literal["A", "B"]
Where = Literal["A", "B", "provisioned"]
PROVISIONED = "provisioned"
STATE = "state.json"
CRASHES = 3  # crashes within TRIAL_S of a switch that abandon the new slot
TRIAL_S = 600.0
MAX_MEMBERS = 64  # files in a bundle's tar (a bundle has a handful)
# What only provisioning sets: the box's identity, trust and channels. A config from central is taken for
# everything else (camera, zones, catalogue, thresholds, provider, threads, heartbeat); these come from the
# provisioned config whatever it says, so that no config sent over the channel can cut the box off or change whom it
# trusts.
PROVISIONED_ONLY = ("store", "box", "bundle", "bundle_keys", "mqtt", "uplink", "outbox")


class StageRefused(ShelfWatchError):
    """What was sent cannot run on this box (a bad tar, a bundle the keys refuse, a config that does not fit)."""


class NoRoom(ShelfWatchError):
    """The box's disk has no room for it now: nothing was changed; try again later."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlotContent(_Model):
    bundle_id: str  # the bundle it runs (its own, or the provisioned one)
    own_bundle: bool
    own_config: bool
    signed_by: str | None = None  # the trusted key that signed its bundle (None: not checked, or provisioned)


class Switch(_Model):
    result: Literal["switching", "trial", "done", "refused", "rolled_back"]
    bundle: str  # the bundle it was about
    slot: Where
    at: float  # when (epoch seconds)
    seconds: float | None = None  # its cost: the last frame analysed before it to the first one after
    frames: int | None = None  # the camera's frames in that time, not analysed
    detail: str | None = None


class State(_Model):
    version: Literal[1] = 1
    provisioned: str = ""  # the provisioned bundle id and config digest these slots were made beside
    active: Where = PROVISIONED
    fallback: Where | None = None
    staged: Slot | None = None
    ready: bool = False  # the staged slot passed its health gate: it is switched to at the next quiet frame
    slots: dict[Slot, SlotContent] = {}
    switch: Switch | None = None
    crashes: list[float] = []  # starts after an unclean end, since the last switch
    running: bool = False  # a run started and has not ended cleanly
    last_frame: float | None = None  # when the run before a switch analysed its last frame


@dataclass(frozen=True)
class Staged:
    slot: Slot
    bundle_id: str
    bundle: Bundle | None  # the bundle staged with it (None: the running one, unchanged)
    config: BoxConfig | None  # the config staged with it (None: the running one, unchanged)


@dataclass(frozen=True)
class RolledBack:
    abandoned: str  # bundle id
    back_to: str  # bundle id
    why: str


def config_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


class Slots:
    def __init__(self, root: Path, provisioned_bundle: str, provisioned_config: str,
                 clock: Callable[[], float] = time.time, log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.root, self.clock, self.log = root, clock, log or (lambda message: None)
        self.provisioned_bundle = provisioned_bundle
        self._lock = threading.RLock()
        root.mkdir(parents=True, exist_ok=True)
        self.state = self._read()
        fingerprint = f"{provisioned_bundle}:{provisioned_config}"
        if self.state.provisioned != fingerprint:
            if self.state.active != PROVISIONED:
                self.log(f"the box was provisioned again (bundle {provisioned_bundle}): it runs what was provisioned, "
                         f"not slot {self.state.active}")  # fmt: skip
            self.state = State(provisioned=fingerprint)
            self._write()

    # -- what runs -----------------------------------------------------------------------------------------------

    def bundle_of(self, where: Where | None) -> str | None:
        if where is None:
            return None
        if where == PROVISIONED:
            return self.provisioned_bundle
        content = self.state.slots.get(where)
        return content.bundle_id if content is not None else None

    @property
    def active(self) -> Where:
        return self.state.active

    def folder(self, slot: Slot) -> Path:
        return self.root / slot

    def effective(self, given: BoxConfig) -> BoxConfig:
        """The config the agent runs: the active slot's (with what only provisioning sets from `given`) and its
        bundle, else `given` as it is."""
        where = self.state.active
        if where == PROVISIONED:
            return given
        content = self.state.slots[where]
        config = given
        if content.own_config:
            try:
                stored = BoxConfig.model_validate_json((self.folder(where) / "config.json").read_bytes())
            except (OSError, ValueError) as exc:
                raise ShelfWatchError(f"slot {where}: its config cannot be read ({exc})") from None
            config = stored.model_copy(update={k: getattr(given, k) for k in PROVISIONED_ONLY})
        if content.own_bundle:
            config = config.model_copy(update={"bundle": self.folder(where) / "bundle"})
        return config

    # -- starts and ends -----------------------------------------------------------------------------------------

    def start(self) -> RolledBack | None:
        """Once at every start of the agent: counts a crash (the run before did not end cleanly) while a switch is
        on trial, abandons the slot after CRASHES of them within TRIAL_S, and marks this run as started."""
        with self._lock:
            s, now = self.state, self.clock()
            back = None
            if s.switch is not None and s.switch.result == "switching":
                s.switch.result = "trial"  # the restart the switch made
            if s.switch is not None and s.switch.result == "trial":
                if s.running:
                    s.crashes.append(now)
                crashes = [t for t in s.crashes if t - s.switch.at <= TRIAL_S]
                if len(crashes) >= CRASHES:
                    minutes = (max(crashes) - s.switch.at) / 60
                    back = self._roll_back(f"the agent stopped unexpectedly {len(crashes)} times within {minutes:.1f} "
                                           f"minutes of switching to it")  # fmt: skip
                elif now - s.switch.at > TRIAL_S:
                    s.switch.result, s.crashes = "done", []
            elif s.running:
                self.log("the run before this one did not end cleanly")
            s.running = True
            self._write()
            return back

    def abandon(self, why: str) -> RolledBack:
        """The active slot cannot run at all (its bundle is refused at start): back to the fallback now."""
        with self._lock:
            back = self._roll_back(why)
            self._write()
            return back

    def _roll_back(self, why: str) -> RolledBack:
        s = self.state
        assert s.active != PROVISIONED
        abandoned = s.active
        target: Where = s.fallback if s.fallback == PROVISIONED or s.fallback in s.slots else PROVISIONED
        if target == abandoned:
            target = PROVISIONED
        back = RolledBack(self.bundle_of(abandoned) or "?", self.bundle_of(target) or "?", why)
        s.active, s.fallback, s.staged, s.ready, s.crashes = target, None, None, False, []
        s.switch = Switch(result="rolled_back", bundle=back.abandoned, slot=abandoned, at=self.clock(),
                          detail=why[:200])  # fmt: skip
        self.log(f"bundle {back.abandoned} (slot {abandoned}) abandoned: {why}; back to bundle {back.back_to} "
                 f"({target})")  # fmt: skip
        return back

    def ended(self) -> None:
        """The run ended cleanly (stopped, the source ended, or a switch): the next start is no crash."""
        with self._lock:
            self.state.running = False
            self._write()

    # -- staging and switching -----------------------------------------------------------------------------------

    def inactive(self) -> Slot:
        s = self.state
        if s.active in ("A", "B"):
            return "B" if s.active == "A" else "A"
        return "B" if s.fallback == "A" else "A"

    def stage(self, bundle_tar: Path | None, config_file: Path | None, keys: list[TrustedKey], given: BoxConfig,
              base: Path, picture: Callable[[Camera], tuple[int, int] | None]) -> Staged:  # fmt: skip
        """Build the inactive slot from a downloaded bundle and/or config (what is not sent is the running one's).
        StageRefused when it cannot run here, NoRoom when the disk is full (the slot is then left empty)."""
        with self._lock:
            slot, active = self.inactive(), self.state.active
            running = self.state.slots.get(active) if active != PROVISIONED else None  # type: ignore[call-overload]
        need = (bundle_tar.stat().st_size if bundle_tar is not None else 0) + DISK_RESERVE_BYTES
        if shutil.disk_usage(self.root).free < need:
            raise NoRoom(f"the box's disk has {shutil.disk_usage(self.root).free // 1_000_000} MB free; staging "
                         f"needs {need // 1_000_000} MB")  # fmt: skip
        tmp = self.root / f".staging-{slot}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            bundle: Bundle | None = None
            if bundle_tar is not None:
                bundle = _unpack(bundle_tar, tmp / "bundle", keys)
                bundle_id, own_bundle = bundle.manifest.bundle_id, True
                signer = bundle.signed_by.key_id if bundle.signed_by is not None else None
            elif running is not None and running.own_bundle:
                _link_bundle(self.folder(active) / "bundle", tmp / "bundle")  # type: ignore[arg-type]
                bundle_id, own_bundle, signer = running.bundle_id, True, running.signed_by
            else:
                bundle_id, own_bundle, signer = self.provisioned_bundle, False, None
            config: BoxConfig | None = None
            if config_file is not None:
                config = check_config(config_file, given, base, picture)
                _write_file(tmp / "config.json", config.model_dump_json().encode())
            elif running is not None and running.own_config:
                _write_file(tmp / "config.json", (self.folder(active) / "config.json").read_bytes())  # type: ignore[arg-type]
            with self._lock:
                if self.state.fallback == slot:  # it is being replaced: the provisioned one is the fallback now
                    self.state.fallback = PROVISIONED
                self.state.slots.pop(slot, None)
                if self.state.staged == slot:
                    self.state.staged, self.state.ready = None, False
                self._write()
            shutil.rmtree(self.folder(slot), ignore_errors=True)
            os.replace(tmp, self.folder(slot))
            _fsync_dir(self.root)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoRoom(f"the box's disk is full while staging slot {slot}; nothing was changed") from None
            raise ShelfWatchError(f"slot {slot}: cannot be written ({exc.strerror or exc})") from None
        except ShelfWatchError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with self._lock:
            self.state.slots[slot] = SlotContent(bundle_id=bundle_id, own_bundle=own_bundle,
                                                 own_config=config is not None or (running is not None
                                                                                   and running.own_config),
                                                 signed_by=signer)  # fmt: skip
            self.state.staged, self.state.ready = slot, False
            self._write()
        return Staged(slot, bundle_id, bundle, config)

    def passed(self, slot: Slot) -> None:
        """The staged slot passed its health gate: if the agent stops before the switch, it switches after its next
        start."""
        with self._lock:
            if self.state.staged == slot:
                self.state.ready = True
                self._write()

    def ready(self) -> Slot | None:
        """The staged slot that passed its gate and waits for the switch, if any."""
        return self.state.staged if self.state.ready else None

    def refuse(self, slot: Slot, detail: str) -> None:
        """The staged slot failed its health gate: the running one goes on, and the status says why."""
        with self._lock:
            bundle = self.bundle_of(slot) or "?"
            if self.state.staged == slot:
                self.state.staged, self.state.ready = None, False
            self.state.switch = Switch(result="refused", bundle=bundle, slot=slot, at=self.clock(), detail=detail[:200])
            self._write()

    def switch(self, slot: Slot, last_frame: float | None) -> None:
        """Make `slot` the one that runs from the next start, the running one its fallback; the trial starts."""
        with self._lock:
            s = self.state
            if slot not in s.slots:
                raise ShelfWatchError(f"slot {slot} holds nothing to switch to")
            s.fallback, s.active, s.staged, s.ready, s.crashes = s.active, slot, None, False, []
            s.switch = Switch(result="switching", bundle=s.slots[slot].bundle_id, slot=slot, at=self.clock())
            s.last_frame, s.running = last_frame, False
            self._write()

    def switched(self, fps: float) -> Switch | None:
        """At the first frame after a switch: its cost (seconds since the last frame before it, and the frames the
        camera gave meanwhile at `fps`), recorded once; None when there is nothing to record."""
        with self._lock:
            s = self.state
            if s.switch is None or s.switch.result != "trial" or s.switch.seconds is not None or s.last_frame is None:
                return None
            s.switch.seconds = round(max(0.0, self.clock() - s.last_frame), 3)
            s.switch.frames = round(s.switch.seconds * fps)
            self._write()
            return s.switch

    # -- what the status says ------------------------------------------------------------------------------------

    def status(self) -> dict:
        """The status heartbeat's fields (all optional, added in v1): staged and fallback bundles, the last switch."""
        with self._lock:
            s = self.state
            if s.switch is not None and s.switch.result == "trial" and self.clock() - s.switch.at > TRIAL_S:
                s.switch.result, s.crashes = "done", []
                with contextlib.suppress(OSError):  # the heartbeat goes on; the next start says it again
                    self._write()
            fields: dict = {}
            if s.staged is not None:
                fields["staged_bundle"] = self.bundle_of(s.staged)
            if s.fallback is not None:
                fields["fallback_bundle"] = self.bundle_of(s.fallback)
            if s.switch is not None:
                fields.update(switch=s.switch.result, switch_bundle=s.switch.bundle[:64])
                if s.switch.seconds is not None:
                    fields.update(switch_s=s.switch.seconds, switch_frames=s.switch.frames)
                if s.switch.result in ("refused", "rolled_back") and s.switch.detail:
                    what = s.switch.result.replace("_", " ")
                    fields["problem"] = f"bundle {s.switch.bundle[:64]} {what}: {s.switch.detail}"[:256]
            return {k: v for k, v in fields.items() if v is not None}

    # -- the state file ------------------------------------------------------------------------------------------

    def _read(self) -> State:
        path = self.root / STATE
        try:
            return State.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return State()
        except (OSError, ValueError) as exc:
            self.log(f"{path}: unreadable ({str(exc).splitlines()[0][:120]}); the provisioned bundle runs")
            return State()

    def _write(self) -> None:
        _write_file(self.root / STATE, self.state.model_dump_json(indent=1).encode())


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unpack(tar_path: Path, dest: Path, keys: list[TrustedKey]) -> Bundle:
    """A bundle's tar into `dest`, safely (regular files with plain names, each once; nothing is extracted by tarfile
    itself), then verified as the agent verifies a bundle at start; nothing unlisted may ride along."""
    dest.mkdir()
    seen: list[str] = []
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for member in tar:
                name = member.name
                shown = repr(name[:64])
                if len(seen) >= MAX_MEMBERS:
                    raise StageRefused(f"the bundle's tar holds more than {MAX_MEMBERS} files")
                if not member.isreg():
                    raise StageRefused(f"the bundle's tar holds {shown}, which is not a plain file (links, folders and "
                                       "devices are refused)")  # fmt: skip
                if name not in (MANIFEST, SIGNATURE) and not is_plain_name(name):
                    raise StageRefused(f"the bundle's tar holds {shown}: not a plain file name (no folders, no paths)")
                if name in seen:
                    raise StageRefused(f"the bundle's tar holds {shown} twice")
                seen.append(name)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                with open(dest / name, "xb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
    except tarfile.TarError as exc:
        raise StageRefused(f"the bundle's download is not a tar ({exc})") from None
    try:
        bundle = read_bundle(dest, keys)
    except ShelfWatchError as exc:
        raise StageRefused(f"bundle refused: {str(exc).replace(str(dest), 'the bundle')}") from None
    extra = sorted(set(seen) - {MANIFEST, SIGNATURE} - set(bundle.manifest.files))
    if extra:
        raise StageRefused(f"the bundle carries file(s) its manifest does not list: {', '.join(extra)[:120]}")
    return bundle


def _link_bundle(source: Path, dest: Path) -> None:
    """The running slot's bundle into the new slot: hard links (its files are never changed in place, only replaced
    whole), a copy where the file system has none. Its TensorRT engines are left behind (rebuilt by the gate)."""
    dest.mkdir()
    for path in source.iterdir():
        if path.is_file():
            try:
                os.link(path, dest / path.name)
            except OSError:
                shutil.copy2(path, dest / path.name)


def check_config(path: Path, given: BoxConfig, base: Path, picture: Callable[[Camera], tuple[int, int] | None]
                 ) -> BoxConfig:  # fmt: skip
    """A config central sent: valid as a box config (relative paths from the provisioned config's folder `base`), for
    this store and box, its zones inside the picture of the camera it names; what only provisioning sets is taken from
    `given`. StageRefused in one line otherwise."""
    try:
        data = parse_config(read_config_text(path), ConfigLoader)
    except ShelfWatchError as exc:
        raise StageRefused(f"config: {exc}") from None
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise StageRefused(f"config: {'line ' + str(line) + ': ' if line else ''}not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise StageRefused("config: a box config is a YAML mapping")
    try:
        config = BoxConfig.model_validate(resolve_paths(data, base))
    except ValidationError as exc:
        raise StageRefused(f"config: {describe(exc)}") from None
    except ValueError as exc:
        raise StageRefused(f"config: {' '.join(str(exc).split())}") from None
    if (config.store, config.box) != (given.store, given.box):
        raise StageRefused(f"config: it is for {config.store}/{config.box}; this box is {given.store}/{given.box}")
    config = config.model_copy(update={k: getattr(given, k) for k in PROVISIONED_ONLY})
    if config.zones:
        size = picture(config.camera)
        if size is None:
            raise StageRefused(f"config: its camera ({config.camera.source[:64]}) gave no picture to check the "
                               "zones on")  # fmt: skip
        w, h = size
        for zone in config.zones:
            for x, y in zone.polygon:
                if not (0 <= x <= w and 0 <= y <= h):
                    raise StageRefused(f"config: zone {zone.name!r} reaches ({x:g}, {y:g}), outside the camera's "
                                       f"{w}x{h} picture")  # fmt: skip
    return config


def provisioned_bundle_id(folder: Path) -> str:
    """The provisioned bundle's id as its manifest says (checked when it runs; here only to notice a new one)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return str(json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("bundle_id"))[:64]
    return "unreadable"
