"""`shelfwatch web`: the analysis page alone, for a laptop (no broker, no database). It listens on 127.0.0.1
unless told otherwise, and to serve anything but this machine it needs a token."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    web = sub.add_parser(
        "web",
        help="the analysis page in a browser: upload a clip, see the annotated video and its action timeline",
        description="Serve the analysis page: upload a video, the edge agent runs on it with a model bundle, and "
        "the page shows the annotated video, the action timeline, picks, put-backs and baskets.",
    )
    add_web_arguments(web)
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    web.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    web.set_defaults(func=run_web)


def add_web_arguments(parser: argparse.ArgumentParser, token: bool = True) -> None:
    parser.add_argument("--web-config", type=Path, help="the web pages' settings (YAML: upload limits, bundles_dir, "
                        "configs_dir, work_dir, workers)")  # fmt: skip
    if token:  # `shelfwatch web` alone; central's pages take its per-store API tokens
        parser.add_argument("--token-file", type=Path, help="a file holding the token the pages ask for (login page)")


def read_token(path: Path | None) -> str | None:
    from edge.errors import ShelfWatchError

    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ShelfWatchError(f"--token-file {path}: cannot be read ({exc})") from None
    if len(token) < 16:
        raise ShelfWatchError(f"--token-file {path}: a token needs at least 16 characters")
    return token


def run_web(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from central.web.app import create_web_app
    from central.web.auth import static_token
    from central.web.config import load_web_config
    from edge.errors import ShelfWatchError

    token = read_token(args.token_file)
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        raise ShelfWatchError(f"--host {args.host}: serving beyond this machine needs --token-file (anyone on the "
                              "network could otherwise upload and watch store video)")  # fmt: skip
    config = load_web_config(args.web_config)
    app, jobs = create_web_app(config, static_token(token) if token else None)
    # Listening before the address is printed: a client that reads it may connect at once (a bound socket that
    # does not listen yet refuses, as one CI run's browser found).
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.create_server((args.host, args.port), family=family)
    except OSError as exc:
        raise ShelfWatchError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"ShelfWatch analysis page: http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    finally:
        jobs.close()
    return 0
