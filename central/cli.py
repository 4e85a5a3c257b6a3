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
    report = csub.add_parser(
        "report",
        help="print a store's shopper funnel per SKU as a table",
        description="The engagement funnel per SKU (reached for -> inspected -> picked -> kept, rates, median "
        "inspection time of products kept vs put back) and the traffic (shoppers who stopped, dwell), from the "
        "events central has stored. The same numbers as GET /insights/funnel and /insights/traffic.",
    )
    report.add_argument("--store", action="append", default=[], help="a store (repeat for several; none: all)")
    report.add_argument("--from", dest="start", metavar="TIME", help="ISO 8601 date or time, UTC unless it has an "
                        "offset (default: 30 days before --to)")  # fmt: skip
    report.add_argument("--to", dest="end", metavar="TIME", help="exclusive; ISO 8601 (default: now)")
    report.add_argument("--by", action="append", default=[], choices=("box", "zone"), help="also per box or zone")
    report.add_argument("--db", default=f"sqlite:///{Path('shelfwatch-central.db')}",
                        help="the database central writes to (default: sqlite:///shelfwatch-central.db)")  # fmt: skip
    report.set_defaults(func=run_report)

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


def run_report(args: argparse.Namespace) -> int:
    from central import insights
    from central.db import connect
    from edge.errors import ShelfWatchError

    if args.db.startswith("sqlite:///") and not Path(args.db.removeprefix("sqlite:///")).is_file():
        raise ShelfWatchError(f"--db {args.db}: no such database file")
    start, end = insights.default_range(_time(args.start, "--from"), _time(args.end, "--to"))
    if start >= end:
        raise ShelfWatchError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    by = ("store", *dict.fromkeys(args.by))
    scope = insights.Scope(tuple(args.store), start, end, "total", by)  # type: ignore[arg-type]
    engine = connect(args.db)
    insights.create(engine)
    with engine.connect() as conn:
        funnel, traffic = insights.funnel(conn, scope), insights.traffic(conn, scope)
    engine.dispose()
    stores = ", ".join(args.store) or "all stores"
    print(f"{stores}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
    for t in traffic:
        where = " ".join(v for v in (t.store, t.box, t.zone) if v)
        plural = "s" if t.shoppers != 1 else ""
        print(f"{where}: {t.shoppers} shopper{plural} stopped; dwell median {_num(t.dwell_median_s)} s, "
              f"p90 {_num(t.dwell_p90_s)} s")  # fmt: skip
    if not funnel:
        print("no visits in this range")
        return 0
    head = [*(b for b in ("store", "box", "zone") if b in by), "sku", "reached", "inspected", "picked", "kept",
            "put back", "inspect%", "pick%", "keep%", "put-back%", "inspect s kept", "inspect s put back"]  # fmt: skip
    rows = [[*(getattr(r, b) or "" for b in ("store", "box", "zone") if b in by), r.sku, r.reached, r.inspected,
             r.picked, r.kept, r.put_back, _pct(r.inspect_rate), _pct(r.pick_rate), _pct(r.keep_rate),
             _pct(r.put_back_rate), _num(r.inspect_median_kept_s), _num(r.inspect_median_put_back_s)]
            for r in funnel]  # fmt: skip
    print(_table(head, rows))
    return 0


def _time(text: str | None, flag: str):
    from datetime import datetime, timezone

    from edge.errors import ShelfWatchError

    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ShelfWatchError(
            f"{flag} {text!r}: not an ISO 8601 date or time (2026-11-25 or 2026-11-25T09:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _table(head: list[str], rows: list[list]) -> str:
    """Text columns left, numbers right, as a terminal table."""
    cells = [head, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    numeric = [all(_numberish(r[i]) for r in cells[1:]) for i in range(len(head))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _numberish(cell: str) -> bool:
    return cell == "-" or cell.rstrip("%").replace(".", "", 1).isdigit()
