"""The agent's loop. Where a frame goes:

1. `video.VideoSource` reads it;
2. `scene.MotionWatcher` makes its foreground mask: motion anywhere (the gate), in each shelf zone, and
   the shopper blobs (`scene.ShopperTracker`);
3. if something moves, `action.ActionStream` runs the encoder and one LSTM step, and the shared
   segmenter closes action segments -> action events; otherwise the models are skipped;
4. the product detector runs only where it matters: a shelf zone recount (`shelf.ShelfCounter`), the
   frames of a hand in the shelf, a retract or an inspection, and a slow refresh;
5. shelf changes become picks and put-backs of the nearest shopper (`baskets.Baskets`) -> events;
6. every event goes through `emitter.Emitter` (outbox, JSONL, MQTT); the annotated frame is written.
"""

from __future__ import annotations

import signal
import statistics
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edge.action import ActionRecognizer, ActionStream
from edge.annotate import Annotator
from edge.baskets import Baskets
from edge.bundle import load_bundle
from edge.classes import ACTION_CLASSES, Action
from edge.config import BoxConfig
from edge.detector import Detection, ProductDetector
from edge.emitter import Emitter
from edge.events import StatusEvent, encode
from edge.outbox import Outbox
from edge.providers import choose_providers
from edge.publisher import Publisher
from edge.scene import MotionWatcher, ShopperTracker, default_zones
from edge.segments import ActionSegment, Segmenter
from edge.shelf import ShelfChange, ShelfCounter
from edge.video import VideoSource

# A hand at or in the shelf, or a product being looked at (held over the shelf's edge, often put straight back):
# no shelf recount while one is recognised.
AT_SHELF = {Action.REACH_TO_SHELF, Action.HAND_IN_SHELF, Action.RETRACT_FROM_SHELF, Action.INSPECT_PRODUCT}
# A hand going into the shelf: one visit, however the model splits it between reaching and being in the shelf.
INTO_SHELF = {Action.REACH_TO_SHELF, Action.HAND_IN_SHELF}
# Actions during which the products in hands matter enough to detect on every few frames.
DETECT_DURING = {Action.HAND_IN_SHELF, Action.RETRACT_FROM_SHELF, Action.INSPECT_PRODUCT}
DETECT_STRIDE = 3


@dataclass(frozen=True)
class RunOptions:
    events_jsonl: Path | None = None
    annotate: Path | None = None
    max_frames: int | None = None
    realtime: bool = False
    flush_timeout_s: float = 10.0


@dataclass
class Summary:
    frames: int = 0
    seconds: float = 0.0
    active_frames: int = 0
    detections_run: int = 0
    actions: Counter = field(default_factory=Counter)
    picks: int = 0
    putbacks: int = 0
    baskets: dict[int, dict[str, int]] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    outbox_depth: int = 0
    stopped_by_signal: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def motion_skip(self) -> float:
        return 1 - self.active_frames / self.frames if self.frames else 0.0


