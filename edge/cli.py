"""`shelfwatch edge run` (the agent) and `shelfwatch edge health` (the container's health check)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        "model bundle and a --source are enough (no broker: events go to the outbox and --events-jsonl).",
    )
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", type=Path, help="the box's config (YAML)")
    which.add_argument("--bundle", type=Path, help="a model bundle folder (made by `shelfwatch export`)")
    run.add_argument("--source", help="video file, rtsp:// or http:// URL, or camera index (overrides the config)")
    run.add_argument("--events-jsonl", type=Path, help="also append every event to this JSON-lines file")
    run.add_argument("--annotate", type=Path, help="write an annotated video here (.mp4)")
    run.add_argument("--max-frames", type=int, help="stop after this many frames")
    run.add_argument("--realtime", action="store_true", help="pace a video file at its frame rate")
    run.add_argument(
        "--outbox", type=Path, help="the outbox database (default: the config's, or ./shelfwatch-outbox.sqlite)"
    )
    run.add_argument("--start-time", metavar="ISO8601",
                     help="when a video file's first frame was recorded, with its UTC offset "
                     "(2026-11-25T09:00:00+01:00); its events are timed on the clip's clock. Default: the "
                     "container's creation time, else the file's modification time as the clip's end")  # fmt: skip
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
        config = config.model_copy(update=updates)
    else:
        if not args.source:
            raise ShelfWatchError("--bundle needs --source (a video file, stream URL or camera index)")
        config = BoxConfig(store=args.store, box=args.box, camera=Camera(source=args.source), bundle=args.bundle,
                           outbox=OutboxConfig(path=args.outbox or Path("shelfwatch-outbox.sqlite")))  # fmt: skip
    if args.max_frames is not None and args.max_frames < 1:
        raise ShelfWatchError("--max-frames must be at least 1")
    progress = progress_line if sys.stderr.isatty() else None  # a terminal, not a log file
    options = RunOptions(events_jsonl=args.events_jsonl, annotate=args.annotate, max_frames=args.max_frames,
                         realtime=args.realtime, on_progress=progress,
                         start_time=parse_start_time(args.start_time))  # fmt: skip
    s = run_agent(config, options)
    actions = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(s.actions.items())) or "none"
    print(f"{s.frames} frames in {s.seconds:.1f} s ({s.fps:.0f} fps); models skipped on {100 * s.motion_skip:.0f}% "
          f"of frames (no motion); detector ran on {s.detections_run}")  # fmt: skip
    print(f"actions: {actions}")
    print(f"picks: {s.picks}  put-backs: {s.putbacks}")
    for shopper, items in sorted(s.baskets.items()):
        print(f"basket of shopper {shopper}: " + (", ".join(f"{n}x {k}" for k, n in items.items()) or "empty"))
    print(f"events: {sum(s.events.values())} ({', '.join(f'{n} {k}' for k, n in sorted(s.events.items()))}); "
          f"{s.outbox_depth} waiting in the outbox")  # fmt: skip
    if args.events_jsonl:
        print(f"events written to {args.events_jsonl}")
    if args.annotate:
        print(f"annotated video: {args.annotate}")
    return 0


def parse_start_time(text: str | None) -> datetime | None:
    """An ISO 8601 time with its UTC offset: a clip's local time without one would be read hours off."""
    from edge.errors import ShelfWatchError

    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ShelfWatchError(f"--start-time {text!r}: not an ISO 8601 time (2026-11-25T09:00:00+01:00)") from None
    if when.tzinfo is None:
        raise ShelfWatchError(f"--start-time {text!r}: give its UTC offset (…+01:00, or Z for UTC)")
    return when


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

    path = health_file(load_box_config(args.config).outbox.path)
    try:
        status = decode(path.read_bytes())
    except FileNotFoundError:
        raise ShelfWatchError(f"{path}: no status yet (is the agent running?)") from None
    except ValueError:
        raise ShelfWatchError(f"{path}: not a status event") from None
    age = time.time() - path.stat().st_mtime
    if status.kind != "status" or status.state != "running" or age > args.max_age:
        state = getattr(status, "state", status.kind)
        raise ShelfWatchError(f"unhealthy: last status {state!r}, {age:.0f} s old (limit {args.max_age:.0f} s)")
    print(f"healthy: running, status {age:.0f} s old, {status.fps:.1f} fps, outbox depth {status.outbox_depth}")
    return 0
