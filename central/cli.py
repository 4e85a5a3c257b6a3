"""`shelfwatch central run`: the consumer (MQTT) and the checkout API (HTTP) in one process."""

from __future__ import annotations

import argparse
from pathlib import Path

from central.web.cli import add_web_arguments


def register(sub: argparse._SubParsersAction) -> None:
    central = sub.add_parser("central", help="consume the boxes' events and reconcile them with checkout",
                             description="Central services: the event consumer and the checkout API.")  # fmt: skip
    csub = central.add_subparsers(dest="central_command", required=True, metavar="COMMAND")
    run = csub.add_parser(
        "run",
        help="consume events over MQTT (shared subscription) and serve the checkout API",
        description="Subscribe to every box's events with an MQTT 5 shared subscription (run several to split "
        "the load), store them idempotently, track gaps and box status, accept POS transactions over HTTP and "
        "MQTT, and raise alerts for unscanned items.",
    )
    run.add_argument(
        "--mqtt", required=True, help="broker URL: mqtt://host:1883 or mqtts://user:pw@host:8884?ca=ca.crt"
    )
    run.add_argument(
        "--db",
        default=f"sqlite:///{Path('shelfwatch-central.db')}",
        help="sqlite:///file.db (default: ./shelfwatch-central.db) or postgresql://user@host/db",
    )
    run.add_argument(
        "--http", default="127.0.0.1:8080", help="HOST:PORT for the API, or 'off' (default 127.0.0.1:8080)"
    )
    run.add_argument("--group", default="central", help="shared-subscription group (default central)")
    run.add_argument("--client-id", default=None, help="MQTT client id (default shelfwatch-<group>-<pid>)")
    run.add_argument("--lane", action="append", default=[], metavar="STORE/LANE=BOX",
                     help="the box that watches a checkout lane (default: the box named like the lane)")  # fmt: skip
    run.add_argument(
        "--web",
        choices=("on", "off"),
        default="on",
        help="serve the pages (dashboard, analysis) at / with the API (default on; needs the web extra)",
    )
    add_web_arguments(run)
    run.set_defaults(func=run_central)


def run_central(args: argparse.Namespace) -> int:
    import os
    import signal

    from central.consumer import Consumer
    from central.db import connect
    from central.service import Central
    from edge.errors import ShelfWatchError

    lanes = {}
    for item in args.lane:
        lane, sep, box = item.partition("=")
        if not sep or lane.count("/") != 1 or not box:
            raise ShelfWatchError(f"--lane {item!r}: write STORE/LANE=BOX")
        lanes[lane] = box
    central = Central(connect(args.db), lanes)
    consumer = Consumer(central, args.mqtt, args.group, args.client_id or f"shelfwatch-{args.group}-{os.getpid()}")
    print(f"central: consuming {', '.join(consumer.topics())} from {consumer.broker.host}:{consumer.broker.port}",
          flush=True)  # fmt: skip
    if args.http == "off":
        signal.signal(signal.SIGTERM, lambda *_: consumer.client.disconnect())
        consumer.start(block=True)
        return 0
    import uvicorn

    from central.api import create_app

    host, _, port = args.http.rpartition(":")
    if not port.isdigit():
        raise ShelfWatchError(f"--http {args.http!r}: write HOST:PORT, or off")
    app, jobs = create_app(central), None
    if args.web == "on":
        jobs = _mount_web(app, central, args)
    consumer.start()
    try:
        uvicorn.run(app, host=host or "127.0.0.1", port=int(port), log_level="warning", timeout_graceful_shutdown=2)
    finally:
        consumer.stop()
        if jobs is not None:
            jobs.close()
    return 0


def _mount_web(app: object, central: object, args: argparse.Namespace) -> object:
    """The pages beside the API. Until central has per-store API tokens, a --token-file token guards them."""
    from edge.errors import ShelfWatchError

    try:
        from central.web.app import mount_web
        from central.web.auth import static_token
        from central.web.cli import read_token
        from central.web.config import load_web_config
    except ImportError as exc:
        raise ShelfWatchError(f"the web pages need the web extra (pip install 'shelfwatch[web]'; missing "
                              f"{exc.name}), or run with --web off") from None  # fmt: skip
    token = read_token(args.token_file)
    jobs = mount_web(app, load_web_config(args.web_config), central=central,
                     auth_dependency=static_token(token) if token else None)  # fmt: skip
    print(f"central: pages at http://{args.http}/ ({'token required' if token else 'no login: --token-file sets one'})",
          flush=True)  # fmt: skip
    return jobs
