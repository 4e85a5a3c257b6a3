"""The agent: a frame's way through the box, as a line of small stages.

    source -> motion -> shoppers -> gate -> actions (+ familiarity) -> detection schedule -> shelf -> events

1. `video.VideoSource` reads the frame;
2. `scene.MotionWatcher` makes its foreground mask (motion anywhere, in each shelf zone);
3. `scene.ShopperTracker` follows the shopper blobs; a shopper who left closes their basket;
4. `scene.MotionGate`: when nothing has moved for a while, the models are skipped;
5. `action.ActionStream` runs the encoder and one LSTM step and closes action segments, and
   `familiarity.Familiarity` scores the encoder's features of that frame: like the training video or not;
6. `schedule.DetectionSchedule` decides whether the product detector runs on this frame;
7. `shelf.ShelfCounter` follows each shelf zone and recounts it when quiet: picks and put-backs;
8. `report.Reporter` turns segments, shelf changes and leaving shoppers into events through
   `emitter.Emitter` (outbox first, then JSONL and MQTT);
9. `clips.ClipKeeper` (only when the box config keeps clips) hears those events and keeps the frame in its ring:
   an unsure event's clip is written from the seconds before it and the frames after, and sent to central.
On the side: `annotate.Annotator` draws the frame, `telemetry.Telemetry` times it, sends the heartbeat and
reports progress, and `uplink.Uplink` carries files to and from central (its own thread; the loop only hands it
a snapshot when central asked for one). On a box with an uplink, `switch.Switcher` carries out what central's
`desired` asks: a bundle or config staged in a slot and gated on the uplink's thread, the switch at a quiet frame
(the loop ends and the caller restarts the agent), and, at every start, the slot to run (`edge.slots`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from edge import __version__
from edge.action import ActionRecognizer, ActionStream
from edge.annotate import Annotator, Codec
from edge.bundle import Bundle, Manifest, read_bundle
from edge.clips import ClipKeeper
from edge.config import BoxConfig
from edge.detector import SIGHTING_FLOOR, ProductDetector
from edge.emitter import Emitter
from edge.errors import ShelfWatchError
from edge.events import MAX_PROBLEM, StatusEvent, encode
from edge.familiarity import Familiarity
from edge.outbox import Outbox
from edge.providers import choose_providers
from edge.publisher import Publisher
from edge.report import Reporter
from edge.scene import (
    MIN_BLOB,
    QUIET_HOLD_S,
    QUIET_WARMUP_S,
    MotionGate,
    MotionWatcher,
    QuietWatch,
    ShopperTracker,
    default_zones,
)
from edge.schedule import DetectionSchedule
from edge.segments import Segmenter
from edge.shelf import INTO_SHELF, SAMPLES, SPACING, ShelfCounter
from edge.signing import load_trusted_keys
from edge.switch import SWITCH_FLUSH_S, Switcher
from edge.telemetry import Progress, Telemetry
from edge.uplink import Uplink, open_uplink
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
    config_file: Path | None = None  # the box's config file: with an uplink, the box switches bundles (edge.switch)
    source: str | None = None  # --source: wins over the camera of a config central sent


@dataclass(frozen=True)
class FamiliaritySummary:
    threshold: float
    scored_frames: int
    unfamiliar_frames: int
    spans: list[tuple[int, int]]  # unfamiliar stretches, frames [start, end)

    @property
    def share(self) -> float:
        return self.unfamiliar_frames / self.scored_frames if self.scored_frames else 0.0


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
    restart: bool = False  # stopped for a switch: the caller restarts the agent (edge.switch.restart)
    # Familiarity (None: the bundle has no guard): frames scored and found unfamiliar, their stretches [start, end)
    familiarity: FamiliaritySummary | None = None
    unsure: dict[str, int] = field(default_factory=dict)  # unfamiliar picks and put-backs (in no basket)
    withheld: dict[str, int] = field(default_factory=dict)  # events not sent, and why

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
    familiarity: Familiarity | None  # None: the bundle has no guard (familiarity unknown)
    schedule: DetectionSchedule
    shelf: ShelfCounter
    reporter: Reporter
    annotator: Annotator | None
    telemetry: Telemetry
    clips: ClipKeeper | None = None  # clips of unsure moments (None: the box keeps no footage, the default)
    uplink: Uplink | None = None  # the channel to central: a snapshot is taken from the frame loop
    switcher: Switcher | None = None  # the slots: camera frames for the health gate, the switch at a quiet frame
    quiet: QuietWatch = field(default_factory=lambda: QuietWatch(0, 1))  # nobody in view: for a snapshot

    def close(self) -> None:
        self.source.close()
        if self.clips is not None:
            self.clips.close()
        if self.annotator is not None:
            self.annotator.close()


def run_agent(config: BoxConfig, options: RunOptions) -> Summary:
    outbox = Outbox(config.outbox_file(), config.outbox.max_events, config.outbox.max_age_s)
    emitter = Emitter(config.store, config.box, outbox, options.events_jsonl)
    switcher = None
    try:
        if config.uplink is not None and options.config_file is not None:  # central can send it bundles: slots
            switcher = Switcher(config, options.config_file, emitter.emit, log, options.source)
            config, bundle = switcher.start(check_bundle)
        else:
            bundle = check_bundle(config)
    except ShelfWatchError as exc:
        refuse(config, outbox, emitter, str(exc), options.flush_timeout_s)
        raise
    manifest = bundle.manifest
    signer = bundle.signed_by.key_id if bundle.signed_by is not None else None
    telemetry = Telemetry(emitter, manifest.bundle_id, config.heartbeat_s, on_progress=options.on_progress,
                          bundle_key=signer)  # fmt: skip
    uplink = open_uplink(config.uplink, config.store, config.box, config.outbox_file().parent, emitter.emit,
                         manifest.bundle_id, switcher.desired if switcher is not None else None)  # fmt: skip
    telemetry.extra_status = _status_fields(uplink, switcher)
    stop = _Stop()

    def keep_waiting() -> bool:
        """While the camera is unreachable the heartbeat goes on, and a stop request ends the wait."""
        telemetry.tick()
        return not stop.requested

    publisher, s = None, None
    try:
        if uplink is not None:
            uplink.start()
        if config.mqtt is not None:  # before the camera: a box whose camera is down still reports
            publisher = _start_publisher(config, outbox, emitter, uplink.control if uplink is not None else None)
        telemetry.heartbeat("running")
        try:
            s = build_stages(config, options, manifest, telemetry, keep_waiting)
            s.uplink, s.switcher = uplink, switcher
            s.clips = keep_clips(config, s, telemetry.emitter, uplink)
        except SourceStopped:
            log("stopped while waiting for the camera")
            summary = Summary(stopped_by_signal=True)
        else:
            say_what_runs(bundle)
            summary = run_frames(s, options, stop)
        flush = min(options.flush_timeout_s, SWITCH_FLUSH_S) if summary.restart else options.flush_timeout_s
        if publisher is not None and not publisher.flush(flush):
            log(f"{outbox.depth()} event(s) not yet acknowledged; they stay in the outbox for the next run")
        if summary.restart:
            assert switcher is not None
            summary.restart = switcher.switch(s.telemetry.last_frame_at if s is not None else None)
        # A switch restarts the agent at once: it is still running, as far as the broker and the health check know.
        final = telemetry.heartbeat("running" if summary.restart else "stopped", publish=False)
        if publisher is not None:
            publisher.stop(final)
            publisher = None
    finally:
        stop.restore()
        if uplink is not None:
            uplink.stop()
        if publisher is not None:  # an error ended the loop: let the broker's last will speak
            publisher.abandon()
        if s is not None:
            s.close()
        emitter.close()
    if switcher is not None:
        switcher.ended()  # reached only when nothing went wrong: the next start is no crash
    summary.events = dict(emitter.counts)
    summary.outbox_depth = outbox.depth()
    outbox.close()
    return summary


def _status_fields(uplink: Uplink | None, switcher: Switcher | None) -> Callable[[], dict] | None:
    if uplink is None and switcher is None:
        return None
    return lambda: {**(switcher.status() if switcher is not None else {}), **(uplink.status() if uplink else {})}


def check_bundle(config: BoxConfig) -> Bundle:
    """The box's bundle, checked against the keys it trusts (none: the signature is not checked)."""
    return read_bundle(config.bundle, load_trusted_keys(config.bundle_keys))


