"""The agent: a frame's way through the box, as a line of small stages.

    source -> motion -> shoppers -> gate -> actions -> detection schedule -> shelf -> events

1. `video.VideoSource` reads the frame;
2. `scene.MotionWatcher` makes its foreground mask (motion anywhere, in each shelf zone);
3. `scene.ShopperTracker` follows the shopper blobs; a shopper who left closes their basket;
4. `scene.MotionGate`: when nothing has moved for a while, the models are skipped;
5. `action.ActionStream` runs the encoder and one LSTM step and closes action segments;
6. `schedule.DetectionSchedule` decides whether the product detector runs on this frame;
7. `shelf.ShelfCounter` follows each shelf zone and recounts it when quiet: picks and put-backs;
8. `report.Reporter` turns segments, shelf changes and leaving shoppers into events through
   `emitter.Emitter` (outbox first, then JSONL and MQTT).
On the side: `annotate.Annotator` draws the frame, `telemetry.Telemetry` times it, sends the heartbeat and
reports progress.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edge.action import ActionRecognizer, ActionStream
from edge.annotate import Annotator, Codec
from edge.bundle import Manifest, load_bundle
from edge.config import BoxConfig
from edge.detector import ProductDetector
from edge.emitter import Emitter
from edge.events import StatusEvent, encode
from edge.outbox import Outbox
from edge.providers import choose_providers
from edge.publisher import Publisher
from edge.report import Reporter
from edge.scene import MotionGate, MotionWatcher, ShopperTracker, default_zones
from edge.schedule import DetectionSchedule
from edge.segments import Segmenter
from edge.shelf import SAMPLES, SPACING, ShelfCounter
from edge.telemetry import Progress, Telemetry
from edge.video import Frame, SourceStopped, VideoSource

# A still picture carries on the action seen before it for this long: a shopper standing still at the shelf is still
# inspecting it, though the motion gate has stopped the models.
STILL_CARRY_S = 10.0


@dataclass(frozen=True)
class RunOptions:
    events_jsonl: Path | None = None
    annotate: Path | None = None
    annotate_codec: Codec = "mp4v"  # h264 (needs PyAV) for a browser
    max_frames: int | None = None
    realtime: bool = False
    flush_timeout_s: float = 10.0
    on_progress: Callable[[Progress], None] | None = None  # called about twice a second, and once at the end
    start_time: datetime | None = None  # a video file's own start (its events are timed on the clip's clock)


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


@dataclass
class Stages:
    """The box's stages for one camera, in the order a frame passes them."""

    source: VideoSource
    motion: MotionWatcher
    shoppers: ShopperTracker
    gate: MotionGate
    actions: ActionStream
    schedule: DetectionSchedule
    shelf: ShelfCounter
    reporter: Reporter
    annotator: Annotator | None
    telemetry: Telemetry

    def close(self) -> None:
        self.source.close()
        if self.annotator is not None:
            self.annotator.close()


def run_agent(config: BoxConfig, options: RunOptions) -> Summary:
    manifest = load_bundle(config.bundle)
    outbox = Outbox(config.outbox.path, config.outbox.max_events, config.outbox.max_age_s)
    emitter = Emitter(config.store, config.box, outbox, options.events_jsonl)
    telemetry = Telemetry(emitter, manifest.bundle_id, config.heartbeat_s, on_progress=options.on_progress)
    stop = _Stop()

    def keep_waiting() -> bool:
        """While the camera is unreachable the heartbeat goes on, and a stop request ends the wait."""
        telemetry.tick()
        return not stop.requested

    publisher, s = None, None
    try:
        if config.mqtt is not None:  # before the camera: a box whose camera is down still reports
            publisher = _start_publisher(config, outbox, emitter)
        telemetry.heartbeat("running")
        try:
            s = build_stages(config, options, manifest, telemetry, keep_waiting)
        except SourceStopped:
            log("stopped while waiting for the camera")
            summary = Summary(stopped_by_signal=True)
        else:
            summary = run_frames(s, options, stop)
        if publisher is not None and not publisher.flush(options.flush_timeout_s):
            log(f"{outbox.depth()} event(s) not yet acknowledged; they stay in the outbox for the next run")
        final = telemetry.heartbeat("stopped", publish=False)
        if publisher is not None:
            publisher.stop(final)
            publisher = None
    finally:
        stop.restore()
        if publisher is not None:  # an error ended the loop: let the broker's last will speak
            publisher.abandon()
        if s is not None:
            s.close()
        emitter.close()
    summary.events = dict(emitter.counts)
    summary.outbox_depth = outbox.depth()
    outbox.close()
    return summary


def run_frames(s: Stages, options: RunOptions, stop: _Stop) -> Summary:
    """Each frame through the stages, until the source ends, a stop is requested or --max-frames is reached."""
    last: Frame | None = None
    for frame in s.source.frames():
        started = time.perf_counter()
        fg = s.motion.update(frame.image)
        s.reporter.saw(frame, fg)
        s.reporter.shoppers_left(s.shoppers.update(fg.mask, frame.ts, fg.fresh))
        active = s.gate.update(frame.index, fg)
        s.reporter.actions(s.actions.update(frame, active))
        action = s.actions.label if active else None  # what the model saw on this frame, not what a still one carries
        look = s.schedule.look(frame, active, action)
        s.reporter.changes(s.shelf.update(frame.index, fg, action, look))
        if s.annotator is not None:
            s.annotator.write(frame.image, s.schedule.latest if active or look.ran else [],
                              list(s.shoppers.tracks.values()), s.reporter.present_baskets(), s.actions.current,
                              active, s.telemetry.fps)  # fmt: skip
        s.telemetry.frame_done(frame, active, started)
        last = frame
        if stop.requested or (options.max_frames is not None and s.telemetry.frames >= options.max_frames):
            break
    return _finish(s, last, stop.requested)


