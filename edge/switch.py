"""The box's side of a rollout: what central's `desired` message asks (through `edge.uplink`), carried out with the
slots (`edge.slots`) and the health gate (`edge.gate`).

    desired -> download (uplink) -> stage in the inactive slot -> health gate -> switch at a quiet frame
            -> the agent restarts itself into the new slot (os.execv) -> trial: 3 crashes in 10 minutes go back

The switch is a clean restart rather than sessions swapped between frames: a bundle sets the input size, the LSTM's
delay, the detector and its catalogue, and a config the camera and zones, and every stage is built from them; a
restart builds them through the one path every start takes. It happens at the first frame with nobody in view (at
most SWITCH_WAIT_S after the gate passed), so that no shopper's visit is cut in two, and costs the seconds between the
last frame analysed before it and the first after (measured, reported as `switch_s` and `switch_frames`). The agent
replaces itself (same process id, so systemd and the container see one process that never stopped); its outbox is
left as always, so what was not yet acknowledged is sent after the restart: no event is lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge import gate
from edge.bundle import Bundle
from edge.config import BoxConfig, Camera
from edge.control import Desired
from edge.errors import ShelfWatchError
from edge.signing import load_trusted_keys
from edge.slots import PROVISIONED, NoRoom, Slots, Staged, StageRefused, config_digest, provisioned_bundle_id
from edge.uplink import Away, Refused

SWITCH_WAIT_S = 30.0  # the longest a passed gate waits for a frame with nobody in view before it switches anyway
CAMERA_WAIT_S = 60.0  # the longest the gate waits for camera frames (a bundle without a reference clip)
SWITCH_FLUSH_S = 1.0  # what is not acknowledged by then waits in the outbox and goes out after the restart
CAMERA_WIDTH = 640  # camera frames kept for the gate are shrunk to at most this wide
Emit = Callable[..., object]


class Switcher:
    def __init__(self, given: BoxConfig, config_file: Path, emit: Emit, log: Callable[[str], None],
                 source_override: str | None = None) -> None:  # fmt: skip
        self.given, self.emit, self.log = given, emit, log
        self.base = config_file.parent
        self.source_override = source_override
        self.keys = load_trusted_keys(given.bundle_keys)
        root = given.outbox_file().parent / "slots"
        try:
            self.slots = Slots(root, provisioned_bundle_id(given.bundle), config_digest(config_file), log=log)
        except OSError as exc:
            raise ShelfWatchError(f"{root}: the slots cannot be kept there ({exc.strerror or exc})") from None
        self.config = given  # what runs (set by `start`)
        self.bundle: Bundle | None = None
        self.picture: tuple[int, int] | None = None  # the camera's, from the frame loop
        self._go: Staged | None = None
        self._go_at = 0.0
        self._wanted = 0  # camera frames the gate waits for
        self._frames: list[np.ndarray] = []
        self._frames_done = threading.Event()
        self._first = True

    # -- at start ------------------------------------------------------------------------------------------------

    def start(self, check: Callable[[BoxConfig], Bundle]) -> tuple[BoxConfig, Bundle]:
        """The config and bundle to run: the active slot's, checked with `check` (the agent's own bundle check);
        a slot that crashed too often since its switch, or whose bundle is refused, is abandoned for its fallback."""
        try:
            back = self.slots.start()
        except OSError as exc:
            raise ShelfWatchError(f"{self.slots.root}: the slots' state cannot be written ({exc.strerror})") from None
        if back is not None:
            self._abandoned(back)
        while True:
            config = self._with_source(self.slots.effective(self.given))
            try:
                bundle = check(config)
            except ShelfWatchError as exc:
                if self.slots.active == PROVISIONED:
                    raise
                self._abandoned(self.slots.abandon(f"refused at start: {exc}"))
                continue
            self.config, self.bundle = config, bundle
            if self.slots.active != PROVISIONED:
                self.log(f"running slot {self.slots.active}: bundle {bundle.manifest.bundle_id}")
            ready = self.slots.ready()
            if ready is not None:  # it passed its gate before the agent stopped: the switch is still due
                bundle_id = self.slots.bundle_of(ready) or "?"
                self.log(f"bundle {bundle_id} (slot {ready}) passed its health gate before this start: switching to it")
                self._go_at, self._go = time.monotonic(), Staged(ready, bundle_id, None, None)
            return config, bundle

    def _with_source(self, config: BoxConfig) -> BoxConfig:
        if self.source_override is None:
            return config
        return config.model_copy(update={"camera": config.camera.model_copy(update={"source": self.source_override})})

    def _abandoned(self, back) -> None:
        detail = f"bundle {back.abandoned} abandoned, back to {back.back_to}: {back.why}"
        self.emit("control", name="desired", state="refused", detail=detail[:200])

    # -- from the uplink's thread --------------------------------------------------------------------------------

    def desired(self, message: Desired, files: dict[str, Path]) -> Callable[[], None] | None:
        """Stage what was downloaded and gate it: a function that asks for the switch (called once the message is
        remembered as carried out), or None when there is nothing to switch. Refused, or Away (the disk is full: the
        uplink tries again later)."""
        try:
            staged = self.slots.stage(files.get("bundle"), files.get("config"), self.keys, self.given, self.base,
                                      self._picture)  # fmt: skip
        except StageRefused as exc:
            raise Refused(str(exc)) from None
        except NoRoom as exc:
            raise Away(str(exc)) from None
        except (OSError, ShelfWatchError) as exc:  # the state directory itself: say so, try again later
            raise Away(f"staging failed: {exc}") from None
        for path in files.values():
            path.unlink(missing_ok=True)  # it is in the slot now
        signer = staged.bundle.signed_by if staged.bundle is not None else None
        what = f"bundle {staged.bundle_id}" + (" with a new config" if staged.config is not None else "")
        signed = f", signed by key {signer.key_id}" if signer else ""
        self.emit(
            "control", name="desired", state="staged", detail=f"{what} staged in slot {staged.slot}{signed}"[:200]
        )
        verdict = self._gate(staged)
        if not verdict.ok:
            with contextlib.suppress(OSError):  # the refusal is reported all the same
                self.slots.refuse(staged.slot, f"health gate: {verdict.detail}")
            raise Refused(f"{what} refused by the health gate: {verdict.detail}")
        self.log(f"{what} passed the health gate: {verdict.detail}")
        with contextlib.suppress(OSError):  # not kept: a stop before the switch then forgets it, nothing worse
            self.slots.passed(staged.slot)

        def go() -> None:
            self._go_at, self._go = time.monotonic(), staged

        return go

    def _gate(self, staged: Staged) -> gate.Verdict:
        assert self.bundle is not None
        config = staged.config or self.config
        if staged.bundle is None and config.provider == self.config.provider:
            return gate.Verdict(True, "the bundle and its provider are unchanged: the config alone was checked")
        folder = self.slots.folder(staged.slot) / "bundle" if staged.bundle is not None else self.config.bundle
        manifest = staged.bundle.manifest if staged.bundle is not None else self.bundle.manifest
        return gate.check(folder, manifest, self.config.bundle, self.bundle.manifest, config.provider, config.threads,
                          self._camera_frames)  # fmt: skip

    def _camera_frames(self, count: int) -> list[np.ndarray] | None:
        self._frames, self._frames_done = [], threading.Event()
        self._wanted = count
        got = self._frames_done.wait(CAMERA_WAIT_S)
        self._wanted = 0
        return self._frames if got else None

    def _picture(self, camera: Camera) -> tuple[int, int] | None:
        """The picture size of the camera a new config names: the running camera's when it is the same one."""
        if self.source_override is not None or camera.source == self.config.camera.source:
            return self.picture
        return probe_picture(camera.source)

    # -- from the frame loop -------------------------------------------------------------------------------------

    def arrived(self, image: np.ndarray, fps: float) -> None:
        """Every frame, as it comes in: the first one after a switch ends it (its cost is reported, in seconds since
        the last frame analysed before it and in frames at `fps`); the gate gets the camera frames it asked for."""
        if self._first:
            self._first = False
            self.picture = (image.shape[1], image.shape[0])
            done = None
            with contextlib.suppress(OSError):  # the frame goes on; the cost is not recorded
                done = self.slots.switched(fps)
            if done is not None:
                detail = (f"switched to bundle {done.bundle} (slot {done.slot}) in {done.seconds:.1f} s, about "
                          f"{done.frames} frames not analysed")  # fmt: skip
                self.log(detail)
                self.emit("control", name="desired", state="done", detail=detail[:200])
        if self._wanted and len(self._frames) < self._wanted:
            scale = min(1.0, CAMERA_WIDTH / image.shape[1])
            if scale < 1.0:
                import cv2

                image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                                   interpolation=cv2.INTER_AREA)  # fmt: skip
            self._frames.append(image.copy())
            if len(self._frames) >= self._wanted:
                self._frames_done.set()

    def due(self, quiet: bool) -> bool:
        """After a frame: whether to switch now (the gate passed, and nobody is in view or SWITCH_WAIT_S passed)."""
        return self._go is not None and (quiet or time.monotonic() - self._go_at >= SWITCH_WAIT_S)

    @property
    def switching(self) -> Staged | None:
        return self._go

    def switch(self, last_frame: float | None) -> bool:
        """The frame loop has stopped for the switch: the staged slot runs from the restart on (False: its state
        could not be written, and the agent stops as it would have without the switch)."""
        assert self._go is not None
        try:
            self.slots.switch(self._go.slot, last_frame)
        except (OSError, ShelfWatchError) as exc:
            self.log(f"cannot switch to bundle {self._go.bundle_id}: {exc}")
            return False
        self.log(f"switching to bundle {self._go.bundle_id} (slot {self._go.slot}): restarting")
        return True

    def ended(self) -> None:
        self.slots.ended()

    def status(self) -> dict:
        return self.slots.status()


def probe_picture(source: str, timeout_s: float = 10.0) -> tuple[int, int] | None:
    """One frame's size from a camera or stream the agent is not running (a new config's), or None."""
    import cv2

    result: list[tuple[int, int]] = []

    def read() -> None:
        cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
        ok, frame = cap.read()
        cap.release()
        if ok and frame is not None:
            result.append((frame.shape[1], frame.shape[0]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    return result[0] if result else None


def restart() -> None:
    """Replace this process with the agent started again with the same command line (the switch's clean restart):
    the same process id, so systemd and the container see one agent that never stopped."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)
