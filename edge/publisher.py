"""Delivery: the outbox's events to the broker over MQTT 5 (paho-mqtt 2, QoS 1), at least once, in seq order.

A pump thread publishes pending events in seq order with a bounded window in flight and deletes each
from the outbox once the broker has accepted it (a PUBACK with a success reason code). After every
(re)connect it starts again from the oldest unacknowledged event, so a backlog is replayed in order;
duplicates are possible, and consumers drop them by `event_id`. Status heartbeats are published directly,
retained; the broker publishes the box's last will (status `offline`) if the connection dies.

MQTT 5 because a 3.1.1 broker acknowledges a publish its ACL denies and drops it: a box with the wrong
certificate would empty its outbox into nothing. A PUBACK with a failure reason code (>= 0x80, e.g. 0x87 not
authorized) leaves the event in the outbox, counted in `refused` and logged; refused events are tried again
after a pause that doubles up to REFUSED_RETRY_MAX_S (and after every reconnect).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.config import MqttConfig
from edge.mqtt import new_client, session
from edge.outbox import Outbox
from edge.retry import Backoff

WINDOW = 64  # events in flight at once
REFUSED_RETRY_MIN_S = 1.0
REFUSED_RETRY_MAX_S = 300.0  # a refusal is a configuration problem: retry, but do not hammer the broker


def _stderr(message: str) -> None:
    print(f"shelfwatch edge: {message}", file=sys.stderr, flush=True)


class Publisher:
    def __init__(self, outbox: Outbox, config: MqttConfig, client_id: str, status_topic: str, will: bytes,
                 log: Callable[[str], None] = _stderr,
                 on_control: Callable[[str, bytes], None] | None = None) -> None:  # fmt: skip
        self.outbox, self.config, self.status_topic, self.log = outbox, config, status_topic, log
        tls = config.tls
        self.client = new_client(
            client_id, tls=tls is not None, ca=str(tls.ca) if tls else None,
            cert=str(tls.cert) if tls and tls.cert else None, key=str(tls.key) if tls and tls.key else None,
            username=config.username, password=config.password() if config.username else None,
        )  # fmt: skip
        self.client.will_set(status_topic, will, qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=int(config.reconnect_max_s))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        # Central's control messages for this box (retained: the latest of each comes at every connect).
        self.on_control = on_control
        self.control_topics = status_topic.rsplit("/", 1)[0] + "/control/#"
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # mid -> the broker's answer ("" accepted, else its reason), written by paho's thread and read by the pump:
        # an event counts as answered only once its answer is here, whatever order paho marks things in.
        self._answers: dict[int, str] = {}
        self._answers_lock = threading.Lock()
        self.refused = 0  # publishes the broker refused (each try counts)
        self._held: set[int] = set()  # seqs refused and waiting for their retry
        self._was_refused: set[int] = set()
        self._retry_at = 0.0
        self._retry = Backoff(REFUSED_RETRY_MIN_S, REFUSED_RETRY_MAX_S)
        self.connected = threading.Event()
        self._restart = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.connections = 0
        self.last_error = ""
        self._pump_thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s,
                                  clean_start=False, properties=session())  # fmt: skip
        self.client.loop_start()
        self._pump_thread.start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            return
        self.connections += 1
        if self.on_control is not None:
            client.subscribe(self.control_topics, qos=1)
        self._restart.set()
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.last_error = str(reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        answer = f"{reason_code} (0x{reason_code.value:02x})" if reason_code.is_failure else ""
        with self._answers_lock:
            self._answers[mid] = answer
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if self.on_control is not None and msg.topic.startswith(self.control_topics[:-1]):
            self.on_control(msg.topic.rsplit("/", 1)[1], msg.payload)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):  # a box provisioned before control topics existed
            self.log(f"the broker refused this box's control topics ({reason_codes[0]}): provision the broker again")

    def notify(self) -> None:
        """Something new is in the outbox."""
        self._wake.set()

    def _pump(self) -> None:
        in_flight: deque[tuple[int, str, mqtt.MQTTMessageInfo]] = deque()
        sent_upto = 0
        while not self._stop.is_set():
            if self._restart.is_set():
                self._restart.clear()
                in_flight.clear()
                self._held.clear()
                sent_upto = 0  # replay everything not yet acknowledged, oldest first
            with self._answers_lock:
                answered = [(x, self._answers.pop(x[2].mid)) for x in in_flight if x[2].mid in self._answers]
                mids = {info.mid for _, _, info in in_flight}
                for mid in [m for m in self._answers if m not in mids]:
                    del self._answers[mid]  # a copy sent before a reconnect: its mid may come round again
            for (seq, topic, info), reason in answered:
                in_flight.remove((seq, topic, info))
                if reason:
                    self._refuse(seq, topic, reason)
                else:
                    self._accepted(seq)
            if self._held and not in_flight and time.monotonic() >= self._retry_at:
                self._held.clear()
                sent_upto = 0  # try the refused events again, oldest first
            if self.connected.is_set() and len(in_flight) < WINDOW:
                for stored in self.outbox.pending(after=sent_upto, limit=WINDOW - len(in_flight)):
                    info = self.client.publish(stored.topic, stored.payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        break  # disconnected meanwhile; the reconnect replays it
                    in_flight.append((stored.seq, stored.topic, info))
                    sent_upto = stored.seq
            self._wake.wait(0.02 if in_flight else 0.2)
            self._wake.clear()

    def _refuse(self, seq: int, topic: str, reason: str) -> None:
        """The broker said no: the event stays in the outbox and is tried again later."""
        self.refused += 1
        self._was_refused.add(seq)
        if not self._held:  # the first refusal of a round schedules the next try and says so, once a round
            wait = self._retry.next()  # refused again on a retry: the next wait is longer
            self._retry_at = time.monotonic() + wait
            self.log(f"the broker refused event {seq} on {topic}: {reason}; it stays in the outbox, next try in "
                     f"{wait:.0f} s ({self.refused} refused so far; is this box's certificate the "
                     f"one provisioned for it?)")  # fmt: skip
        self._held.add(seq)

    def _accepted(self, seq: int) -> None:
        self.outbox.acknowledge(seq)
        if seq in self._was_refused:  # the broker takes what it refused before: back to quick retries
            self._was_refused.discard(seq)
            self._retry.reset()
            self._retry_at = 0.0

    def publish_status(self, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        if not self.connected.is_set():
            return None
        return self.client.publish(self.status_topic, payload, qos=1, retain=True)

    def flush(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every stored event (or `timeout` passes); events it refused
        and that wait for their retry are not waited for."""
        deadline = time.monotonic() + timeout
        while self.outbox.depth() > len(self._held) and time.monotonic() < deadline:
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
