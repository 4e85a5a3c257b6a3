"""Where an event goes once it is made: into the outbox first (which gives it its seq and event_id), then to
the JSONL log, then the publisher is nudged. Status heartbeats skip the outbox: only the latest matters."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from edge.errors import ShelfWatchError
from edge.events import (
    ActionEvent,
    BasketEvent,
    ControlEvent,
    PickEvent,
    StatusEvent,
    UploadEvent,
    VisitEvent,
    encode,
    topic,
)
from edge.outbox import Outbox
from edge.publisher import Publisher
from edge.schema import describe

# A status's optional fields shed, with `problem` shortened, should every other field be at its bound at once.
_SHED = ("staged_bundle", "fallback_bundle", "switch_bundle", "switch_s", "switch_frames", "uplink_pending",
         "uplink_dropped")  # fmt: skip
MODELS = {"action": ActionEvent, "pick": PickEvent, "putback": PickEvent, "basket": BasketEvent, "visit": VisitEvent,
          "upload": UploadEvent, "control": ControlEvent}  # fmt: skip


def health_file(outbox: Path) -> Path:
    return outbox.with_name(outbox.stem + ".status.json")


def now() -> datetime:
    return datetime.now(timezone.utc)


class Emitter:
    def __init__(self, store: str, box: str, outbox: Outbox, jsonl: Path | None = None) -> None:
        self.store, self.box, self.outbox = store, box, outbox
        self.health_file = health_file(outbox.path)
        self.publisher: Publisher | None = None
        self.counts: dict[str, int] = {}
        # Called with (kind, payload) after each event is stored (the clip keeper listens: `edge.clips`); from the
        # thread that emitted it, so a listener only takes note.
        self.listeners: list[Callable[[str, bytes], None]] = []
        self._lock = threading.RLock()
        self._jsonl: IO[bytes] | None = None
        if jsonl is not None:
            try:
                jsonl.parent.mkdir(parents=True, exist_ok=True)
                self._jsonl = jsonl.open("ab")
            except OSError as exc:
                raise ShelfWatchError(f"{jsonl}: cannot write events there ({exc.strerror})") from None

    def topic(self, kind: str) -> str:
        return topic(self.store, self.box, kind)

    def emit(self, kind: str, ts: datetime | None = None, **fields: Any) -> bytes:
        """`ts`: when it happened on the source's clock (a clip's own time); by default now. The frame loop and
        the uplink's thread both emit: one at a time (the JSONL log and the counts are shared)."""
        with self._lock:
            return self._emit(kind, ts, **fields)

    def _emit(self, kind: str, ts: datetime | None, **fields: Any) -> bytes:
        model = MODELS[kind]
        extra = {"kind": kind} if kind in ("pick", "putback") else {}

        def build(seq: int, event_id: str) -> bytes:
            event = model(event_id=event_id, seq=seq, ts=ts or now(), store=self.store, box=self.box, **extra, **fields)
            return encode(event)

        try:
            stored = self.outbox.add(self.topic(kind), build)
        except ValueError as exc:  # out of the event contract's bounds (pydantic's ValidationError is a ValueError)
            # No consumer could take it: say so and go on watching, rather than stop the box for one event.
            reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            print(f"shelfwatch edge: a {kind} event was not made, it breaks the event contract ({reason})",
                  file=sys.stderr, flush=True)  # fmt: skip
            self.counts["unsendable"] = self.counts.get("unsendable", 0) + 1
            return b""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._log(stored.payload)
        if self.publisher is not None:
            self.publisher.notify()
        for listener in self.listeners:
            listener(kind, stored.payload)
        return stored.payload

    def status(self, state: str, publish: bool = True, **fields: Any) -> bytes:
        with self._lock:
            event = StatusEvent(
                event_id=str(uuid.uuid4()), seq=self.outbox.last_seq(), ts=now(), store=self.store, box=self.box,
                state=state, outbox_depth=self.outbox.depth(), outbox_dropped=self.outbox.dropped(),
                refused_publishes=self.publisher.refused if self.publisher is not None else None, **fields,
            )  # fmt: skip
            try:
                payload = encode(event)
            except ValueError:  # over the payload limit (every bound at once): the heartbeat goes out all the same
                payload = encode(event.model_copy(update={**dict.fromkeys(_SHED), "problem": (
                    event.problem[:63] + "…" if event.problem else None)}))  # fmt: skip
            self._log(payload)
            tmp = self.health_file.with_suffix(".tmp")
            tmp.write_bytes(payload)
            os.replace(tmp, self.health_file)  # the container's health check reads the latest status here
            if publish and self.publisher is not None:
                self.publisher.publish_status(payload)
            return payload

    def _log(self, payload: bytes) -> None:
        if self._jsonl is not None:
            self._jsonl.write(payload + b"\n")
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
