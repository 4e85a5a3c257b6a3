"""`shelfwatch central run`: the consumer (MQTT) and the checkout API (HTTP) in one process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from central.web.cli import add_web_arguments


def register(sub: argparse._SubParsersAction) -> None:
    central = sub.add_parser("central", help="consume the boxes' events and reconcile them with checkout",
                             description="Central services: the event consumer and the checkout API.")  # fmt: skip
    csub = central.add_subparsers(dest="central_command", required=True, metavar="COMMAND")
    run = csub.add_parser(
        "run",
        help="consume events over MQTT and serve the checkout API",
        description="Subscribe to every box's events over MQTT 5 with a persistent session (or share the "
        "subscription with a --group of consumers, to split the load), store them idempotently, track gaps "
        "and box status, accept POS transactions over HTTP and MQTT, and raise alerts for unscanned items.",
    )
    run.add_argument("--mqtt", required=True,
                     help="broker URL: mqtt://host:1883 or mqtts://user@host:8884?ca=ca.crt (no password)")  # fmt: skip
    _password_args(run)
    run.add_argument(
        "--db",
        default=f"sqlite:///{Path('shelfwatch-central.db')}",
        help="sqlite:///file.db (default: ./shelfwatch-central.db) or postgresql://user@host/db",
    )
    run.add_argument(
        "--http", default="127.0.0.1:8080", help="HOST:PORT for the API, or 'off' (default 127.0.0.1:8080)"
    )
    _identity_args(run)
    run.add_argument("--lane", action="append", default=[], metavar="STORE/LANE=BOX",
                     help="the box that watches a checkout lane (default: the box named like the lane)")  # fmt: skip
    run.add_argument(
        "--web",
        choices=("on", "off"),
        default="on",
        help="serve the pages (dashboard, analysis) at / with the API (default on; needs the web extra)",
    )
    add_web_arguments(run, token=False)
    run.set_defaults(func=run_central)

    leave = csub.add_parser(
        "leave", help="retire a consumer for good: store what the broker queued for it, then end its session",
        description="A consumer's session outlives it (that is what keeps its share of the messages while it "
        "restarts). When a consumer is retired for good, run this with its client id: the broker stops giving it "
        "a share, what it had queued is stored, and the session ends.",
    )  # fmt: skip
    leave.add_argument("--mqtt", required=True, help="broker URL, as for `central run`")
    _password_args(leave)
    leave.add_argument("--db", required=True, help="the database the group writes to")
    _identity_args(leave)
    leave.set_defaults(func=leave_group)

    token = csub.add_parser("token", help="create, list and revoke API tokens for the HTTP API",
                            description="API tokens for the checkout API and the pages: one per store (sees and "
                            "writes only that store) or chain-wide (--admin). Only a hash is stored; a new token "
                            "is printed once.")  # fmt: skip
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create a token and print it (once)")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--store", help="the store this token may see and write")
    who.add_argument("--admin", action="store_true", help="a chain-wide token: every store")
    create.add_argument("--name", default="", help="what it is for (e.g. pos-lane-3), shown in lists")
    listing = tsub.add_parser("list", help="list tokens (ids, stores, names; never the secrets)")
    revoke = tsub.add_parser("revoke", help="revoke a token by its id (the part after swt_)")
    revoke.add_argument("token_id")
    for p in (create, listing, revoke):
        p.add_argument("--db", required=True, help="central's database URL, as for `central run`")
    create.set_defaults(func=token_create)
    listing.set_defaults(func=token_list)
    revoke.set_defaults(func=token_revoke)


def _password_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt-password-file", type=Path, metavar="FILE",
                        help="file holding the MQTT password (default: the SHELFWATCH_MQTT_PASSWORD environment "
                        "variable; never the URL, which `ps` shows)")  # fmt: skip


def _identity_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", default=None,
                        help="share the subscription with the other consumers of this group, to split the load "
                        "(default: one consumer, a plain subscription, which survives broker restarts)")  # fmt: skip
    parser.add_argument("--client-id", default=None,
                        help="MQTT client id; it must stay the same across restarts (default "
                        "shelfwatch-<group>-<host name>: give each consumer on one host its own, and set it in a "
                        "container, whose host name changes when it is re-created)")  # fmt: skip


def mqtt_password(args: argparse.Namespace) -> str | None:
    import os

    from edge.errors import ShelfWatchError

    if args.mqtt_password_file is not None:
        try:
            return args.mqtt_password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ShelfWatchError(f"--mqtt-password-file {args.mqtt_password_file}: cannot read it ({exc})") from None
    return os.environ.get("SHELFWATCH_MQTT_PASSWORD")


def run_central(args: argparse.Namespace) -> int:
    import signal
    import socket
    import threading

    from central.consumer import Consumer, Interrupted
    from central.db import connect
    from central.service import Central
    from edge.errors import ShelfWatchError

    lanes = {}
    for item in args.lane:
        lane, sep, box = item.partition("=")
        if not sep or lane.count("/") != 1 or not box:
            raise ShelfWatchError(f"--lane {item!r}: write STORE/LANE=BOX")
        lanes[lane] = box
    sock = None
    if args.http != "off":
        host, _, port = args.http.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"  # [::1]:8080 for IPv6
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ShelfWatchError(f"--http {args.http!r}: write HOST:PORT (a port from 1 to 65535), or off")
        # Bind before the broker hears of us: a port in use must not leave a session behind.
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, int(port)), family=family)
        except OSError as exc:
            raise ShelfWatchError(f"--http {args.http}: cannot listen there ({exc.strerror})") from None
    central = Central(connect(args.db), lanes)
    consumer = Consumer(central, args.mqtt, args.group, args.client_id, password=mqtt_password(args))
    done = threading.Event()
    server, jobs = None, None
    if sock is not None:
        import uvicorn

        from central.api import create_app

        app = create_app(central)
        if args.web == "on":
            jobs = _mount_web(app, central, args)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))

    def stop(*_: object) -> None:
        done.set()
        consumer.interrupt()
        if server is not None:
            server.should_exit = True

    consumer.on_fatal = lambda reason: stop()
    signal.signal(signal.SIGTERM, stop)
    try:
        consumer.start()
    except Interrupted as exc:
        print(f"central: {exc}", flush=True)
        return 0
    print(f"central: {consumer.client_id} consuming {', '.join(consumer.topics())} from "
          f"{consumer.broker.host}:{consumer.broker.port}", flush=True)  # fmt: skip
    try:
        if server is not None:
            server.run(sockets=[sock])
        else:
            while not done.wait(0.5):
                pass
    finally:
        consumer.stop()
        if jobs is not None:
            jobs.close()
        counts = ", ".join(f"{k} {v}" for k, v in central.counts.items())
        print(f"central: stopped ({counts})", flush=True)
    if consumer.failed:
        raise ShelfWatchError(consumer.failed)
    return 0


def leave_group(args: argparse.Namespace) -> int:
    from central.consumer import Consumer
    from central.db import connect
    from central.service import Central
    from edge.errors import ShelfWatchError

    central = Central(connect(args.db))
    consumer = Consumer(central, args.mqtt, args.group, args.client_id, password=mqtt_password(args))
    consumer.start()
    consumer.leave()
    if consumer.failed:
        raise ShelfWatchError(consumer.failed)
    print(f"central: {consumer.client_id} left (stored {central.counts['stored']} queued events)")
    return 0


def token_create(args: argparse.Namespace) -> int:
    from central import auth
    from central.db import connect

    token_id, token = auth.create(connect(args.db), None if args.admin else args.store, args.name)
    scope = "every store (admin)" if args.admin else f"store {args.store}"
    print(token)
    print(f"token {token_id} for {scope}: keep it now, it is not shown again", file=sys.stderr)
    return 0


def token_list(args: argparse.Namespace) -> int:
    from central import auth
    from central.db import connect

    for t in auth.listing(connect(args.db)):
        state = f"revoked {t['revoked']:%Y-%m-%d %H:%M}" if t["revoked"] else "active"
        print(f"{t['token_id']}  {t['store'] or '(admin)':<20} {state:<24} {t['name']}")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    from central import auth
    from central.db import connect
    from edge.errors import ShelfWatchError

    if not auth.revoke(connect(args.db), args.token_id):
        raise ShelfWatchError(f"no active token {args.token_id!r} (see `shelfwatch central token list`)")
    print(f"token {args.token_id} revoked")
    return 0


def _mount_web(app: object, central: object, args: argparse.Namespace) -> object:
    """The pages beside the API, behind the same per-store API tokens (`shelfwatch central token create`): staff log
    in with their store's token and see their store; a chain-wide token sees every store."""
    from central.api import principal_dependency
    from edge.errors import ShelfWatchError

    try:
        from central.web.app import mount_web
        from central.web.config import load_web_config
    except ImportError as exc:
        raise ShelfWatchError(f"the web pages need the web extra (pip install 'shelfwatch[web]'; missing "
                              f"{exc.name}), or run with --web off") from None  # fmt: skip
    jobs = mount_web(app, load_web_config(args.web_config), central=central,
                     auth_dependency=principal_dependency(central))  # type: ignore[arg-type]  # fmt: skip
    print(f"central: pages at http://{args.http}/ (log in with an API token: shelfwatch central token create)",
          flush=True)  # fmt: skip
    return jobs