def say_what_runs(bundle: Bundle) -> None:
    """At the start of watching: which bundle runs, and whether its signature was checked."""
    m = bundle.manifest
    if bundle.signed_by is not None:
        log(f"bundle {m.bundle_id} is signed by trusted key {bundle.signed_by.key_id}")
    else:
        log(f"bundle {m.bundle_id} runs unchecked: this box has no bundle_keys, so it runs unsigned bundles "
            "(bundle_keys in its config make it refuse them)")  # fmt: skip
    if bundle.ignored:
        log(f"bundle {m.bundle_id} carries fields this agent (shelfwatch {__version__}) does not know, from a newer "
            f"export; ignored: {', '.join(bundle.ignored[:8])}{' …' if len(bundle.ignored) > 8 else ''}")  # fmt: skip


def refuse(config: BoxConfig, outbox: Outbox, emitter: Emitter, problem: str, timeout: float) -> None:
    """A bundle the box will not run: its status says why (beside the outbox, for the health check, and retained
    on the broker, for central) before the agent stops; the caller logs the same line."""
    problem = "".join(c if c.isprintable() else "?" for c in " ".join(problem.split()))  # one printable line
    problem = problem if len(problem) <= MAX_PROBLEM else problem[: MAX_PROBLEM - 1] + "…"
    publisher = None
    try:
        if config.mqtt is not None:
            with contextlib.suppress(ShelfWatchError):  # no password, say: the status file still tells
                publisher = _start_publisher(config, outbox, emitter)
            if publisher is not None and publisher.connected.wait(timeout):
                publisher.flush(timeout)  # what earlier runs left in the outbox goes out all the same
        final = emitter.status("stopped", publish=False, problem=problem)
        if publisher is not None:
            publisher.stop(final)
            publisher = None
    finally:
        if publisher is not None:
            publisher.abandon()
        emitter.close()
        outbox.close()


