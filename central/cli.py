"""`shelfwatch central run`: the consumer (MQTT) and the checkout API (HTTP) in one process."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    consumer.start()
    try:
        uvicorn.run(create_app(central), host=host or "127.0.0.1", port=int(port), log_level="warning")
    finally:
        consumer.stop()
    return 0
