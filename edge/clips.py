"""Clips of the box's unsure moments, for a person to review (`clips` in the box config; off unless `keep`).

Three small stages, each beside the agent's line:
- `FrameRing`: the last few seconds of frames in memory (bounded by seconds and by bytes), each with the shoppers'
  head boxes of that moment. A clip's frames come from here and from the frames that follow: the source is never
  read twice.
- `unsure_reason`: why an event sent is worth a reviewer's minute (an action under the review confidence, a pick,
  put-back or action's product under the product confidence, footage unlike the model's training), or, for a share
  of sure events drawn at random, that it was drawn.
- `ClipKeeper`: hears the events as they are stored, and from the frame loop opens a clip `before_s` ahead of an
  unsure moment (as far back as the ring reaches) and ends it `after_s` after it; a moment that falls inside an open
  clip joins it (up to `max_s`). At most `max_per_hour` clips, within `max_mb` (the oldest deleted first), each
  deleted `retention_days` after it was kept. A clip is encoded by a thread of its own into a hidden temporary file
  and renamed into place once complete, so a clip is there whole or not at all (what a killed agent left half-written
  is deleted at the next start); it is then handed to the uplink with the ids of the events it covers.

A clip's name tells central where it is: `clip-<ms of its first frame>-<first>-<end>.mp4`, the first frame's
time (UNIX milliseconds, on the source's clock) and the unsure stretch's frames within the clip [first, end);
`-unfamiliar` before `.mp4` when it shows the start of a stretch the familiarity guard found unlike the model's
training (which asks for a clip even when no event came of it).
With `blur_heads`, each shopper's head (the centre of their tracked blob, as an overhead camera sees it) is blurred
in every frame before the clip is written; a pixel the blur would leave as it was is shifted, so that no head pixel
of the original leaves the box."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.config import ClipsConfig
from edge.scene import Shopper

WRITING = ".writing-"  # a clip being encoded: hidden, and deleted at the next start if the agent died meanwhile
MAX_COVERS = 8  # the ids a clip names (central keeps as many)
SWEEP_S = 60.0  # how often retention and the budget are checked while the agent runs
NAME = re.compile(r"^clip-(\d{1,16})-(\d{1,9})-(\d{1,9})(-unfamiliar)?\.mp4$")
UNFAMILIAR = ""  # the "event id" of an unfamiliar stretch's start: no event, the name says it
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in the kept frame's pixels
Send = Callable[[str, bytes, "tuple[str, ...]"], None]  # (name, the MP4's bytes, covered event ids)


@dataclass(frozen=True)
class Kept:
    """One frame in the ring: its index and time on the source's clock, the picture (at most max_width wide) and
    where the shoppers' heads were."""

    index: int
    ts: float
    image: np.ndarray
    heads: tuple[Box, ...]


