"""The box's channel to central: files up and down over HTTPS, control messages from MQTT.

- `Spool`: files waiting to be uploaded (clips, snapshots), on disk under the box's state directory, oldest
  first, within a disk budget (beyond it the oldest are dropped, and counted). A file enters it whole (written
  aside, then renamed) and leaves it only once central has acknowledged it, so a restart re-sends what was not
  acknowledged; central knows a file by its name, so a re-send never makes a second file.
- `Uplink`: one thread that uploads the spool and carries out the control messages (downloads with HTTP ranges,
  so an interrupted download resumes where it stopped; checked by size and SHA-256 before it counts), retrying
  with backoff while central is away or full (507). The frame loop only ever drops a file into the spool or
  sets a flag: nothing here slows it.
- What the box did is reported as ordinary events (`upload`, `control`), and the state in the status heartbeat
  (`uplink_pending`, `uplink_dropped`, `problem`).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import queue
import shutil
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

from edge.config import UplinkConfig
from edge.control import Desired, FileRef, SnapshotRequest, UnknownControl, decode_control
from edge.errors import ShelfWatchError
from edge.retry import Backoff

CHUNK = 1 << 16
TIMEOUT_S = 30.0
RETRY_MAX_S = 300.0  # central away or full: keep trying, but do not hammer it
SNAPSHOT_WAIT_S = 10.0  # how long a snapshot waits for a picture with nobody in it before it takes the latest
DISK_RESERVE_BYTES = 20_000_000  # left free beside a download (and a staged slot): the outbox and logs need room
Emit = Callable[..., object]  # Emitter.emit(kind, **fields)
# What to do with the downloaded files of a `desired` message (`edge.switch`): a function to call once the message
# is remembered as carried out (the switch request), or None; Refused or Away as for the download itself.
OnDesired = Callable[[Desired, "dict[str, Path]"], "Callable[[], None] | None"]


def _log(message: str) -> None:
    print(f"shelfwatch edge: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Waiting:
    path: Path
    kind: str
    name: str
    covers: tuple[str, ...]


class Spool:
    """Files waiting for central, each `<n>.<kind>` with `<n>.json` beside it (kind, name, covers)."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._dropped_file = folder / "dropped"

    def put(self, kind: str, name: str, data: bytes, covers: tuple[str, ...] = ()) -> None:
        """Keep a file for upload (whole or not at all); the oldest go first when the budget is passed."""
        with self._lock:
            stem = f"{time.time_ns():020d}"
            meta = json.dumps({"kind": kind, "name": name, "covers": list(covers)}).encode()
            for suffix, content in ((".json", meta), (f".{kind}", data)):  # the file last: it is what is listed
                fd, tmp = tempfile.mkstemp(prefix=".in-", dir=self.folder)
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.folder / f"{stem}{suffix}")
            self._within_budget()

    def waiting(self) -> list[Waiting]:
        out = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.suffix in (".json", "") or path.name == "dropped":
                continue
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
            except (OSError, ValueError):
                continue  # its description is gone: it can never be sent as what it was
            out.append(Waiting(path, meta["kind"], meta["name"], tuple(meta.get("covers", ()))))
        return out

    def remove(self, item: Waiting) -> None:
        with self._lock:
            item.path.unlink(missing_ok=True)
            item.path.with_suffix(".json").unlink(missing_ok=True)

    def discard(self, kind: str, name: str) -> bool:
        """Take a file that waits for upload out of the spool (a kept clip past its retention): True if it was there."""
        found = [i for i in self.waiting() if i.kind == kind and i.name == name]
        for item in found:
            self.remove(item)
        return bool(found)

    def dropped(self) -> int:
        try:
            return int(self._dropped_file.read_text())
        except (OSError, ValueError):
            return 0

    def _within_budget(self) -> None:
        items = self.waiting()
        total = sum(i.path.stat().st_size for i in items)
        dropped = 0
        while items and total > self.max_bytes:
            oldest = items.pop(0)
            total -= oldest.path.stat().st_size
            oldest.path.unlink(missing_ok=True)
            oldest.path.with_suffix(".json").unlink(missing_ok=True)
            dropped += 1
        if dropped:
            self._dropped_file.write_text(str(self.dropped() + dropped))


