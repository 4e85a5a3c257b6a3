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
    run.add_argument("--tls-cert", type=Path, metavar="PEM",
                     help="serve HTTPS with this certificate (chain) and --tls-key; boxes upload and download over "
                     "it (default: plain HTTP, for a laptop or behind a TLS proxy)")  # fmt: skip
    run.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")
    run.add_argument("--data-dir", type=Path, default=Path("shelfwatch-central-data"),
                     help="where the files boxes upload, the bundles sent to them and the clips kept for review "
                     "are (default ./shelfwatch-central-data)")  # fmt: skip
    run.add_argument(
        "--bundles-dir",
        type=Path,
        default=None,
        help="bundles that may be sent to boxes (POST /boxes/STORE/BOX/desired names a folder here)",
    )
    run.add_argument(
        "--files-reserve-mb",
        type=float,
        default=100.0,
        help="free space an upload must leave on the data directory's disk, else 507 (default 100)",
    )
    _identity_args(run)
    run.add_argument("--lane", action="append", default=[], metavar="STORE/LANE=BOX",
                     help="the box that watches a checkout lane (default: the box named like the lane)")  # fmt: skip
    run.add_argument("--unfamiliar-share", type=float, default=0.2, metavar="SHARE",
                     help="the dashboard warns about a box whose heartbeats' unfamiliar_share stayed at or above this "
                     "(default 0.2) for --unfamiliar-minutes")  # fmt: skip
    run.add_argument("--unfamiliar-minutes", type=float, default=10.0, metavar="MIN", help="default 10")
    run.add_argument("--clip-retention-days", type=float, default=30.0, metavar="DAYS",
                     help="a clip a box sent is deleted this long after it arrived, with the analysis made of it, "
                     "unless someone took it into review (default 30)")  # fmt: skip
    run.add_argument("--review-random-share", type=float, default=0.1, metavar="SHARE",
                     help="the share of the review queue's places given to clips drawn at random, so that confident "
                     "mistakes surface too (default 0.1)")  # fmt: skip
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

    migrate = csub.add_parser(
        "migrate", help="upgrade central's database to the current schema and say what was done",
        description="Apply every schema migration the database lacks (Alembic), in order. `central run` and the "
        "other commands do the same at start; this does it alone, for a maintenance window. A database made "
        "before migrations existed is recognised as the baseline and upgraded; nothing stored is lost.",
    )  # fmt: skip
    migrate.add_argument("--db", required=True, help="sqlite:///file.db or postgresql://user@host/db")
    migrate.set_defaults(func=run_migrate)

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
    imported = tsub.add_parser("import", help="register the box tokens `shelfwatch provision` minted",
                               description="Each provisioned box has a token of its own for central's HTTP API "
                               "(uploads for that box, downloads addressed to it; nothing else). Provisioning "
                               "writes their hashes to OUT_DIR/central/box-tokens.json: import it here. A box "
                               "provisioned again gets its new token, and its earlier ones are revoked.")  # fmt: skip
    imported.add_argument("file", type=Path, help="box-tokens.json from `shelfwatch provision`")
    for p in (create, listing, revoke, imported):  # the same default as `central run`: a laptop's one database
        p.add_argument(
            "--db",
            default=f"sqlite:///{Path('shelfwatch-central.db')}",
            help="central's database URL, as for `central run` (default: sqlite:///shelfwatch-central.db)",
        )
    create.set_defaults(func=token_create)
    listing.set_defaults(func=token_list)
    revoke.set_defaults(func=token_revoke)
    imported.set_defaults(func=token_import)

    rollout = csub.add_parser(
        "rollout", help="roll a bundle or a config out across boxes: canaries, a rate, an abort rule",
        description="Central sends a bundle (or a config) to many boxes: --canary boxes first, then --rate boxes a "
        "minute, the rate doubling each time --double-after more boxes report it running; a box silent for --timeout "
        "has failed, and the rollout aborts by itself when the failed share of the boxes attempted passes --abort-at "
        "(aborting sets every box already sent back to its previous bundle). `central run` carries rollouts out; "
        "these commands only record what is asked and read where it stands.",
    )  # fmt: skip
    rsub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    rstart = rsub.add_parser("start", help="start a rollout (central run carries it out)")
    what = rstart.add_mutually_exclusive_group(required=True)
    what.add_argument("--bundle", type=Path, metavar="DIR", help="a bundle folder (signed: boxes with bundle_keys "
                      "run only signed bundles)")  # fmt: skip
    what.add_argument("--config", type=Path, metavar="FILE", help="a box config (YAML); each box gets it with its own "
                      "store and box")  # fmt: skip
    where = rstart.add_mutually_exclusive_group(required=True)
    where.add_argument("--stores", nargs="+", metavar="S", help="every box central knows of these stores")
    where.add_argument("--boxes", nargs="+", metavar="STORE/BOX", help="these boxes, in this order")
    rstart.add_argument("--canary", type=int, default=1, metavar="N", help="boxes that go first (default 1)")
    rstart.add_argument("--rate", default="5/min", metavar="R/min", help="boxes a minute after the canaries "
                        "(default 5/min)")  # fmt: skip
    rstart.add_argument("--double-after", type=int, default=10, metavar="K",
                        help="the rate doubles each time K more boxes run it (default 10)")  # fmt: skip
    rstart.add_argument("--abort-at", default="5%", metavar="P%", help="abort when the failed share of the boxes "
                        "attempted passes P (default 5%%)")  # fmt: skip
    rstart.add_argument("--timeout", default="5m", metavar="T", help="a box that has not reported the new bundle "
                        "running this long after it was sent it has failed (default 5m)")  # fmt: skip
    rstart.add_argument("--gate", type=Path, metavar="VERDICT.json", help="start only if this `eval compare` "
                        "verdict says promote for this bundle")  # fmt: skip
    rstart.add_argument(
        "--data-dir",
        type=Path,
        default=Path("shelfwatch-central-data"),
        help="central's data directory, as for `central run` (default ./shelfwatch-central-data)",
    )
    rstatus = rsub.add_parser("status", help="where rollouts stand: per box, its state and why")
    rstatus.add_argument("rollout_id", nargs="?", type=int, help="a rollout (default: the latest five)")
    rstatus.add_argument("--json", action="store_true", help="print JSON")
    rabort = rsub.add_parser("abort", help="abort a running rollout: its boxes are set back to their previous bundle")
    rabort.add_argument("rollout_id", type=int)
    rabort.add_argument("--reason", default="aborted by hand", help="said in its status")
    for p in (rstart, rstatus, rabort):
        p.add_argument("--db", required=True, help="central's database URL, as for `central run`")
    rstart.set_defaults(func=rollout_start)
    rstatus.set_defaults(func=rollout_status)
    rabort.set_defaults(func=rollout_abort)

    dataset = sub.add_parser("dataset", help="a store's verified clips out as a training folder",
                             description="Clips that a store's staff corrected and verified on their result pages "
                             "become training data.")  # fmt: skip
    dsub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="COMMAND")
    export = dsub.add_parser(
        "export", help="write a store's verified clips and their labels into a folder `train action` reads",
        description="Write every verified clip of a store: its video, its verified labels (ShelfWatch JSON, and MERL "
        "Shopping's .mat beside it for segment labels) and manifest.json, which says each clip's split (by clip and "
        "day: a clip is never in two splits) and where it came from. Train on it with `shelfwatch train action OUT "
        "--split dataset`. OUT is replaced if it holds an earlier export.",
    )  # fmt: skip
    export.add_argument("--db", required=True, help="central's database URL, as for `central run`")
    export.add_argument("--data-dir", type=Path, default=Path("shelfwatch-central-data"),
                        help="central's data directory, as for `central run` (default "
                        "./shelfwatch-central-data)")  # fmt: skip
    export.add_argument("--store", required=True, help="the store whose clips to export")
    export.add_argument("--verified", action="store_true",
                        help="verified clips only: the default, and the only choice (a clip still in review is not "
                        "training data)")  # fmt: skip
    export.add_argument("--val-share", type=float, default=0.2,
                        help="share of the days (of the clips, when all are of one day) for validation "
                        "(default 0.2)")  # fmt: skip
    export.add_argument("--out", type=Path, required=True, help="the folder to write")
    export.set_defaults(func=dataset_export)


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
    from central.files import FileStore
    from central.retention import expire_clips, keep_sweeping
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
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ShelfWatchError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None:
        import ssl

        try:  # now, with one line, rather than a traceback once the broker is already connected
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ShelfWatchError(f"--tls-cert/--tls-key: cannot use them ({exc})") from None
    if not 0 < args.unfamiliar_share <= 1:
        raise ShelfWatchError(f"--unfamiliar-share {args.unfamiliar_share}: give a share in (0, 1]")
    if not 0 < args.unfamiliar_minutes <= 24 * 60:
        raise ShelfWatchError(f"--unfamiliar-minutes {args.unfamiliar_minutes}: give minutes in (0, 1440]")
    if not 0 < args.clip_retention_days <= 3660:
        raise ShelfWatchError(f"--clip-retention-days {args.clip_retention_days}: give days in (0, 3660]")
    if not 0 <= args.review_random_share <= 1:
        raise ShelfWatchError(f"--review-random-share {args.review_random_share}: give a share in [0, 1]")
    central = Central(connect(args.db), lanes, unfamiliar_share=args.unfamiliar_share,
                      unfamiliar_minutes=args.unfamiliar_minutes, review_random_share=args.review_random_share,
                      clip_retention_days=args.clip_retention_days)  # fmt: skip
    if args.bundles_dir is not None:  # the bundles sent to boxes name their products (the pages add their own)
        from central.catalog import names_from

        central.names.update(names_from([args.bundles_dir]))
    try:
        files = FileStore(central.engine, args.data_dir, int(args.files_reserve_mb * 1_000_000))
    except OSError as exc:
        raise ShelfWatchError(f"--data-dir {args.data_dir}: cannot use it ({exc.strerror})") from None
    consumer = Consumer(central, args.mqtt, args.group, args.client_id, password=mqtt_password(args))
    done = threading.Event()
    server, jobs = None, None
    if sock is not None:
        import uvicorn

        from central.api import create_app

        app = create_app(central, files, args.bundles_dir)
        if args.web == "on":
            jobs = _mount_web(app, central, args, files)
        tls = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)} if args.tls_cert else {}
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, **tls))

    def stop(*_: object) -> None:
        done.set()
        consumer.interrupt()
        if server is not None:
            server.should_exit = True

    consumer.on_fatal = lambda reason: stop()
    signal.signal(signal.SIGTERM, stop)
    keep_sweeping(lambda: expire_clips(central.engine, args.data_dir, args.clip_retention_days,
                                       forget_analysis=jobs.forget if jobs is not None else None), done)  # fmt: skip
    try:
        consumer.start()
    except Interrupted as exc:
        print(f"central: {exc}", flush=True)
        return 0
    print(f"central: {consumer.client_id} consuming {', '.join(consumer.topics())} from "
          f"{consumer.broker.host}:{consumer.broker.port}", flush=True)  # fmt: skip
    rollouts = threading.Thread(target=_run_rollouts, args=(central, files, args.bundles_dir, done), daemon=True,
                                name="rollouts")  # fmt: skip
    rollouts.start()
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


