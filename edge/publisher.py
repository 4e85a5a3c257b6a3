"""Delivery: the outbox's events to the broker over MQTT (paho-mqtt 2, QoS 1), at least once, in seq order.

A pump thread publishes pending events in seq order with a bounded window in flight and deletes each
from the outbox once the broker has acknowledged it (PUBACK). After every (re)connect it starts again
from the oldest unacknowledged event, so a backlog is replayed in order; duplicates are possible, and
consumers drop them by `event_id`. Status heartbeats are published directly, retained; the broker
publishes the box's last will (status `offline`) if the connection dies.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

from edge.config import MqttConfig
from edge.outbox import Outbox

WINDOW = 64  # events in flight at once


class Publisher:
    def __init__(self, outbox: Outbox, config: MqttConfig, client_id: str, status_topic: str, will: bytes) -> None:
        self.outbox, self.config, self.status_topic = outbox, config, status_topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.client.will_set(status_topic, will, qos=1, retain=True)
        if config.tls is not None:
            self.client.tls_set(
                ca_certs=str(config.tls.ca),
                certfile=str(config.tls.cert) if config.tls.cert else None,
                keyfile=str(config.tls.key) if config.tls.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if config.username:
            self.client.username_pw_set(config.username, config.password())
        self.client.reconnect_delay_set(min_delay=1, max_delay=int(config.reconnect_max_s))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self._restart = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.connections = 0
        self.last_error = ""
        self._pump_thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        self._pump_thread.start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            return
        self.connections += 1
        self._restart.set()
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.last_error = str(reason_code)

    def notify(self) -> None:
        """Something new is in the outbox."""
        self._wake.set()

    def _pump(self) -> None:
        in_flight: deque[tuple[int, mqtt.MQTTMessageInfo]] = deque()
        sent_upto = 0
        while not self._stop.is_set():
            if self._restart.is_set():
                self._restart.clear()
                in_flight.clear()
                sent_upto = 0  # replay everything not yet acknowledged, oldest first
            for seq, info in [x for x in in_flight if x[1].is_published()]:
                self.outbox.acknowledge(seq)
                in_flight.remove((seq, info))
            if self.connected.is_set() and len(in_flight) < WINDOW:
                for stored in self.outbox.pending(after=sent_upto, limit=WINDOW - len(in_flight)):
                    info = self.client.publish(stored.topic, stored.payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        break  # disconnected meanwhile; the reconnect replays it
                    in_flight.append((stored.seq, info))
                    sent_upto = stored.seq
            self._wake.wait(0.02 if in_flight else 0.2)
            self._wake.clear()

    def publish_status(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        if not self.connected.is_set():
            return None
        return self.client.publish(self.status_topic, payload, qos=1, retain=True)

    def flush(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every stored event (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while self.outbox.depth() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        return self.outbox.depth() == 0

    def abandon(self) -> None:
        """Stop without a clean DISCONNECT, so that the broker publishes the last will (status offline)."""
        self._stop.set()
        self._wake.set()
        self._pump_thread.join(1.0)
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def stop(self, final_status: bytes | None = None, timeout: float = 5.0) -> None:
        """Publish a last (retained) status if connected, then disconnect cleanly: no last will is sent."""
        if final_status is not None:
            info = self.publish_status(final_status)
            if info is not None:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout)
        self._stop.set()
        self._wake.set()
        self._pump_thread.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()