def run_frames(s: Stages, options: RunOptions, stop: _Stop) -> Summary:
    """Each frame through the stages, until the source ends, a stop is requested or --max-frames is reached."""
    last: Frame | None = None
    for frame in s.source.frames():
        started = time.perf_counter()
        if s.switcher is not None:
            s.switcher.arrived(frame.image, s.source.fps)
        fg = s.motion.update(frame.image)
        quiet = s.quiet.update(fg)  # nobody in the picture: what an installer wants to draw zones on
        if s.uplink is not None:
            if s.uplink.snapshot_due(quiet):
                s.uplink.take_snapshot(jpeg(frame.image), quiet)
        s.reporter.saw(frame, fg)
        s.reporter.shoppers_left(s.shoppers.update(fg.mask, frame.ts, fg.fresh))
        active = s.gate.update(frame.index, fg)
        segments = s.actions.update(frame, active)
        familiar = None
        if active and s.familiarity is not None and s.actions.recognizer.features is not None:
            reading = s.familiarity.update(frame.index, frame.ts, s.actions.recognizer.features)
            if reading is not None:
                familiar = reading.familiar
                s.reporter.scored(frame.index, reading)
                if not familiar and s.clips is not None:
                    s.clips.unfamiliar(frame.index)
        s.reporter.actions(segments)
        action = s.actions.label if active else None  # what the model saw on this frame, not what a still one carries
        look = s.schedule.look(frame, active, action)
        s.reporter.changes(s.shelf.update(frame.index, fg, action, look))
        if s.clips is not None:  # after this frame's events: an unsure one opens a clip that starts seconds ago
            s.clips.update(frame.index, frame.ts, frame.image, s.shoppers.tracks.values())
        if s.annotator is not None:
            touching = s.reporter.shelf_x if active and action in INTO_SHELF else None  # where the hand is
            s.annotator.write(frame.image, s.schedule.latest if active or look.ran else [],
                              list(s.shoppers.tracks.values()), s.reporter.present_baskets(), s.actions.current,
                              active, s.telemetry.fps, familiar, touching, list(s.reporter.happenings),
                              frame.ts)  # fmt: skip
        s.telemetry.frame_done(frame, active, started)
        last = frame
        if s.switcher is not None and s.switcher.due(fg.moving < MIN_BLOB):
            return replace(_finish(s, last, True), restart=True)
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
                               conf=min(SIGHTING_FLOOR, config.thresholds.detector_confidence))  # fmt: skip

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
    else:
        log(f"watching {len(zones)} shelf zone(s): " + "; ".join(
            f"{z.name} [{', '.join(f'[{x:g}, {y:g}]' for x, y in z.polygon)}]" for z in zones))  # fmt: skip
    drawn = config.camera.frame_size
    if config.zones and drawn is not None and tuple(drawn) != size:
        log(f"warning: the zones were drawn on a {drawn[0]}x{drawn[1]} picture but the camera's is "
            f"{size[0]}x{size[1]}: draw them again on a snapshot of this camera (the zone editor)")  # fmt: skip
    names = {s.sku: s.name for s in (manifest.detector.catalog if manifest.detector else [])}
    names.update({s.sku: s.name for s in config.catalog if s.name})
    t = config.thresholds
    familiarity = Familiarity(manifest.familiarity, config.bundle, fps) if manifest.familiarity is not None else None
    if familiarity is not None:
        telemetry.unfamiliar_share = familiarity.share
    else:
        log(f"bundle {manifest.bundle_id} has no familiarity guard: whether footage is like the model's training is "
            "unknown, and events carry no `familiar` (add one with `shelfwatch bundle familiarity`)")  # fmt: skip
    motion = MotionWatcher(size, zones)
    shoppers = ShopperTracker(size, ~motion.shelf, gone_s=t.shopper_gone_s)
    telemetry.total = source.frame_count
    if options.max_frames is not None:
        telemetry.total = min(telemetry.total or options.max_frames, options.max_frames)
    schedule = DetectionSchedule(detector, max(1, round(t.detect_every_s * fps)),
                                 {s.detector_class: s.sku for s in config.catalog})  # fmt: skip
    segmenter = Segmenter()
    shelf = ShelfCounter(zones, max(1, round(t.shelf_quiet_s * fps)), t.motion_fraction, t.detector_confidence,
                         size, delay=recognizer.delay, settle=segmenter.latency)  # fmt: skip
    return Stages(
        source=source,
        motion=motion,
        shoppers=shoppers,
        gate=MotionGate(t.motion_fraction, max(1, round(t.motion_hold_s * fps))),
        actions=ActionStream(recognizer, segmenter, still_frames=round(STILL_CARRY_S * fps)),
        familiarity=familiarity,
        schedule=schedule,
        shelf=shelf,
        reporter=Reporter(
            telemetry.emitter,
            shoppers,
            fps,
            t.action_confidence,
            shelf,
            schedule,
            delay=recognizer.delay,
            guard=familiarity.guard if familiarity is not None else None,
            policy=config.familiarity.policy,
            detector_floor=t.detector_confidence,
            file_frames=source.frame_count if source.kind == "file" else None,
        ),
        annotator=Annotator(options.annotate, fps, size, zones, names, options.annotate_codec)
        if options.annotate
        else None,
        telemetry=telemetry,
        quiet=QuietWatch(round(QUIET_WARMUP_S * fps), max(1, round(QUIET_HOLD_S * fps))),
    )