class _Stop:
    """SIGTERM and SIGINT end the loop after the current frame; what was accepted is then flushed."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def log(message: str) -> None:
    print(f"shelfwatch edge: {message}", file=sys.stderr, flush=True)


def run_agent(config: BoxConfig, options: RunOptions) -> Summary:
    manifest = load_bundle(config.bundle)
    providers = choose_providers(config.provider, cache_dir=config.bundle / "trt-cache")
    recognizer = ActionRecognizer(manifest, config.bundle, providers, config.threads)
    detector = ProductDetector(manifest, config.bundle, providers, config.threads,
                               conf=min(0.25, config.thresholds.detector_confidence))  # fmt: skip
    source = VideoSource(
        config.camera.source, config.camera.read_timeout_s, config.camera.reconnect_max_s,
        realtime=options.realtime or config.camera.realtime, on_reconnect=log,
    )  # fmt: skip
    fps = source.fps
    size = (source.width, source.height)
    zones = config.zones or default_zones(*size)
    sku_of = {s.detector_class: s.sku for s in config.catalog}
    names = {s.sku: s.name for s in (manifest.detector.catalog if manifest.detector else [])}
    names.update({s.sku: s.name for s in config.catalog if s.name})

    outbox = Outbox(config.outbox.path, config.outbox.max_events, config.outbox.max_age_s)
    emitter = Emitter(config.store, config.box, outbox, options.events_jsonl)
    publisher = None
    if config.mqtt is not None:
        will = StatusEvent(event_id=f"will-{config.box}-{int(time.time())}", seq=outbox.last_seq(),
                           ts=_utc(time.time()), store=config.store, box=config.box, state="offline")  # fmt: skip
        publisher = Publisher(outbox, config.mqtt, f"shelfwatch-{config.store}-{config.box}",
                              emitter.topic("status"), encode(will))  # fmt: skip
        emitter.publisher = publisher
        publisher.start()

    t = config.thresholds
    watcher = MotionWatcher(size, zones)
    shoppers = ShopperTracker(size, ~watcher.shelf, gone_s=t.shopper_gone_s)
    shelf = ShelfCounter(zones, max(1, round(t.shelf_quiet_s * fps)), t.motion_fraction, t.detector_confidence,
                         size)  # fmt: skip
    actions = ActionStream(recognizer, Segmenter())
    baskets = Baskets()
    annotator = Annotator(options.annotate, fps, size, zones, names) if options.annotate else None
    summary = Summary()
    frame_ts: dict[int, float] = {}
    shelf_x: float | None = None
    hold = max(1, round(t.motion_hold_s * fps))
    refresh = max(1, round(t.detect_every_s * fps))
    last_motion, last_detect = -(10**9), -(10**9)
    detections: list[Detection] = []
    latencies: deque[float] = deque(maxlen=300)
    recent: deque[float] = deque(maxlen=60)
    dropped = 0
    next_status = time.monotonic()
    stop = _Stop()
    started = time.perf_counter()
    index = -1
    last_image = None
    previous: int | None = None  # the action recognised on the frame before

    def shopper_of(x: float | None, y: float | None = None) -> int | None:
        s = shoppers.nearest(x, y)
        return s.id if s else None

    def emit_segments(segments: list[ActionSegment]) -> None:
        for seg in segments:
            if seg.label == Action.NO_ACTION:
                continue
            summary.actions[ACTION_CLASSES[seg.label]] += 1
            start_ts = frame_ts.get(seg.start, time.time())
            end_ts = frame_ts.get(seg.end - 1, time.time())
            emitter.emit("action", action=ACTION_CLASSES[seg.label], start=seg.start, end=seg.end,
                         start_ts=_utc(start_ts), end_ts=_utc(end_ts), confidence=round(seg.confidence, 4),
                         shopper=shopper_of(shelf_x))  # fmt: skip

    def emit_change(change: ShelfChange) -> None:
        nearest = shopper_of(change.x, change.y)
        owner = baskets.owner_of_putback(change.sku, nearest) if change.kind == "putback" else nearest
        owner = owner if owner is not None else 0  # 0: nobody seen (a shelf change without a shopper)
        emitter.emit(change.kind, sku=change.sku, quantity=change.quantity, shopper=owner, frame=change.frame,
                     confidence=round(change.confidence, 4), zone=change.zone)  # fmt: skip
        if change.kind == "pick":
            summary.picks += change.quantity
        else:
            summary.putbacks += change.quantity
        items = baskets.apply(owner, change.kind, change.sku, change.quantity)
        emitter.emit("basket", shopper=owner, items=items, reason="change", confidence=round(change.confidence, 4))

    def heartbeat(state: str, publish: bool = True) -> bytes:
        return emitter.status(
            state, fps=round(len(recent) / max(1e-9, sum(recent)), 2) if recent else 0.0,
            latency_ms=round(statistics.median(latencies), 3) if latencies else 0.0, frames=summary.frames,
            dropped_frames=dropped, motion_skip=round(summary.motion_skip, 4), source_reconnects=source.reconnects,
            bundle_id=manifest.bundle_id, publish=publish,
        )  # fmt: skip

    try:
        heartbeat("running")
        for frame in source.frames():
            t0 = time.perf_counter()
            index, last_image = frame.index, frame.image
            frame_ts[index] = frame.ts
            frame_ts.pop(index - 10 * int(fps) * 60, None)  # ten minutes of timestamps is plenty
            if frame.after_gap:
                dropped += 1
                emit_segments(actions.gap(index))
            fg = watcher.update(frame.image)
            for gone in shoppers.update(fg.mask, frame.ts, fg.fresh):
                final = baskets.leave(gone)
                if final is not None:
                    summary.baskets[gone] = final
                    emitter.emit("basket", shopper=gone, items=final, reason="left", confidence=1.0)
            xs = [x for x in fg.zone_x.values() if x is not None]
            if xs:
                shelf_x = float(statistics.mean(xs))
            if fg.moving > t.motion_fraction:
                last_motion = index
            active = index - last_motion <= hold
            if active:
                summary.active_frames += 1
                emit_segments(actions.frame(index, frame.image))
            else:
                emit_segments(actions.gap(index))
            current = actions.current
            label = current[0] if current is not None else None
            hand_in = label in INTO_SHELF and previous not in INTO_SHELF
            recount = shelf.observe(fg, busy=label in AT_SHELF, hand_in=hand_in)
            previous = label
            during = active and label in DETECT_DURING and index % DETECT_STRIDE == 0
            periodic = active and index - last_detect >= refresh
            if recount or during or periodic:
                detections = [d if not sku_of else _renamed(d, sku_of) for d in detector(frame.image)]
                summary.detections_run += 1
                last_detect = index
                shelf.handled(detections)
                if recount:
                    for change in shelf.counted(index, detections):
                        emit_change(change)
            if annotator is not None:
                annotator.write(frame.image, detections if active or recount else [], list(shoppers.tracks.values()),
                                {s: baskets.snapshot(s) for s in shoppers.present}, current, active,
                                len(recent) / max(1e-9, sum(recent)) if recent else 0.0)  # fmt: skip
            summary.frames += 1
            took = time.perf_counter() - t0
            latencies.append(took * 1000)
            recent.append(took)
            if time.monotonic() >= next_status:
                heartbeat("running")
                next_status = time.monotonic() + config.heartbeat_s
            if stop.requested or (options.max_frames is not None and summary.frames >= options.max_frames):
                summary.stopped_by_signal = stop.requested
                break
        emit_segments(actions.close(index + 1))
        if last_image is not None and not stop.requested:
            for change in shelf.finish(index, detector(last_image)):
                emit_change(change)
        summary.seconds = time.perf_counter() - started
        summary.baskets.update({s: baskets.snapshot(s) for s in list(baskets.items)})
        if publisher is not None and not publisher.flush(options.flush_timeout_s):
            log(f"{outbox.depth()} event(s) not yet acknowledged; they stay in the outbox for the next run")
        final = heartbeat("stopped", publish=False)
        if publisher is not None:
            publisher.stop(final)
            publisher = None
    finally:
        stop.restore()
        if publisher is not None:  # an error ended the loop: let the broker's last will speak
            publisher.abandon()
        source.close()
        if annotator is not None:
            annotator.close()
        emitter.close()
    summary.events = dict(emitter.counts)
    summary.outbox_depth = outbox.depth()
    outbox.close()
    return summary


def _renamed(d: Detection, sku_of: dict[str, str]) -> Detection:
    return Detection(d.box, d.class_index, sku_of.get(d.sku, d.sku), d.confidence)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
