"""`shelfwatch config validate|schema` and `shelfwatch provision`, for installers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="validate box configs; print their JSON Schema",
                            description="Check a store's or a box's configuration before provisioning.")  # fmt: skip
    csub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    validate = csub.add_parser(
        "validate",
        help="validate a store folder or one box file",
        description="Validate a store (store.yaml + boxes/*.yaml) or one box file; every problem is reported "
        "with its file, line, key and message. Exit status 0 only when there is none.",
    )
    validate.add_argument("path", type=Path, help="a store folder or a box's YAML file")
    validate.set_defaults(func=run_validate)
    schema = csub.add_parser("schema", help="print the box config's JSON Schema (for editors)")
    schema.set_defaults(func=run_schema)

    prov = sub.add_parser(
        "provision",
        help="write each box's install bundle and the broker's TLS, password and ACL files",
        description="For every box of a store: the resolved config, the model bundle (verified), CA and client "
        "certificate, a systemd unit and the container command; for the broker: a Mosquitto config with TLS, "
        "a password file for consumers and an ACL (each box writes only under its own topic prefix).",
    )
    prov.add_argument("store_dir", type=Path, help="the store folder (store.yaml and boxes/)")
    prov.add_argument("--out", type=Path, required=True, help="output folder (its ca/ is reused when present)")
    prov.add_argument("--box-port", type=int, default=8883, help="the boxes' mutual-TLS port (default 8883)")
    prov.add_argument("--consumer-port", type=int, default=8884, help="consumers' TLS + password port (default 8884)")
    prov.add_argument("--broker-dir", type=Path, help="where the broker files will live (default: OUT/broker)")
    prov.add_argument("--consumer", action="append", help="a consumer user (repeatable; default central)")
    prov.add_argument("--broker-name", action="append", default=[], help="another name or IP for the broker cert")
    prov.add_argument("--image", default=None, help="the Jetson container image to run")
    prov.set_defaults(func=run_provision)


def run_validate(args: argparse.Namespace) -> int:
    from firmware_config.store import validate_path

    count, problems = validate_path(args.path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.path}: {count} box config(s) valid")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from edge.config import BoxConfig

    print(json.dumps(BoxConfig.model_json_schema(), indent=2))
    return 0


def run_provision(args: argparse.Namespace) -> int:
    from firmware_config.provision import DEFAULT_IMAGE, ProvisionOptions, provision

    options = ProvisionOptions(
        box_port=args.box_port, consumer_port=args.consumer_port, broker_dir=args.broker_dir,
        consumers=tuple(args.consumer or ["central"]), image=args.image or DEFAULT_IMAGE,
        broker_names=tuple(args.broker_name),
    )  # fmt: skip
    boxes = provision(args.store_dir, args.out, options)
    print(f"provisioned {len(boxes)} box(es) of {args.store_dir} into {args.out}: {', '.join(sorted(boxes))}")
    unchecked = sorted(name for name, config in boxes.items() if not config.bundle_keys)
    if unchecked:
        print(f"warning: no bundle_keys for {', '.join(unchecked)}: they run unsigned bundles (see `shelfwatch "
              "bundle keygen`)", file=sys.stderr)  # fmt: skip
    print(f"broker: {args.out / 'broker' / 'mosquitto.conf'} (boxes on {args.box_port}, consumers on "
          f"{args.consumer_port}); consumer passwords in {args.out / 'consumers'}")  # fmt: skip
    return 0
