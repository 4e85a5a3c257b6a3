"""The broker's side of a store: a Mosquitto config snippet, its password file and its ACL.

Two TLS listeners: boxes connect with their client certificate (mutual TLS; the certificate's common
name is their identity and their client id), consumers such as central and the store's POS connect with a
user name and password. The ACL gives each role only its topics (see `acl`). The broker persists sessions
and queued messages, so what it has acknowledged survives its restart.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from edge.events import MAX_PAYLOAD_BYTES, TOPIC_ROOT

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd writes ($7$: PBKDF2-SHA512)
# The largest MQTT packet anyone may send: an event is at most 1 KB of payload (edge.events), its topic at most
# about 150 bytes (shelfwatch/v1/<store>/<box>/<kind>, slugs of 63), the packet's header and properties a few
# dozen; a box's CONNECT carries its last will, one status event. That is under 1.3 KB; the rest is headroom for
# the retained control message to come. Clips, snapshots and bundles travel over HTTPS, never MQTT.
MAX_PACKET_BYTES = 4096
# Checkout messages a consumer's queue keeps beside the boxes' events: a day at about one a second over all lanes.
POS_QUEUE = 100_000
AUTOSAVE_S = 1  # a full save of the in-memory database; cheap at the queue sizes a store produces
SESSION_EXPIRY = "7d"  # as long as a box's outbox keeps events (outbox.max_age_s)


def box_identity(store: str, box: str) -> str:
    return f"{store}.{box}"


def password_entry(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of a Mosquitto 2 password file, hashed as `mosquitto_passwd` hashes it."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, dklen=64)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


POS_ROOT = "shelfwatch/pos/v1"  # shelfwatch/pos/v1/<store>/<lane>: checkout transactions (central reads them)
ALERTS_ROOT = "shelfwatch/alerts/v1"  # shelfwatch/alerts/v1/<store>/<lane>: central's theft alerts


def pos_user(store: str) -> str:
    """The store's checkout integration: it may publish only its own store's POS topics."""
    return f"pos-{store}"


def acl(store: str, boxes: list[str], consumers: list[str]) -> str:
    """Each role gets exactly the topics it needs; everything else is denied (a v5 client gets reason 0x87).

    boxes        write their own shelfwatch/v1/<store>/<box>/<kind> (events, status, last will: one level, so never
                 their control topics), read their own shelfwatch/v1/<store>/<box>/control/#
    consumers    read shelfwatch/v1/# and shelfwatch/pos/v1/#, write shelfwatch/alerts/v1/# and every box's
                 control topics (central alone tells boxes what to do)
    pos-<store>  writes shelfwatch/pos/v1/<store>/<lane>
    """
    lines = ["# ShelfWatch roles (written by `shelfwatch provision`): anything not listed is denied.", ""]
    for box in boxes:
        lines += [f"user {box_identity(store, box)}", f"topic write {TOPIC_ROOT}/{store}/{box}/+",
                  f"topic read {TOPIC_ROOT}/{store}/{box}/control/#", ""]  # fmt: skip
    # Central subscribes with wildcards over every store and lane ($share/<group>/shelfwatch/v1/+/+/+), and
    # Mosquitto checks a subscription's filter, not the topics it will match: read access must be as wide.
    for user in consumers:
        lines += [f"user {user}", f"topic read {TOPIC_ROOT}/#", f"topic read {POS_ROOT}/#",
                  f"topic write {ALERTS_ROOT}/#", f"topic write {TOPIC_ROOT}/+/+/control/#", ""]  # fmt: skip
    lines += [f"user {pos_user(store)}", f"topic write {POS_ROOT}/{store}/+", ""]
    return "\n".join(lines)


def queue_limit(outbox_events: list[int]) -> int:
    """The messages the broker keeps for one consumer that is away: as many as the store's boxes would keep in their
    outboxes were the broker the one away (the sum of their `outbox.max_events`), plus a day of checkout messages.
    A box's events are safe for as long as its outbox would keep them, whichever side is away."""
    return sum(outbox_events) + POS_QUEUE


def mosquitto_conf(folder: Path, box_port: int, consumer_port: int, queued: int, data: Path | None = None) -> str:
    """Paths are where the broker files will live on the broker host (`folder`); `data` is where Mosquitto keeps
    its persistent sessions and queued messages (default `folder`/data, which the broker must be able to write);
    `queued` is what it keeps per absent consumer (`queue_limit`)."""
    data = data or folder / "data"
    return f"""# ShelfWatch listeners (include from mosquitto.conf, or run with -c).
per_listener_settings true
# No packet over {MAX_PACKET_BYTES} bytes: an event is at most {MAX_PAYLOAD_BYTES} bytes of payload; whoever sends more
# is disconnected before the broker holds it (a box certificate once made it hold five 30 MB messages).
max_packet_size {MAX_PACKET_BYTES}
# What is kept for a consumer that is away (a QoS 1 message past these is dropped): as many messages as the store's
# boxes keep in their outboxes, plus a day of checkout messages, of at most {MAX_PAYLOAD_BYTES} bytes each on average.
max_queued_messages {queued}
max_queued_bytes {queued * MAX_PAYLOAD_BYTES}
max_inflight_messages 1000

# What the broker has acknowledged survives its restart: persistent sessions, their subscriptions and queued
# messages are saved on exit and every {AUTOSAVE_S} s (a kill -9 loses at most that last interval). A session
# whose client stays away longer than an outbox keeps events is dropped, so dead consumers do not queue forever.
persistence true
persistence_location {data}/
persistence_file mosquitto.db
autosave_interval {AUTOSAVE_S}
persistent_client_expiration {SESSION_EXPIRY}

# Boxes: mutual TLS; a box's identity is its certificate's common name <store>.<box>, and the broker uses it as
# the client id too, so a box cannot take over another box's session (nor fire its last will).
listener {box_port}
cafile {folder}/ca.crt
certfile {folder}/server.crt
keyfile {folder}/server.key
require_certificate true
use_identity_as_username true
use_username_as_clientid true
tls_version tlsv1.2
acl_file {folder}/acl

# Consumers (central) and the store's POS: TLS and a password. The client id is the user name here too: a
# password user cannot claim a box's client id, and one session per user survives restarts (several central
# processes need one user each: provision them with --consumer).
listener {consumer_port}
cafile {folder}/ca.crt
certfile {folder}/server.crt
keyfile {folder}/server.key
tls_version tlsv1.2
allow_anonymous false
use_username_as_clientid true
password_file {folder}/passwd
acl_file {folder}/acl
"""
