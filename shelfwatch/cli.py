"""The `shelfwatch` command. Each component adds its own subcommands; this module only dispatches and
turns bad input into one line on stderr and a non-zero exit instead of a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pydantic import ValidationError

from edge.errors import ShelfWatchError
from edge.schema import describe
from shelfwatch import __version__

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from central import cli as central_cli
    from central.web import cli as web_cli
    from edge import cli as edge_cli
    from export import cli as export_cli
    from firmware_config import cli as firmware_cli
    from training import cli as training_cli

    parser = argparse.ArgumentParser(
        prog="shelfwatch",
        description="ShelfWatch: shopper actions, products and item counts from overhead store cameras.",
    )
    parser.add_argument("--version", action="version", version=f"shelfwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    training_cli.register(sub)
    export_cli.register(sub)
    edge_cli.register(sub)
    firmware_cli.register(sub)
    central_cli.register(sub)
    web_cli.register(sub)
    schema = sub.add_parser("schema", help="print a JSON Schema for consumers and editors",
                            description="Print the JSON Schema of the box events, central's control messages to a box, "
                            "the model bundle manifest, the box config, the checkout (POS) messages or `eval "
                            "compare`'s verdict.")  # fmt: skip
    schema.add_argument("what", choices=sorted(SCHEMAS))
    schema.set_defaults(func=print_schema)
    return parser


def _events_schema() -> dict:
    from edge.events import events_schema

    return events_schema()


def _control_schema() -> dict:
    from edge.control import control_schema

    return control_schema()


def _manifest_schema() -> dict:
    from edge.bundle import manifest_schema

    return manifest_schema()


def _box_config_schema() -> dict:
    from edge.config import BoxConfig

    return BoxConfig.model_json_schema()


def _pos_schema() -> dict:
    from central.pos import POS_ADAPTER

    return POS_ADAPTER.json_schema()


def _verdict_schema() -> dict:
    from training.bundle_compare import verdict_schema

    return verdict_schema()


# Imported on use: each schema lives with its component, and the box has no central package to import.
SCHEMAS = {"events": _events_schema, "control": _control_schema, "manifest": _manifest_schema,
           "box-config": _box_config_schema, "pos": _pos_schema, "verdict": _verdict_schema}  # fmt: skip


def print_schema(args: argparse.Namespace) -> int:
    print(json.dumps(SCHEMAS[args.what](), indent=2))
    return 0


def process_environment() -> None:
    """What every ShelfWatch process sets once, at its start, before any library reads it."""
    # OpenCV and FFmpeg write their own warnings to stderr ("moov atom not found" …); our one line says it.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    # Nothing may download at run time: ultralytics reads this when it is imported (no hub, fonts or assets).
    os.environ["YOLO_OFFLINE"] = "1"


def main(argv: list[str] | None = None) -> int:
    process_environment()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ShelfWatchError as exc:
        print(f"shelfwatch: error: {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"shelfwatch: error: {describe(exc)}", file=sys.stderr)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"shelfwatch: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
    except KeyboardInterrupt:
        print("shelfwatch: interrupted", file=sys.stderr)
        return 130
    return EXIT_BAD_INPUT
