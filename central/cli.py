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