def keep_clips(config: BoxConfig, s: Stages, emitter: Emitter, uplink: Uplink | None) -> ClipKeeper | None:
    """The clip keeper, when the box config turns it on: it hears each event stored, and hands a finished clip to the
    uplink (which sends it with the ids of the events it covers)."""
    if not config.clips.keep:
        return None
    folder = config.outbox_file().parent / "clips"
    send = None
    if uplink is not None:
        send = lambda name, data, covers: uplink.put("clip", name, data, covers)  # noqa: E731
    keeper = ClipKeeper(config.clips, folder, s.source.fps, (s.source.width, s.source.height), send, log)
    if uplink is not None:
        keeper.on_discard = lambda name: uplink.spool.discard("clip", name)
    emitter.listeners.append(keeper.heard)
    c = config.clips
    log(
        f"keeping clips of unsure moments in {folder} ({c.before_s:g} s before, {c.after_s:g} s after, at most "
        f"{c.max_per_hour} an hour and {c.max_mb:g} MB, for {c.retention_days:g} days"
        f"{', heads blurred' if c.blur_heads else ''}{', sent to central' if uplink is not None else ''})"
    )
    return keeper


def _start_publisher(
    config: BoxConfig, outbox: Outbox, emitter: Emitter, on_control: Callable[[str, bytes], None] | None = None
) -> Publisher:
    assert config.mqtt is not None
    will = StatusEvent(event_id=f"will-{config.box}-{int(time.time())}", seq=outbox.last_seq(),
                       ts=datetime.now(timezone.utc), store=config.store, box=config.box, state="offline")  # fmt: skip
    publisher = Publisher(outbox, config.mqtt, f"shelfwatch-{config.store}-{config.box}", emitter.topic("status"),
                          encode(will), on_control=on_control)  # fmt: skip
    emitter.publisher = publisher
    publisher.start()
    return publisher


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _finish(s: Stages, last: Frame | None, stopped: bool) -> Summary:
    """The stream ended (or was stopped): close the running action segment and, at the end of a file, count a
    zone a hand went into that had no quiet moment left, from the last few frames (never from one)."""
    s.reporter.actions(s.actions.close(last.index + 1 if last is not None else 0))
    if last is not None and not stopped:
        images = s.schedule.last_frames(SAMPLES, SPACING)
        s.reporter.changes(s.shelf.finish(last.index, [s.schedule.detect(i) for i in images], images))
    s.reporter.finish()
    r, t, f = s.reporter, s.telemetry, s.familiarity
    if t.on_progress is not None:
        t.on_progress(t.progress(done=True))
    familiarity = None
    if f is not None:
        familiarity = FamiliaritySummary(f.threshold, f.frames, f.unfamiliar_frames, [(a, b) for a, b in f.spans])
    return Summary(frames=t.frames, seconds=t.seconds, active_frames=t.active_frames, detections_run=s.schedule.runs,
                   actions=r.actions_seen, picks=r.picks, putbacks=r.putbacks, baskets=r.open_baskets(),
                   stopped_by_signal=stopped, familiarity=familiarity, unsure=dict(r.unsure),
                   withheld=dict(r.withheld))  # fmt: skip