class FrameRing:
    """The most recent frames, at most `seconds` of them and at most `max_bytes` of pictures."""

    def __init__(self, fps: float, seconds: float, frame_bytes: int, max_bytes: int) -> None:
        self.capacity = max(1, min(round(fps * seconds), max_bytes // max(1, frame_bytes)))
        self.frames: deque[Kept] = deque(maxlen=self.capacity)

    def push(self, kept: Kept) -> None:
        self.frames.append(kept)

    def since(self, index: int) -> list[Kept]:
        """The frames from `index` on (from the oldest kept, where `index` is older than that)."""
        return [k for k in self.frames if k.index >= index]


def unsure_reason(kind: str, event: dict, config: ClipsConfig) -> str | None:
    """Why this event is worth a reviewer's minute, or None when the box was sure of it."""
    if kind not in ("action", "pick", "putback"):
        return None
    if config.unfamiliar and event.get("familiar") is False:
        return "unfamiliar"
    if kind == "action" and event.get("confidence", 1.0) < config.review_confidence:
        return "low action confidence"
    if kind in ("pick", "putback") and event.get("confidence", 1.0) < config.product_confidence:
        return "low product confidence"
    sku_confidence = event.get("sku_confidence")
    if kind == "action" and sku_confidence is not None and sku_confidence < config.product_confidence:
        return "low product confidence"
    return None


def head_boxes(shoppers: Iterable[Shopper], scale: float, size: tuple[int, int]) -> tuple[Box, ...]:
    """Each tracked blob's head, in a picture scaled by `scale` of `size` (width, height): a square half the blob's
    shorter side, at its centre (from above, a shopper's head is the middle of their blob)."""
    out = []
    for s in shoppers:
        x0, y0, x1, y1 = s.box
        side = max(8.0, 0.5 * min(x1 - x0, y1 - y0)) * scale
        cx, cy = s.centre[0] * scale, s.centre[1] * scale
        box = (int(max(0, cx - side / 2)), int(max(0, cy - side / 2)), int(min(size[0], cx + side / 2 + 1)),
               int(min(size[1], cy + side / 2 + 1)))  # fmt: skip
        if box[2] > box[0] and box[3] > box[1]:
            out.append(box)
    return tuple(out)


def blur_heads(image: np.ndarray, heads: Iterable[Box]) -> np.ndarray:
    """A copy of `image` with every head box blurred (a box blur as wide as half the box); where the blur left a pixel
    as it was (a flat patch), it is shifted by 32 levels: no pixel of a head stays what it was."""
    out = image.copy()
    mask = np.zeros(image.shape[:2], bool)
    for x0, y0, x1, y1 in heads:
        k = max(3, (min(x1 - x0, y1 - y0) // 2) | 1)
        out[y0:y1, x0:x1] = cv2.blur(image[y0:y1, x0:x1], (k, k))
        mask[y0:y1, x0:x1] = True
    same = mask & np.all(out == image, axis=2)
    out[same] ^= 0x20
    return out


@dataclass
class _Clip:
    """A clip being gathered: frames [lo, hi] of the source, the unsure stretch [first, last] within it."""

    lo: int
    hi: int
    first: int
    last: int
    covers: list[str] = field(default_factory=list)
    unfamiliar: bool = False  # it shows the start of a stretch unlike the model's training (named so)
    start_ts: float = 0.0
    start_index: int = 0
    next_index: int = 0  # the next frame it takes


class ClipKeeper:
    def __init__(self, config: ClipsConfig, folder: Path, fps: float, size: tuple[int, int], send: Send | None,
                 log: Callable[[str], None], clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:  # fmt: skip
        self.config, self.folder, self.fps, self.send, self.log, self.clock = config, folder, fps, send, log, clock
        self.rng = rng or random.Random()
        self.scale = min(1.0, config.max_width / size[0])
        self.size = (max(2, round(size[0] * self.scale)) // 2 * 2, max(2, round(size[1] * self.scale)) // 2 * 2)
        # The ring reaches back before_s ahead of an event, and as long again for the time an event takes to close.
        self.ring = FrameRing(fps, 2 * config.before_s + config.max_s / 2, self.size[0] * self.size[1] * 3,
                              int(config.memory_mb * 1_000_000))  # fmt: skip
        self.before, self.after = round(config.before_s * fps), round(config.after_s * fps)
        self.longest = max(1, round(config.max_s * fps))
        self.heard_events: deque[tuple[int, int, str]] = deque()  # (first frame, last frame, event id), any thread
        self.waiting: list[tuple[int, int, str]] = []  # moments heard while another clip was open
        self.open: _Clip | None = None
        self._unfamiliar_at: int | None = None  # the latest frame the guard found unfamiliar
        self.kept = self.skipped = 0  # clips written; moments with no clip (the hourly limit)
        self.on_discard: Callable[[str], None] | None = None  # a clip deleted here (the uplink forgets it too)
        # One thread encodes the clips, in order: the clip (its start), its frames, the clip again (its end).
        self.jobs: queue.Queue[_Clip | Kept | None] = queue.Queue()
        self._opened = self._written = 0  # clips opened (by the frame loop) and written (by the writer)
        self._writer = threading.Thread(target=self._run, name="clip-writer", daemon=True)
        self._swept = 0.0
        self._sweeping = threading.Lock()  # the frame loop and the writers' threads both sweep
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(f"{WRITING}*"):  # a clip the agent did not finish: never sent, never kept
            leftover.unlink(missing_ok=True)
        self.sweep()
        self._writer.start()

    # -- what the emitter and the frame loop call ---------------------------------------------------------------

    def heard(self, kind: str, payload: bytes) -> None:
        """An event was stored (any thread): an unsure one, or a sure one drawn at random, asks for a clip."""
        if kind not in ("action", "pick", "putback"):
            return
        event = json.loads(payload)
        reason = unsure_reason(kind, event, self.config)
        if reason is None and not (self.config.sure_share and self.rng.random() < self.config.sure_share):
            return
        first, last = (event["start"], event["end"] - 1) if kind == "action" else (event["frame"], event["frame"])
        self.heard_events.append((first, max(first, last), event["event_id"]))

    def unfamiliar(self, index: int) -> None:
        """The familiarity guard found this frame unlike the model's training: the start of such a stretch (none in
        the `after_s` before it) asks for a clip, even when no event came of it."""
        if self.config.unfamiliar and (self._unfamiliar_at is None or index - self._unfamiliar_at > self.after):
            self.heard_events.append((index, index, UNFAMILIAR))
        self._unfamiliar_at = index

    def update(self, index: int, ts: float, image: np.ndarray, shoppers: Iterable[Shopper]) -> None:
        """One frame of the source, after the events of this frame were sent."""
        small = image if self.scale == 1.0 and image.shape[1] == self.size[0] else cv2.resize(image, self.size)
        if small is image:
            small = image.copy()  # the annotator draws on the frame it is given
        heads = head_boxes(shoppers, self.scale, self.size) if self.config.blur_heads else ()
        self.ring.push(Kept(index, ts, small, heads))
        while self.heard_events:
            self.waiting.append(self.heard_events.popleft())
        self._join_or_open()
        clip = self.open
        if clip is not None:
            for kept in self.ring.since(clip.next_index):
                if kept.index > clip.hi:
                    break
                self._feed(clip, kept)
            if clip.next_index > clip.hi:
                self._finish(clip)
        if self.clock() - self._swept >= SWEEP_S:
            self.sweep()

    def close(self, timeout: float = 30.0) -> None:
        """The source ended or the agent stops: an open clip is written with the frames it has, and so is one for
        a moment heard at the very end (the segments the end of the source closed)."""
        while self.heard_events:
            self.waiting.append(self.heard_events.popleft())
        for _ in range(MAX_COVERS):
            self._join_or_open()
            clip = self.open
            if clip is None:
                break
            for kept in self.ring.since(clip.next_index):
                if kept.index <= clip.hi:
                    self._feed(clip, kept)
            self._finish(clip)
        self.waiting = []
        self.jobs.put(None)
        self._writer.join(timeout)

    # -- keeping within bounds ----------------------------------------------------------------------------------

    def clips(self) -> list[Path]:
        """The kept clips, oldest first."""
        return sorted((p for p in self.folder.glob("clip-*.mp4")), key=lambda p: (p.stat().st_mtime, p.name))

    def sweep(self) -> None:
        """Delete the clips past their retention, then the oldest while the clips take more than their budget."""
        with self._sweeping:
            self._sweep()

    def _sweep(self) -> None:
        self._swept = now = self.clock()
        kept = self.clips()
        for path in list(kept):
            if now - path.stat().st_mtime > self.config.retention_days * 86400:
                self._discard(path, "past its retention")
                kept.remove(path)
        total = sum(p.stat().st_size for p in kept)
        while kept and total > self.config.max_mb * 1_000_000:
            oldest = kept.pop(0)
            total -= oldest.stat().st_size
            self._discard(oldest, "over the clips' disk budget")

    def _discard(self, path: Path, why: str) -> None:
        path.unlink(missing_ok=True)
        if self.on_discard is not None:
            self.on_discard(path.name)
        self.log(f"clip {path.name} deleted: {why}")

    def _this_hour(self) -> int:
        now = self.clock()
        recent = sum(1 for p in self.clips() if now - p.stat().st_mtime < 3600)
        return recent + self._opened - self._written

    # -- gathering ----------------------------------------------------------------------------------------------

    def _join_or_open(self) -> None:
        still = []
        for first, last, event_id in self.waiting:
            clip = self.open
            lo, hi = first - self.before, last + self.after
            if clip is not None:
                if lo <= clip.hi:  # inside the open clip, or just after it: joins it (the clip grows up to max_s)
                    clip.hi = min(max(clip.hi, hi), clip.lo + self.longest - 1)
                    clip.first, clip.last = min(clip.first, first), min(max(clip.last, last), clip.hi)
                    clip.unfamiliar |= event_id == UNFAMILIAR
                    if event_id != UNFAMILIAR and event_id not in clip.covers and len(clip.covers) < MAX_COVERS:
                        clip.covers.append(event_id)
                    continue
                still.append((first, last, event_id))
                continue
            if self._this_hour() >= self.config.max_per_hour:
                self.skipped += 1
                continue
            self._open(lo, hi, first, last, event_id)
        self.waiting = still

    def _open(self, lo: int, hi: int, first: int, last: int, event_id: str) -> None:
        frames = self.ring.since(lo)
        if not frames:
            return
        start = frames[0]
        clip = _Clip(lo=start.index, hi=min(hi, start.index + self.longest - 1), first=max(first, start.index),
                     last=last, covers=[event_id] if event_id != UNFAMILIAR else [],
                     unfamiliar=event_id == UNFAMILIAR, start_ts=start.ts, start_index=start.index,
                     next_index=start.index)  # fmt: skip
        self.open = clip
        self._opened += 1
        self.jobs.put(clip)

    def _feed(self, clip: _Clip, kept: Kept) -> None:
        self.jobs.put(kept)
        clip.next_index = kept.index + 1

    def _finish(self, clip: _Clip) -> None:
        self.jobs.put(clip)  # the end: the writer renames it into place
        self.open = None
        self.kept += 1

    # -- the writer's thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        """The writer's thread: the clips one after the other, each frame as the frame loop hands it over."""
        while True:
            clip = self.jobs.get()
            if clip is None:
                return
            self._write(clip)
            self._written += 1
            with contextlib.suppress(OSError):
                self.sweep()

    def _write(self, clip: _Clip) -> None:
        tmp = self.folder / f"{WRITING}{clip.start_index}.mp4"
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        frames = 0
        try:
            while True:
                item = self.jobs.get()
                if item is clip:
                    break
                image = blur_heads(item.image, item.heads) if item.heads else item.image
                writer.write(image)
                frames += 1
            writer.release()
            first = max(0, clip.first - clip.start_index)
            end = min(frames, max(first + 1, clip.last - clip.start_index + 1))
            name = f"clip-{round(clip.start_ts * 1000)}-{first}-{end}{'-unfamiliar' if clip.unfamiliar else ''}.mp4"
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
                data = f.read()
            covers = tuple(clip.covers[:MAX_COVERS])
            if self.send is not None:
                self.send(name, data, covers)  # the uplink's spool takes it whole (a file of its own) or not at all
            os.replace(tmp, self.folder / name)
            self.log(f"kept clip {name} ({frames} frames, covering {', '.join(covers) or 'no event'})")
        except Exception as exc:  # a full disk, say: this clip is lost, the box goes on watching
            self.log(f"a clip could not be kept: {type(exc).__name__}: {exc}")
            while self.jobs.get() is not clip:  # the rest of its frames
                pass
        finally:
            writer.release()
            tmp.unlink(missing_ok=True)