class Refused(Exception):
    """Central answered, and retrying will not change its answer (the file or the request is wrong)."""


class Away(Exception):
    """Central cannot be reached or cannot take it now (network, 5xx, 507): try again later."""


class Central:
    """central's HTTP API as the box's own token sees it."""

    def __init__(self, config: UplinkConfig, store: str, box: str) -> None:
        url = urlparse(config.url)
        self.https, self.host, self.port = url.scheme == "https", url.hostname or "", url.port
        self.base = url.path.rstrip("/")
        self.prefix = f"{self.base}/boxes/{quote(store)}/{quote(box)}/files"
        self.token = config.token()
        self.context = ssl.create_default_context(cafile=str(config.ca) if config.ca else None) if self.https else None

    def _connection(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT_S, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)

    def upload(self, item: Waiting) -> dict:
        covers = f"?covers={quote(','.join(item.covers))}" if item.covers else ""
        path = f"{self.prefix}/{item.kind}/{quote(item.name)}{covers}"
        size = item.path.stat().st_size
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/octet-stream",
                   "Content-Length": str(size)}  # fmt: skip
        try:
            conn = self._connection()
            with item.path.open("rb") as body:
                conn.request("PUT", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read(65536)
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            raise Away(f"central unreachable ({exc})") from None
        return _judge(response.status, answer)

    def download(self, kind: str, ref: FileRef, part: Path, kbps: float, keep_going: Callable[[], bool]) -> None:
        """Fetch into `part`, going on from what it already holds (HTTP range): Away on a network error."""
        have = part.stat().st_size if part.exists() else 0
        headers = {"Authorization": f"Bearer {self.token}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            conn = self._connection()
            conn.request("GET", f"{self.prefix}/{kind}/{quote(ref.name)}", headers=headers)
            response = conn.getresponse()
            if response.status not in (200, 206):
                _judge(response.status, response.read(65536))
            mode = "ab" if response.status == 206 else "wb"  # 200: the server sends it whole, from the start
            expected = response.length  # Content-Length of this answer; None when the server did not say
            started, got = time.monotonic(), 0
            with part.open(mode) as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    if kbps > 0:  # at most kbps: sleep until the bytes so far were due
                        time.sleep(max(0.0, got / (kbps * 1000) - (time.monotonic() - started)))
                    if not keep_going():
                        break
                out.flush()
                os.fsync(out.fileno())
            conn.close()
            # http.client ends a body cut short (central restarted mid-answer) as if it were complete, with no
            # IncompleteRead: what is kept is resumed next time, not judged as a wrong file.
            if expected is not None and got < expected and keep_going():
                raise Away(f"download interrupted: {ref.name} at {part.stat().st_size} of {ref.size} bytes")
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise Away(f"the box's disk is full: {ref.name} stopped at {part.stat().st_size} of {ref.size} "
                           "bytes; it goes on when there is room") from None  # fmt: skip
            raise Away(f"download interrupted ({exc})") from None


def _judge(status: int, answer: bytes) -> dict:
    try:
        body = json.loads(answer) if answer else {}
    except ValueError:
        body = {}
    detail = str(body.get("detail", ""))[:150] if isinstance(body, dict) else ""
    if status in (200, 201):
        return body if isinstance(body, dict) else {}
    if status == 401:
        raise Away(f"central refused the box's token (revoked? provision the box again): {detail}")
    if status == 507 or status >= 500:
        raise Away(f"central cannot take it now ({status}: {detail})")
    raise Refused(f"central refused it ({status}: {detail})")


class Uplink:
    def __init__(self, config: UplinkConfig, store: str, box: str, state: Path, emit: Emit,
                 running_bundle: str | None = None, log: Callable[[str], None] = _log,
                 on_desired: OnDesired | None = None) -> None:  # fmt: skip
        self.config, self.emit, self.log, self.running_bundle = config, emit, log, running_bundle
        self.on_desired = on_desired  # the slots' part (edge.switch); None: a download is only reported staged
        self.folder = state / "uplink"
        self.spool = Spool(self.folder / "outgoing", int(config.spool_max_mb * 1_000_000))
        self.downloads = self.folder / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.central = Central(config, store, box)
        self.problem: str | None = None
        self.snapshot_wanted: SnapshotRequest | None = None  # the frame loop answers it (see `take_snapshot`)
        self._wanted_at = 0.0
        self._handled = self.folder / "handled.json"  # control messages already carried out (they are retained)
        self._work: queue.Queue[Desired | tuple[str, str]] = queue.Queue()  # a message, or (name, why) refused
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)

    # -- what the rest of the box calls -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def put(self, kind: str, name: str, data: bytes, covers: tuple[str, ...] = ()) -> None:
        self.spool.put(kind, name, data, covers)
        self._wake.set()

    def status(self) -> dict:
        fields: dict = {"uplink_pending": len(self.spool.waiting()), "uplink_dropped": self.spool.dropped()}
        if self.problem:
            fields["problem"] = self.problem[:200]
        return fields

    def control(self, name: str, payload: bytes) -> None:
        """A control message from MQTT (paho's thread): checked here, carried out by the uplink's thread or, for a
        snapshot, by the frame loop. One a box cannot take is refused with one line in its status."""
        try:
            message = decode_control(payload)
        except UnknownControl as exc:  # reported from the uplink's thread: paho's must not wait on the outbox
            self.problem = f"control/{name[:32]}: {exc}"
            self._work.put((name, self.problem))
            self._wake.set()
            return
        key = message.request_id if isinstance(message, SnapshotRequest) else message.model_dump_json()
        if self._done(message.name) == key:
            return  # retained, so it comes again at every reconnect: carried out already
        if isinstance(message, SnapshotRequest):
            self._wanted_at = time.monotonic()
            self.snapshot_wanted = message
        else:
            self._work.put(message)
            self._wake.set()

    def snapshot_due(self, quiet: bool) -> bool:
        """Whether the frame loop should take the snapshot now: at the first frame with nobody in view, else the
        latest frame once SNAPSHOT_WAIT_S have passed (marked as busy)."""
        wanted = self.snapshot_wanted is not None
        return wanted and (quiet or time.monotonic() - self._wanted_at >= SNAPSHOT_WAIT_S)

    def take_snapshot(self, jpeg: bytes, quiet: bool) -> None:
        """The frame loop's answer to a snapshot request: `quiet` when nobody moved in the picture."""
        request = self.snapshot_wanted
        if request is None:
            return
        self.snapshot_wanted = None
        name = f"snapshot-{request.request_id}{'' if quiet else '-busy'}.jpg"
        self.put("snapshot", name, jpeg)
        self._remember("snapshot", request.request_id)
        self.emit("control", name="snapshot", state="done", detail=name if quiet else f"{name} (people in view)")

    # -- the thread ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(1.0, RETRY_MAX_S)
        while not self._stop.is_set():
            try:
                while not self._work.empty():
                    message = self._work.queue[0]  # taken off only once carried out or refused
                    if isinstance(message, tuple):
                        self._refuse(*message)
                    else:
                        try:
                            self._carry_out(message)
                        except Refused as exc:
                            self._refuse(message.name, f"{message.name}: {exc}")
                    self._work.get()
                for item in self.spool.waiting():
                    self._upload(item)
                backoff.reset()
                self._wake.wait(5.0)  # a file may also appear from a previous run's spool
            except Away as exc:
                self.problem = str(exc)
                self._wake.wait(backoff.next())
            except Exception as exc:  # a bug or a disk error: the channel must outlive it (the frame loop does)
                self.problem = f"uplink: {type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}"
                self.log(f"{self.problem}; trying again later")
                self._wake.wait(backoff.next())
            self._wake.clear()

    def _upload(self, item: Waiting) -> None:
        size, sha = item.path.stat().st_size, _sha256(item.path)
        try:
            answer = self.central.upload(item)
        except Refused as exc:
            self.spool.remove(item)  # no retry can change it; say so rather than try forever
            self.problem = f"{item.name}: {exc}"
            self.log(f"upload of {item.name} refused: {exc}")
            return
        self.spool.remove(item)
        self.problem = None
        if answer.get("sha256", sha) != sha:  # central kept other bytes under this name
            self.problem = f"{item.name}: central holds other bytes under this name"
        self.emit("upload", file_kind=item.kind, name=item.name, size=size, sha256=sha, covers=list(item.covers))

    def _carry_out(self, message: Desired) -> None:
        key = message.model_dump_json()
        wants_bundle = message.bundle is not None and message.bundle_id != self.running_bundle
        if not wants_bundle and message.config is None:
            self.emit("control", name="desired", state="done", detail="already running it")
            self._remember("desired", key)
            return
        files: dict[str, Path] = {}
        for kind, ref in (("bundle", message.bundle if wants_bundle else None), ("config", message.config)):
            if ref is not None:
                path = self.fetch(kind, ref)
                if path is None:
                    return
                files[kind] = path
        if self.on_desired is None:
            names = ", ".join(p.name for p in files.values())
            detail = f"bundle {message.bundle_id or names} downloaded and checked ({names})"
            self.emit("control", name="desired", state="staged", detail=detail[:200])
            self._remember("desired", key)
            return
        try:
            go = self.on_desired(message, files)
        except Refused:
            self._remember("desired", key)  # the same message again would be refused again: central sends another
            raise
        self._remember("desired", key)
        if go is not None:
            go()

    def fetch(self, kind: str, ref: FileRef) -> Path | None:
        """Download `ref` (resuming a partial one), check its size and SHA-256: the file, or None if it is refused
        (a wrong file is deleted and reported). Away while central cannot be reached."""
        final = self.downloads / ref.name
        if final.is_file() and final.stat().st_size == ref.size:
            return final
        part = final.with_name(final.name + ".part")
        if part.exists() and part.stat().st_size > ref.size:
            part.unlink()
        remaining = ref.size - (part.stat().st_size if part.exists() else 0)
        free = shutil.disk_usage(self.downloads).free
        if free < remaining + DISK_RESERVE_BYTES:
            raise Away(f"the box's disk has {free // 1_000_000} MB free; {ref.name} needs {remaining // 1_000_000} MB "
                       f"more and {DISK_RESERVE_BYTES // 1_000_000} MB stay free: it waits for room")  # fmt: skip
        if part.exists() and part.stat().st_size:
            self.log(f"resuming {ref.name} at {part.stat().st_size} of {ref.size} bytes")
        self.central.download(kind, ref, part, self.config.download_kbps, lambda: not self._stop.is_set())
        if self._stop.is_set():
            raise Away("stopped mid-download; it goes on at the next start")
        size = part.stat().st_size
        if size != ref.size or _sha256(part) != ref.sha256:
            part.unlink()
            self._refuse("desired", f"{ref.name}: the download does not match its size and SHA-256")
            return None
        os.replace(part, final)
        return final

    # -- bookkeeping --------------------------------------------------------------------------------------------

    def _refuse(self, name: str, why: str) -> None:
        self.problem = why
        self.log(f"refused: {why}")
        self.emit("control", name=name if name in ("desired", "snapshot") else "desired", state="refused",
                  detail=why[:200])  # fmt: skip

    def _done(self, name: str) -> str | None:
        try:
            return json.loads(self._handled.read_text()).get(name)
        except (OSError, ValueError):
            return None

    def _remember(self, name: str, key: str) -> None:
        try:
            handled = json.loads(self._handled.read_text())
        except (OSError, ValueError):
            handled = {}
        handled[name] = key
        tmp = self._handled.with_suffix(".tmp")
        tmp.write_text(json.dumps(handled))
        os.replace(tmp, self._handled)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_uplink(config: UplinkConfig | None, store: str, box: str, state: Path, emit: Emit,
                running_bundle: str | None, on_desired: OnDesired | None = None) -> Uplink | None:  # fmt: skip
    if config is None:
        return None
    try:
        return Uplink(config, store, box, state, emit, running_bundle, on_desired=on_desired)
    except OSError as exc:
        raise ShelfWatchError(f"uplink: cannot use {state} ({exc.strerror})") from None