def _run_rollouts(central: object, files: object, bundles_dir: Path | None, done: object) -> None:
    """The rollouts' engine, once a second until central stops (`central.rollout`); a database that is away is
    waited for, like the writer does."""
    from central.db import TRANSIENT_DB
    from central.rollout import TICK_S, Rollouts

    engine = Rollouts(central, files, bundles_dir, log=lambda m: print(f"central: {m}", flush=True))  # type: ignore[arg-type]
    while not done.wait(TICK_S):  # type: ignore[attr-defined]
        try:
            engine.tick()
        except TRANSIENT_DB as exc:
            print(f"central: rollouts wait for the database ({str(exc).splitlines()[0][:150]})", flush=True)
        except Exception as exc:  # a bug must not stop the consumer; it is said, and tried again
            print(f"central: error: rollouts: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr, flush=True)


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
        who = f"{t['store']}/{t['box']}" if t["box"] else t["store"] or "(admin)"
        print(f"{t['token_id']}  {who:<20} {state:<24} {t['name']}")
    return 0


def token_import(args: argparse.Namespace) -> int:
    from central import auth
    from central.db import connect
    from edge.errors import ShelfWatchError

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShelfWatchError(f"{args.file}: cannot read it ({exc})") from None
    for token_id, store, box in auth.import_box_tokens(connect(args.db), text):
        print(f"token {token_id} for box {store}/{box}")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    from central import auth
    from central.db import connect
    from edge.errors import ShelfWatchError

    if not auth.revoke(connect(args.db), args.token_id):
        raise ShelfWatchError(f"no active token {args.token_id!r} (see `shelfwatch central token list`)")
    print(f"token {args.token_id} revoked")
    return 0


def rollout_start(args: argparse.Namespace) -> int:
    from central import rollout
    from central.db import connect
    from central.files import FileStore
    from central.service import Central
    from edge.errors import ShelfWatchError

    params = rollout.Params(canary=_at_least(args.canary, 0, "--canary"), rate=rollout.parse_rate(args.rate),
                            double_after=_at_least(args.double_after, 1, "--double-after"),
                            abort_at=rollout.parse_share(args.abort_at),
                            timeout_s=rollout.parse_duration(args.timeout))  # fmt: skip
    target = rollout.bundle_target(args.bundle) if args.bundle else rollout.config_target(args.config)
    gate = rollout.check_gate(args.gate, target) if args.gate is not None else None
    central = Central(connect(args.db))
    try:
        with central.engine.connect() as conn:
            boxes = rollout.resolve_boxes(conn, args.stores or [], args.boxes or [])
        try:
            files = FileStore(central.engine, args.data_dir)
        except OSError as exc:
            raise ShelfWatchError(f"--data-dir {args.data_dir}: cannot use it ({exc.strerror})") from None
        rollout_id = rollout.start(central, files, target, boxes, params, gate)
    finally:
        central.engine.dispose()
    print(f"rollout {rollout_id}: {target.kind} {target.target} to {len(boxes)} box(es), {params.canary} canary first; "
          "`central run` carries it out (`central rollout status` shows it)")  # fmt: skip
    return 0


def _at_least(value: int, least: int, flag: str) -> int:
    from edge.errors import ShelfWatchError

    if value < least:
        raise ShelfWatchError(f"{flag} {value}: give at least {least}")
    return value


def rollout_status(args: argparse.Namespace) -> int:
    import json

    from central import rollout
    from central.db import connect
    from edge.errors import ShelfWatchError

    engine = connect(args.db)
    try:
        with engine.connect() as conn:
            items = rollout.summary(conn, args.rollout_id)
    finally:
        engine.dispose()
    if args.rollout_id is not None and not items:
        raise ShelfWatchError(f"no rollout {args.rollout_id}")
    if args.json:
        print(json.dumps(items, indent=1))
    elif not items:
        print("no rollouts yet")
    else:
        print("\n\n".join(rollout.describe_rollout(item) for item in items))
    return 0


def rollout_abort(args: argparse.Namespace) -> int:
    from central import rollout
    from central.db import connect
    from central.service import Central

    central = Central(connect(args.db))
    try:
        rollout.request_abort(central, args.rollout_id, args.reason)
    finally:
        central.engine.dispose()
    print(f"rollout {args.rollout_id}: aborting; `central run` sets its boxes back to their previous bundle")
    return 0


def dataset_export(args: argparse.Namespace) -> int:
    from central.dataset import export, summary
    from central.db import connect
    from central.review import Reviews
    from edge.errors import ShelfWatchError

    if args.db.startswith("sqlite:///") and not Path(args.db.removeprefix("sqlite:///")).is_file():
        raise ShelfWatchError(f"--db {args.db}: no such database file")
    if not 0 < args.val_share < 1:
        raise ShelfWatchError(f"--val-share must be between 0 and 1, got {args.val_share:g}")
    if not args.data_dir.is_dir():
        raise ShelfWatchError(f"--data-dir {args.data_dir}: no such folder (central's --data-dir)")
    engine = connect(args.db)
    try:
        manifest = export(Reviews(engine, args.data_dir), args.store, args.out, args.val_share)
    finally:
        engine.dispose()
    print(summary(manifest, args.out))
    return 0


def _mount_web(app: object, central: object, args: argparse.Namespace, files: object = None) -> object:
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
    from central.review import Reviews
    from central.web.config import no_bundle

    config = load_web_config(args.web_config)
    problem = no_bundle(config)
    if problem is not None:  # the dashboard works without one; the analysis page says the same
        print(f"central: the analysis page cannot analyse: {problem}", file=sys.stderr, flush=True)
    jobs = mount_web(app, config, central=central,
                     auth_dependency=principal_dependency(central),  # type: ignore[arg-type]
                     reviews=Reviews(central.engine, args.data_dir),  # type: ignore[attr-defined]
                     files=files)  # fmt: skip
    scheme = "https" if args.tls_cert else "http"
    print(f"central: pages at {scheme}://{args.http}/ (log in with an API token: shelfwatch central token create)",
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


def run_migrate(args: argparse.Namespace) -> int:
    from central import migrate
    from central.db import engine_for

    engine = engine_for(args.db)
    try:
        was, now = migrate.upgrade(engine)
    finally:
        engine.dispose()
    if was == now:
        print(f"central: the database is at the current schema ({now})")
    elif was == "empty":
        print(f"central: made the schema ({now}) in an empty database")
    else:
        print(f"central: upgraded the database from {was} to {now}")
    return 0


def _time(text: str | None, flag: str):
    from central import insights
    from edge.errors import ShelfWatchError
    from edge.times import parse_iso

    if text is None:
        return None
    try:
        return insights.report_time(parse_iso(text, flag))
    except ValueError as exc:
        raise ShelfWatchError(f"{flag} {text!r}: {exc}") from None


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
