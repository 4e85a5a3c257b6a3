"""`shelfwatch edge run` (the agent) and `shelfwatch edge health` (the container's health check)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.config import BoxConfig, MqttConfig
    from edge.telemetry import Progress


def register(sub: argparse._SubParsersAction) -> None:
    edge = sub.add_parser(
        "edge",
        help="the edge agent that runs beside a camera",
        description="The agent: camera in; actions, picks and item counts out over MQTT.",
    )
    esub = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")
    run = esub.add_parser(
        "run",
        help="run the agent on a camera, stream or video file",
        description="Run the agent. With --config, everything comes from the box's config; with --bundle, a "
        "model bundle and a --source are enough (events go to the outbox and --events-jsonl; --mqtt URL publishes them "
        "to a broker too).",
    )
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", type=Path, help="the box's config (YAML)")
    which.add_argument("--bundle", type=Path, help="a model bundle folder (made by `shelfwatch export`)")
    run.add_argument("--source", help="video file, rtsp:// or http:// URL, or camera index (overrides the config)")
    run.add_argument("--bundle-key", type=Path, action="append", default=[], metavar="PUBLIC_KEY",
                     help="run the bundle only if one of these public keys signed it (repeatable; added to the "
                     "config's bundle_keys)")  # fmt: skip
    run.add_argument("--events-jsonl", type=Path, help="also append every event to this JSON-lines file")
    run.add_argument("--annotate", type=Path, help="write an annotated video here (.mp4)")
    run.add_argument("--max-frames", type=int, help="stop after this many frames")
    run.add_argument("--realtime", action="store_true", help="pace a video file at its frame rate")
    run.add_argument("--outbox", type=Path, help="the outbox database (default: the config's, or "
                     "<state dir>/<store>/<box>/outbox.sqlite; the state dir is $SHELFWATCH_STATE_DIR, "
                     "$XDG_STATE_HOME/shelfwatch or ~/.local/state/shelfwatch)")  # fmt: skip
    run.add_argument("--start-time", metavar="ISO8601",
                     help="when a video file's first frame was recorded, with its UTC offset "
                     "(2026-11-25T09:00:00+01:00); its events are timed on the clip's clock. Default: the "
                     "container's creation time, else the file's modification time as the clip's end")  # fmt: skip
    run.add_argument("--mqtt", metavar="URL", help="publish the events to this broker: mqtt://[user@]host[:1883] or "
                     "mqtts://[user@]host[:8883]?ca=ca.crt (overrides the config's mqtt; the password: "
                     "--mqtt-password-file or SHELFWATCH_MQTT_PASSWORD, never the URL)")  # fmt: skip
    run.add_argument("--mqtt-password-file", type=Path, metavar="FILE",
                     help="file holding the MQTT password (default: the SHELFWATCH_MQTT_PASSWORD environment "
                     "variable, if set)")  # fmt: skip
    run.add_argument("--store", default="demo", help="store id with --bundle (default demo)")
    run.add_argument("--box", default="box1", help="box id with --bundle (default box1)")
    run.set_defaults(func=run_edge)
    health = esub.add_parser(
        "health",
        help="exit 0 if the agent's latest status is fresh and running (for container health checks)",
        description="Read the status the agent last wrote beside its outbox; healthy if it is running and newer "
        "than --max-age seconds.",
    )
    health.add_argument("--config", type=Path, required=True, help="the box's config (YAML)")
    health.add_argument("--max-age", type=float, default=90.0, help="seconds (default 90)")
    health.set_defaults(func=run_health)


def run_edge(args: argparse.Namespace) -> int:
    from edge.agent import RunOptions, run_agent
    from edge.config import BoxConfig, Camera, OutboxConfig, load_box_config
    from edge.errors import ShelfWatchError

    if args.config is not None:
        config = load_box_config(args.config)
        updates = {}
        if args.source:
            updates["camera"] = config.camera.model_copy(update={"source": args.source})
        if args.outbox:
            updates["outbox"] = config.outbox.model_copy(update={"path": args.outbox})
        if args.bundle_key:
            updates["bundle_keys"] = [*config.bundle_keys, *args.bundle_key]
        config = config.model_copy(update=updates)
    else:
        if not args.source:
            raise ShelfWatchError("--bundle needs --source (a video file, stream URL or camera index)")
        config = BoxConfig(store=args.store, box=args.box, camera=Camera(source=args.source), bundle=args.bundle,
                           bundle_keys=args.bundle_key, outbox=OutboxConfig(path=args.outbox))  # fmt: skip
    if args.mqtt is not None:
        config = config.model_copy(update={"mqtt": mqtt_config(args.mqtt, args.mqtt_password_file)})
    elif args.mqtt_password_file is not None:
        raise ShelfWatchError("--mqtt-password-file needs --mqtt (the broker's URL)")
    if args.max_frames is not None and args.max_frames < 1:
        raise ShelfWatchError("--max-frames must be at least 1")
    progress = progress_line if sys.stderr.isatty() else None  # a terminal, not a log file
    options = RunOptions(events_jsonl=args.events_jsonl, annotate=args.annotate, max_frames=args.max_frames,
                         realtime=args.realtime, on_progress=progress, start_time=parse_start_time(args.start_time),
                         config_file=args.config, source=args.source)  # fmt: skip
    s = run_agent(config, options)
    if s.restart:  # a switch to another slot: the agent starts again in this process, with the same command line
        from edge.switch import restart

        restart()
    actions = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(s.actions.items())) or "none"
    print(f"{s.frames} frames in {s.seconds:.1f} s ({s.fps:.0f} fps); models skipped on {100 * s.motion_skip:.0f}% "
          f"of frames (no motion); detector ran on {s.detections_run}")  # fmt: skip
    print(f"actions: {actions}")
    print(f"picks: {s.picks}  put-backs: {s.putbacks}")
    if s.familiarity is not None:
        f = s.familiarity
        unsure = ", ".join(f"{n} {k}" for k, n in sorted(s.unsure.items()))
        print(f"familiarity: {f.unfamiliar_frames} of {f.scored_frames} analysed frames ({100 * f.share:.1f}%) unlike "
              f"the model's training, in {len(f.spans)} stretch(es)" + (f"; unsure, in no basket: {unsure}"
                                                                         if unsure else ""))  # fmt: skip
    names = catalogue_names(config)
    for shopper, items in sorted(s.baskets.items()):
        print(f"basket of shopper {shopper}: "
              + (", ".join(f"{n}x {product(k, names)}" for k, n in items.items()) or "empty"))  # fmt: skip
    print(f"events: {sum(s.events.values())} ({', '.join(f'{n} {k}' for k, n in sorted(s.events.items()))}); "
          f"{s.outbox_depth} waiting in the outbox")  # fmt: skip
    if args.events_jsonl:
        print(f"events written to {args.events_jsonl}")
    if args.annotate:
        print(f"annotated video: {args.annotate}")
    return 0


def mqtt_config(url: str, password_file: Path | None) -> MqttConfig:
    """The broker of `--mqtt URL`, as central takes its own: the password from a file or SHELFWATCH_MQTT_PASSWORD."""
    import os

    from pydantic import ValidationError

    from edge.config import MqttConfig, Tls
    from edge.errors import ShelfWatchError
    from edge.mqtt import BrokerUrl
    from edge.schema import describe

    broker = BrokerUrl.parse(url)
    if broker.tls and broker.ca is None:
        raise ShelfWatchError(f"--mqtt {url}: an mqtts:// URL names the broker's CA certificate: ...?ca=/path/ca.crt")
    if password_file is not None and not password_file.is_file():
        raise ShelfWatchError(f"--mqtt-password-file {password_file}: no such file")
    secret: dict = {"password_file": password_file} if password_file is not None else {}
    if password_file is None and "SHELFWATCH_MQTT_PASSWORD" in os.environ:
        secret = {"password_env": "SHELFWATCH_MQTT_PASSWORD"}
    try:
        return MqttConfig(host=broker.host, port=broker.port, username=broker.username,
                          tls=Tls(ca=Path(broker.ca)) if broker.tls and broker.ca else None, **secret)  # fmt: skip
    except ValidationError as exc:
        raise ShelfWatchError(f"--mqtt {url}: {describe(exc)}") from None


def catalogue_names(config: BoxConfig) -> dict[str, str]:
    """SKU -> name: the bundle's catalogue, then the config's own names (what a person reads in the summary)."""
    import json

    try:
        manifest = json.loads((config.bundle / "manifest.json").read_text())
        names = {e["sku"]: e["name"] for e in (manifest.get("detector") or {}).get("catalog", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        names = {}
    return {**names, **{m.sku: m.name for m in config.catalog if m.name}}


def product(sku: str, names: dict[str, str]) -> str:
    name = names.get(sku)
    return f"{name} ({sku})" if name and name != sku else sku


def parse_start_time(text: str | None) -> datetime | None:
    from edge.times import parse_iso

    return None if text is None else parse_iso(text, "--start-time", need_offset=True)


def progress_line(p: Progress) -> None:
    """One line on the terminal, rewritten in place: frames done (of how many), events so far, speed."""
    of = f"/{p.total}" if p.total else ""
    share = f" ({100 * p.fraction:.0f}%)" if p.fraction is not None else ""
    print(f"\r{p.frames}{of} frames{share}, {p.events} events, {p.fps:.0f} fps  ", end="\n" if p.done else "",
          file=sys.stderr, flush=True)  # fmt: skip


def run_health(args: argparse.Namespace) -> int:
    import time

    from edge.config import load_box_config
    from edge.emitter import health_file
    from edge.errors import ShelfWatchError
    from edge.events import decode

    path = health_file(load_box_config(args.config).outbox_file())
    try:
        status = decode(path.read_bytes())
    except FileNotFoundError:
        raise ShelfWatchError(f"{path}: no status yet (is the agent running?)") from None
    except ValueError:
        raise ShelfWatchError(f"{path}: not a status event") from None
    age = time.time() - path.stat().st_mtime
    if status.kind != "status" or status.state != "running" or age > args.max_age:
        state = getattr(status, "state", status.kind)
        why = f": {status.problem}" if getattr(status, "problem", None) else ""
        raise ShelfWatchError(f"unhealthy: last status {state!r}, {age:.0f} s old (limit {args.max_age:.0f} s){why}")
    print(f"healthy: running, status {age:.0f} s old, {status.fps:.1f} fps, outbox depth {status.outbox_depth}")
    return 0
