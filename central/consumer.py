"""The MQTT side of central: an MQTT 5 shared subscription, so that several consumers split the load (the
broker spreads messages among a group's members; run more consumers to scale out), a persistent session
(nothing is lost while a consumer restarts), and each message stored before it is acknowledged."""

from __future__ import annotations

import queue
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import SQLAlchemyError

from central.pos import ALERT_TOPIC_ROOT, POS_TOPIC_ROOT, Alert
from central.service import Central, alert_payload
from edge.errors import ShelfWatchError
from edge.events import TOPIC_ROOT

SESSION_EXPIRY_S = 24 * 3600  # the broker keeps a stopped consumer's queue this long
BATCH = 500  # messages per database transaction, at most
BATCH_WAIT_S = 0.05  # how long a partial batch waits for more


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca: str | None

    @staticmethod
    def parse(url: str) -> BrokerUrl:
        """mqtt://[user:password@]host[:1883] or mqtts://…[:8883]?ca=/path/ca.crt"""
        parts = urlparse(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ShelfWatchError(f"{url!r}: an MQTT URL looks like mqtt://host:1883 or mqtts://user:pw@host:8884")
        tls = parts.scheme == "mqtts"
        ca = parse_qs(parts.query).get("ca", [None])[0]
        return BrokerUrl(parts.hostname, parts.port or (8883 if tls else 1883), tls,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None, ca)  # fmt: skip


class Consumer:
    def __init__(self, central: Central, url: str, group: str = "central", client_id: str | None = None) -> None:
        self.central, self.broker, self.group = central, BrokerUrl.parse(url), group
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"shelfwatch-{group}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        if self.broker.tls:
            self.client.tls_set(ca_certs=self.broker.ca, cert_reqs=ssl.CERT_REQUIRED)
        if self.broker.username:
            self.client.username_pw_set(self.broker.username, self.broker.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        # Acknowledge only once stored: messages are written in batches (one commit each) by the writer thread.
        self.client.manual_ack_set(True)
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write, name="central-writer", daemon=True)
        self.client.reconnect_delay_set(1, 30)
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subscribed.set()
        central.publish_alert = self.publish_alert

    def topics(self) -> list[str]:
        share = f"$share/{self.group}"
        return [f"{share}/{TOPIC_ROOT}/+/+/+", f"{share}/{POS_TOPIC_ROOT}/+/+"]

    def start(self, block: bool = False) -> None:
        self._writer.start()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self.client.connect(self.broker.host, self.broker.port, clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:
            raise ShelfWatchError(f"cannot reach the broker at {self.broker.host}:{self.broker.port} ({exc})") from None
        if block:
            self.client.loop_forever(retry_first_connection=True)
        else:
            self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._stop.set()
        self._writer.join(5)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics()])

    def _on_message(self, client, userdata, msg) -> None:
        self._inbox.put(msg)

    def _write(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < BATCH and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._inbox.get(timeout=left))
                except queue.Empty:
                    break
            while not self._stop.is_set():
                try:
                    self._store(batch)
                    break
                except SQLAlchemyError as exc:  # the database is away: keep the batch, unacknowledged, and retry
                    print(f"central: database error, retrying in 2 s ({str(exc).splitlines()[0][:150]})",
                          file=sys.stderr, flush=True)  # fmt: skip
                    time.sleep(2)
            else:
                return
            for m in batch:  # stored: now the broker may forget them
                self.client.ack(m.mid, m.qos)

    def _store(self, batch: list[mqtt.MQTTMessage]) -> None:
        events = [m for m in batch if not m.topic.startswith(POS_TOPIC_ROOT + "/")]
        if events:
            self.central.events([(m.topic, m.payload) for m in events])
        for m in batch:
            if m.topic.startswith(POS_TOPIC_ROOT + "/"):  # in order, each reconciles on its own
                self.central.pos_payload("mqtt", m.topic, m.payload)

    def publish_alert(self, alert: Alert) -> None:
        self.client.publish(f"{ALERT_TOPIC_ROOT}/{alert.store}/{alert.lane}", alert_payload(alert), qos=1)
