"""The broker's side of a store: a Mosquitto config snippet, its password file and its ACL.

Two TLS listeners: boxes connect with their client certificate (mutual TLS; the certificate's common
name is their identity), consumers such as central connect with a username and password. The ACL lets
each box write only under its own prefix `shelfwatch/v1/<store>/<box>/#` and the consumers read all.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from edge.events import TOPIC_ROOT

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes ($7$: PBKDF2-SHA512)


def box_identity(store: str, box: str) -> str:
    return f"{store}.{box}"


def password_entry(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of a Mosquitto 2 password file, hashed as `mosquitto_passwd` hashes it."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, dklen=64)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl(store: str, boxes: list[str], consumers: list[str]) -> str:
    lines = ["# ShelfWatch: each box writes only under its own prefix; consumers read everything.", ""]
    for box in boxes:
        lines += [f"user {box_identity(store, box)}", f"topic write {TOPIC_ROOT}/{store}/{box}/#", ""]
    for user in consumers:
        lines += [f"user {user}", f"topic read {TOPIC_ROOT}/#", ""]
    return "\n".join(lines)


def mosquitto_conf(folder: Path, box_port: int, consumer_port: int) -> str:
    """Paths are where the broker files will live on the broker host (`folder`)."""
    return f"""# ShelfWatch listeners (include from mosquitto.conf, or run with -c).
per_listener_settings true
# A consumer that falls behind must not lose QoS 1 events (Mosquitto drops beyond 1000 queued by default).
max_queued_messages 1000000
max_inflight_messages 1000

# Boxes: mutual TLS; a box's identity is its certificate's common name.
listener {box_port}
cafile {folder}/ca.crt
certfile {folder}/server.crt
keyfile {folder}/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
acl_file {folder}/acl

# Consumers (central): TLS and a password.
listener {consumer_port}
cafile {folder}/ca.crt
certfile {folder}/server.crt
keyfile {folder}/server.key
tls_version tlsv1.2
allow_anonymous false
password_file {folder}/passwd
acl_file {folder}/acl
"""