def build_stages(
    config: BoxConfig, options: RunOptions, manifest: Manifest, telemetry: Telemetry,
    keep_waiting: Callable[[], bool],
) -> Stages:  # fmt: skip
    providers = choose_providers(config.provider, cache_dir=config.bundle / "trt-cache")
    recognizer = ActionRecognizer(manifest, config.bundle, providers, config.threads)
    detector = ProductDetector(manifest, config.bundle, providers, config.threads,
                               conf=min(0.25, config.thresholds.detector_confidence))  # fmt: skip

    def reconnecting(message: str) -> None:
        telemetry.reconnects += 1
        log(message)

    source = VideoSource(
        config.camera.source, config.camera.read_timeout_s, config.camera.reconnect_max_s,
        realtime=options.realtime or config.camera.realtime, on_reconnect=reconnecting, keep_waiting=keep_waiting,
        on_warning=log, start_time=options.start_time,
    )  # fmt: skip
    if source.kind == "file":
        log(f"timing the clip from {datetime.fromtimestamp(source.clock_start, timezone.utc).isoformat()} "
            f"({source.clock_source})")  # fmt: skip
    fps, size = source.fps, (source.width, source.height)
    zones = config.zones or default_zones(*size)
    if not config.zones:
        z = zones[0].polygon
        log(f"no shelf zones configured: assuming the demo store's layout, one zone '{zones[0].name}' over "
            f"({z[0][0]:.0f},{z[0][1]:.0f})-({z[2][0]:.0f},{z[2][1]:.0f}) of the {size[0]}x{size[1]} picture (the top "
            "36%); a box config's `zones` names the real shelves")  # fmt: skip
    names = {s.sku: s.name for s in (manifest.detector.catalog if manifest.detector else [])}
    names.update({s.sku: s.name for s in config.catalog if s.name})
    t = config.thresholds
    motion = MotionWatcher(size, zones)
    shoppers = ShopperTracker(size, ~motion.shelf, gone_s=t.shopper_gone_s)
    telemetry.total = source.frame_count
    if options.max_frames is not None:
        telemetry.total = min(telemetry.total or options.max_frames, options.max_frames)
    schedule = DetectionSchedule(detector, max(1, round(t.detect_every_s * fps)),
                                 {s.detector_class: s.sku for s in config.catalog})  # fmt: skip
    shelf = ShelfCounter(zones, max(1, round(t.shelf_quiet_s * fps)), t.motion_fraction, t.detector_confidence,
                         size)  # fmt: skip
    return Stages(
        source=source,
        motion=motion,
        shoppers=shoppers,
        gate=MotionGate(t.motion_fraction, max(1, round(t.motion_hold_s * fps))),
        actions=ActionStream(recognizer, Segmenter(), still_frames=round(STILL_CARRY_S * fps)),
        schedule=schedule,
        shelf=shelf,
        reporter=Reporter(telemetry.emitter, shoppers, fps, t.action_confidence, shelf, schedule),
        annotator=Annotator(options.annotate, fps, size, zones, names, options.annotate_codec)
        if options.annotate
        else None,
        telemetry=telemetry,
    )


def _start_publisher(config: BoxConfig, outbox: Outbox, emitter: Emitter) -> Publisher:
    assert config.mqtt is not None
    will = StatusEvent(event_id=f"will-{config.box}-{int(time.time())}", seq=outbox.last_seq(),
                       ts=datetime.now(timezone.utc), store=config.store, box=config.box, state="offline")  # fmt: skip
    publisher = Publisher(outbox, config.mqtt, f"shelfwatch-{config.store}-{config.box}", emitter.topic("status"),
                          encode(will))  # fmt: skip
    emitter.publisher = publisher
    publisher.start()
    return publisher


def _finish(s: Stages, last: Frame | None, stopped: bool) -> Summary:
    """The stream ended (or was stopped): close the running action segment and, at the end of a file, count a
    zone a hand went into that had no quiet moment left, from the last few frames (never from one)."""
    s.reporter.actions(s.actions.close(last.index + 1 if last is not None else 0))
    if last is not None and not stopped:
        s.reporter.changes(s.shelf.finish(last.index, s.schedule.detect_last(SAMPLES, SPACING)))
    s.reporter.finish()
    r, t = s.reporter, s.telemetry
    if t.on_progress is not None:
        t.on_progress(t.progress(done=True))
    return Summary(frames=t.frames, seconds=t.seconds, active_frames=t.active_frames, detections_run=s.schedule.runs,
                   actions=r.actions_seen, picks=r.picks, putbacks=r.putbacks, baskets=r.open_baskets(),
                   stopped_by_signal=stopped)  # fmt: skip
