"""The MQTT session every ShelfWatch client opens the same way (paho-mqtt 2, callback API 2, MQTT 5): the box's
publisher and central's consumer both take their client, TLS, credentials and persistent session from here.

MQTT 5 because a 3.1.1 broker acknowledges a publish its ACL denies and drops it; persistent sessions (clean
start off, a long expiry) because the broker must keep a client's in-flight QoS 1 state, and queue for it,
across short outages."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.errors import ShelfWatchError

SESSION_EXPIRY_S = 24 * 3600  # how long the broker keeps a disconnected client's session (and queues for it)
# CONNACK reason codes that no retry will change (MQTT 5, 3.2.2.2): a wrong password stays wrong.
PERMANENT_REFUSALS = {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C}


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None
    ca: str | None

    @staticmethod
    def parse(url: str) -> BrokerUrl:
        """mqtt://[user@]host[:1883] or mqtts://[user@]host[:8883]?ca=/path/ca.crt. A password in the URL is
        refused: command lines are visible to every user of the machine (`ps`)."""
        parts = urlparse(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ShelfWatchError(f"{url!r}: an MQTT URL looks like mqtt://host:1883 or mqtts://user@host:8884")
        if parts.password is not None:
            raise ShelfWatchError(
                "--mqtt: the URL holds a password, which `ps` shows to anyone on this machine; drop it from the "
                "URL and use --mqtt-password-file or SHELFWATCH_MQTT_PASSWORD"
            )
        tls = parts.scheme == "mqtts"
        ca = parse_qs(parts.query).get("ca", [None])[0]
        return BrokerUrl(parts.hostname, parts.port or (8883 if tls else 1883), tls,
                         unquote(parts.username) if parts.username else None, ca)  # fmt: skip


def new_client(
    client_id: str, *, tls: bool = False, ca: str | None = None, cert: str | None = None, key: str | None = None,
    username: str | None = None, password: str | None = None,
) -> mqtt.Client:  # fmt: skip
    """An MQTT 5 client with the broker's certificate checked (when `tls`) and the credentials set."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if tls:
        client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
    if username:
        client.username_pw_set(username, password)
    return client


def session(expiry_s: int = SESSION_EXPIRY_S) -> Properties:
    """CONNECT properties of a persistent session (connect with clean_start=False)."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    return props
