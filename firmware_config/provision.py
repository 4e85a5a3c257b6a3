"""`shelfwatch provision STORE_DIR --out OUT_DIR`: everything an installer flashes, per box, and the
broker's side of the store.

    OUT_DIR/ca/                 ca.crt, ca.key (kept: re-provisioning reuses it, so boxes stay trusted)
    OUT_DIR/boxes/<box>/        config.yaml (resolved), bundle/ (verified, and its signature checked against the
                                box's bundle_keys), keys/<key id>.pub (those public keys, written afresh from
                                the parsed key: a private key is refused, never copied),
                                certs/{ca.crt,box.crt,box.key}, shelfwatch-edge.service (systemd), run.sh
    OUT_DIR/broker/             mosquitto.conf, ca.crt, server.crt, server.key, passwd, acl, data/ (persistence)
    OUT_DIR/consumers/<user>.password   the password users' passwords (hashed in broker/passwd): each consumer
                                (default central) and the store's POS, pos-<store>
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge import tokens
from edge.bundle import MANIFEST, Manifest, load_bundle
from edge.config import HOST, BoxConfig
from edge.errors import ShelfWatchError
from edge.schema import is_slug
from edge.signing import SIGNATURE, TrustedKey, load_trusted_keys, public_pem
from firmware_config import broker as mosq
from firmware_config.certs import issue, load_or_create_ca, write_cert, write_key
from firmware_config.store import load_store

BOX_ETC = "/etc/shelfwatch"  # where a box's folder is installed (mounted read-only into the container)
BOX_STATE = "/var/lib/shelfwatch"  # the outbox lives here, outside the container
DEFAULT_IMAGE = "shelfwatch/edge-jetson:0.1.0"
BOX_TOKEN = "central.token"  # the box's own API token for central's HTTP API (the channel), in certs/
CENTRAL_CA = "central-ca.crt"  # the CA of central's HTTPS certificate, when the store names one (uplink.ca)
BOX_TOKENS = "box-tokens.json"  # OUT_DIR/central/: the tokens' hashes, for `shelfwatch central token import`

# What reaches a file path, a Mosquitto config line or a shell line is checked against these before anything
# is written: a newline in a user name would add an ACL line, a `;` in the image a shell command.
# A Docker image reference as the distribution/reference grammar spells it: [host[:port]/]path[:tag][@digest].
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
                   r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")  # fmt: skip
# A path that goes into mosquitto.conf: absolute, one line, no spaces (Mosquitto would cut the value there).
CONF_PATH = re.compile(r"/[^\s\x00-\x1f\x7f]*")


@dataclass(frozen=True)
class ProvisionOptions:
    box_port: int = 8883
    consumer_port: int = 8884
    broker_dir: Path | None = None  # where the broker files will live; default: OUT_DIR/broker
    consumers: tuple[str, ...] = ("central",)
    image: str = DEFAULT_IMAGE
    broker_names: tuple[str, ...] = ()  # extra names / IPs for the broker's certificate


def check_options(options: ProvisionOptions) -> None:
    """Refuse, before anything is written, every value that would land in a path, a config line or a shell line."""
    for user in options.consumers:
        if not is_slug(user):  # no dots: box identities have one
            raise ShelfWatchError(f"--consumer {user!r}: a user name is lower-case letters, digits, _ and - "
                                  "(at most 63, starting with a letter or digit)")  # fmt: skip
    if len(set(options.consumers)) != len(options.consumers):
        raise ShelfWatchError("--consumer: each user once")
    if len(options.image) > 255 or not IMAGE.fullmatch(options.image):
        raise ShelfWatchError(f"--image {options.image!r}: not a container image reference "
                              "(like registry.example.com:5000/shelfwatch/edge-jetson:0.1.0)")  # fmt: skip
    for name, port in (("--box-port", options.box_port), ("--consumer-port", options.consumer_port)):
        if not 1 <= port <= 65535:
            raise ShelfWatchError(f"{name} {port}: a TCP port is 1 to 65535")
    if options.box_port == options.consumer_port:
        raise ShelfWatchError("--box-port and --consumer-port must differ")


def check_broker_dir(broker_dir: Path) -> None:
    if not CONF_PATH.fullmatch(str(broker_dir)):
        raise ShelfWatchError(f"broker folder {str(broker_dir)!r}: must be an absolute path without spaces or "
                              "control characters (it is written into mosquitto.conf; see --broker-dir)")  # fmt: skip


def box_config_yaml(config: BoxConfig, port: int) -> str:
    """The box's resolved config, with paths as installed on the box."""
    data = config.model_dump(mode="json", exclude_none=True)
    data["bundle"] = "bundle"
    if not data.get("bundle_keys"):
        data.pop("bundle_keys", None)  # a box without keys: its config stays readable by agents from before keys
    data["outbox"]["path"] = f"{BOX_STATE}/outbox.sqlite"
    mqtt = data.get("mqtt") or {}
    mqtt.pop("password_env", None)
    mqtt.pop("password_file", None)
    mqtt.update(port=port, tls={"ca": "certs/ca.crt", "cert": "certs/box.crt", "key": "certs/box.key"})
    data["mqtt"] = mqtt
    if config.uplink is not None:
        data["uplink"]["token_file"] = f"certs/{BOX_TOKEN}"
        if config.uplink.ca is not None:
            data["uplink"]["ca"] = f"certs/{CENTRAL_CA}"
    source = data["camera"]["source"]
    if "://" not in source and not source.isdigit():
        data["camera"]["source"] = Path(source).name  # a file beside the config (installers rarely use one)
    header = (
        f"# ShelfWatch box {config.store}/{config.box}: written by `shelfwatch provision`; edit the store instead.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False)


def container_command(image: str, device: str | None) -> list[str]:
    command = ["docker", "run", "--rm", "--name", "shelfwatch-edge", "--runtime", "nvidia", "--network", "host",
               "--volume", f"{BOX_ETC}:{BOX_ETC}:ro", "--volume", f"{BOX_STATE}:{BOX_STATE}"]  # fmt: skip
    if device is not None:
        command += ["--device", f"/dev/video{device}"]
    return [*command, image, "edge", "run", "--config", f"{BOX_ETC}/config.yaml"]


def systemd_unit(config: BoxConfig, command: list[str]) -> str:
    return f"""[Unit]
Description=ShelfWatch edge agent ({config.store}/{config.box})
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Restart=always
RestartSec=5
ExecStartPre=-/usr/bin/docker rm -f shelfwatch-edge
ExecStart=/usr/bin/{shell_line(command)}
# docker stop sends SIGTERM: the agent flushes its outbox and publishes status "stopped".
ExecStop=/usr/bin/docker stop --time 25 shelfwatch-edge
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def shell_line(command: list[str]) -> str:
    """The command quoted for sh and for systemd's ExecStart (both read POSIX single quotes)."""
    return shlex.join(command)


def provision(store_dir: Path, out: Path, options: ProvisionOptions) -> dict[str, BoxConfig]:
    check_options(options)
    boxes, problems = load_store(store_dir)
    if problems:
        raise ShelfWatchError(f"{store_dir}: {len(problems)} problem(s); first: {problems[0]} "
                              f"(run `shelfwatch config validate {store_dir}` for all)")  # fmt: skip
    store = next(iter(boxes.values())).store
    hosts = sorted({c.mqtt.host for c in boxes.values() if c.mqtt} | set(options.broker_names))
    if not hosts:
        raise ShelfWatchError(f"{store_dir}: no mqtt.host in store.yaml: the boxes need a broker")
    for name in options.broker_names:
        if not HOST.fullmatch(name):
            raise ShelfWatchError(f"--broker-name {name!r}: not a host name or IP address")
    # Every bundle is verified (file names included), and checked against its box's keys as the box will check
    # it, before anything is written.
    keys = {name: load_trusted_keys(config.bundle_keys) for name, config in sorted(boxes.items())}
    manifests = {name: _checked_bundle(name, config, keys[name]) for name, config in sorted(boxes.items())}
    if mosq.pos_user(store) in options.consumers:
        raise ShelfWatchError(f"--consumer {mosq.pos_user(store)}: that is the store's POS user (it only writes POS)")
    broker_out = out / "broker"
    broker_dir = options.broker_dir or broker_out.resolve()
    check_broker_dir(broker_dir)
    org = f"ShelfWatch {store}"
    ca = load_or_create_ca(out / "ca", org)
    server_cert, server_key = issue(ca, hosts[0], org, server_names=hosts)
    write_cert(ca.cert, broker_out / "ca.crt")
    write_cert(server_cert, broker_out / "server.crt")
    write_key(server_key, broker_out / "server.key")
    (broker_out / "data").mkdir(parents=True, exist_ok=True)  # the broker's persistence (it must write here)
    entries = []
    for user in [*options.consumers, mosq.pos_user(store)]:
        password = secrets.token_urlsafe(24)
        secret = out / "consumers" / f"{user}.password"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        entries.append(mosq.password_entry(user, password))
    (broker_out / "passwd").write_text("\n".join(entries) + "\n")
    (broker_out / "acl").write_text(mosq.acl(store, sorted(boxes), list(options.consumers)))
    queued = mosq.queue_limit([config.outbox.max_events for config in boxes.values()])
    conf = mosq.mosquitto_conf(broker_dir, options.box_port, options.consumer_port, queued)
    (broker_out / "mosquitto.conf").write_text(conf)

    box_tokens: list[dict] = []
    for name, config in sorted(boxes.items()):
        folder = out / "boxes" / name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "bundle").mkdir(parents=True)
        signature = [SIGNATURE] if (config.bundle / SIGNATURE).is_file() else []
        for file in [MANIFEST, *manifests[name].files, *signature]:
            shutil.copy2(config.bundle / file, folder / "bundle" / file)
        installed = [Path("keys") / f"{trusted.key_id}.pub" for trusted in keys[name]]
        for trusted, path in zip(keys[name], installed, strict=True):
            (folder / path).parent.mkdir(exist_ok=True)
            (folder / path).write_bytes(public_pem(trusted.key))  # the parsed public key alone, nothing else
        config = config.model_copy(update={"bundle_keys": installed})
        cert, key = issue(ca, mosq.box_identity(config.store, name), org)
        write_cert(ca.cert, folder / "certs" / "ca.crt")
        write_cert(cert, folder / "certs" / "box.crt")
        write_key(key, folder / "certs" / "box.key")
        if config.uplink is not None:
            box_tokens.append(_box_token(config, folder / "certs"))
        (folder / "config.yaml").write_text(box_config_yaml(config, options.box_port))
        source = config.camera.source
        command = container_command(options.image, source if source.isdigit() else None)
        (folder / "shelfwatch-edge.service").write_text(systemd_unit(config, command))
        run = folder / "run.sh"
        run.write_text("#!/bin/sh\n# Runs the agent in the Jetson image, as the systemd unit does.\nexec "
                       + shell_line(command) + "\n")  # fmt: skip
        run.chmod(0o755)
    if box_tokens:
        (out / "central").mkdir(parents=True, exist_ok=True)
        (out / "central" / BOX_TOKENS).write_text(json.dumps(box_tokens, indent=2) + "\n")
    return boxes


def _box_token(config: BoxConfig, certs: Path) -> dict:
    """A new token of the box's own for central's HTTP API: the secret goes to the box only (mode 0600), its
    hash to central (`box-tokens.json`, imported with `shelfwatch central token import`)."""
    assert config.uplink is not None
    token_id, secret, token = tokens.mint()
    path = certs / BOX_TOKEN
    path.write_text(token + "\n")
    path.chmod(0o600)
    if config.uplink.ca is not None:
        shutil.copy2(config.uplink.ca, certs / CENTRAL_CA)
    return {"token_id": token_id, "secret_sha256": tokens.digest(secret), "store": config.store, "box": config.box}


def _checked_bundle(box: str, config: BoxConfig, keys: list[TrustedKey]) -> Manifest:
    try:
        return load_bundle(config.bundle, keys)
    except ShelfWatchError as exc:
        raise ShelfWatchError(f"box {box}: {exc} (the box would refuse it)" if keys else str(exc)) from None
