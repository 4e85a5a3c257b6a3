"""The MQTT side of central: a persistent MQTT 5 session (nothing is lost while a consumer restarts), each
message stored before it is acknowledged, and either one consumer's plain subscription (the default) or a
group's shared subscription (`group`: the broker spreads messages among the members; run more to scale out).

Why plain by default: Mosquitto (2.0.11 here, measured) restores a persistent session's plain subscriptions
after a broker restart but not its shared ones, so a shared member misses whatever boxes publish between
the broker's restart and the member's resubscription; a plain subscription is there from the broker's
first second. A group trades that window for scale-out.

A consumer's identity is its MQTT client id, and it must survive restarts: the broker keeps a member's
session, and queues that member's share of the messages, for the session expiry (24 h) after it
disconnects. A restarted consumer with the same id resumes that session and gets its queue; one with a new
id would leave the old session holding a share nobody reads. So the default id is derived from the host
name and the group, never from the process; a member retired for good is removed with `leave()`
(`shelfwatch central leave`), which drains its queue first.
"""

from __future__ import annotations

import queue
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central.db import TRANSIENT_DB
from central.pos import ALERT_TOPIC_ROOT, POS_TOPIC_ROOT, Alert
from central.service import Central, alert_payload
from edge.errors import ShelfWatchError
from edge.events import TOPIC_ROOT
from edge.mqtt import PERMANENT_REFUSALS, SESSION_EXPIRY_S, BrokerUrl, new_client, session
from edge.retry import Backoff

BATCH = 500  # messages per database transaction, at most
BATCH_WAIT_S = 0.05  # how long a partial batch waits for more
RETRY_S = 2.0  # between attempts while the database is away


def default_client_id(group: str | None) -> str:
    """`shelfwatch-<group or central>-<host>`: the same after every restart on this host (run one consumer per
    host and group, or give each its own --client-id)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    return f"shelfwatch-{group or 'central'}-{host}"


class Interrupted(ShelfWatchError):
    """Asked to stop (SIGTERM) before the broker was reached: not an error."""


def _topic(message: mqtt.MQTTMessage) -> str:
    """The topic as text: MQTT requires UTF-8 (Mosquitto checks it), but a broker that lets other bytes through
    must not stop the writer."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return message._topic.decode("utf-8", "replace")  # paho keeps the raw bytes only there


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


class Consumer:
    def __init__(
        self, central: Central, url: str, group: str | None = None, client_id: str | None = None,
        password: str | None = None,
    ) -> None:  # fmt: skip
        self.central, self.broker, self.group = central, BrokerUrl.parse(url), group
        self.client_id = client_id or default_client_id(group)
        self.client = new_client(self.client_id, tls=self.broker.tls, ca=self.broker.ca,
                                 username=self.broker.username, password=password)  # fmt: skip
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        # Acknowledge only once stored: messages are written in batches (one commit each) by the writer thread.
        self.client.manual_ack_set(True)
        self.client.reconnect_delay_set(1, 30)
        self._inbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._interrupted = threading.Event()  # asked to stop while still connecting
        self._idle = threading.Event()  # the writer has nothing in hand
        self._writer = threading.Thread(target=self._write, name="central-writer", daemon=True)
        self._connack = threading.Event()
        self._refusal = ""
        self.subscribed = threading.Event()
        self.stopped = threading.Event()  # set when the consumer cannot go on (see `failed`) or was stopped
        self.failed = ""  # why the consumer stopped on its own: the process must exit non-zero
        self.on_fatal: Callable[[str], None] | None = None
        # mid -> (what was published, its kind of count), until the broker answers (single dict operations:
        # atomic under the GIL)
        self._published: dict[int, tuple[str, str]] = {}
        central.on_alert(self.publish_alert)
        central.on_control(self.publish_control)

    def topics(self) -> list[str]:
        share = f"$share/{self.group}/" if self.group else ""
        return [f"{share}{TOPIC_ROOT}/+/+/+", f"{share}{POS_TOPIC_ROOT}/+/+"]

    # -- connection -----------------------------------------------------------------------------------------

    def start(self, connect_timeout: float = 30.0, session_expiry_s: int = SESSION_EXPIRY_S) -> None:
        """Connect (retrying while the broker is unreachable), resume or create the session, subscribe; returns once
        the broker confirmed the subscription (from then on every event published is this consumer's).
        Raises ShelfWatchError for what no retry fixes: a refused password, an untrusted certificate; anything
        else is retried (a line every `connect_timeout` seconds says it is still waiting)."""
        self._writer.start()
        where = f"{self.broker.host}:{self.broker.port}"
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                self.client.connect(self.broker.host, self.broker.port, clean_start=False,
                                    properties=session(session_expiry_s))  # fmt: skip
                break
            except ssl.SSLCertVerificationError as exc:
                raise ShelfWatchError(f"the broker at {where}: untrusted certificate ({exc.verify_message})") from None
            except socket.gaierror as exc:
                raise ShelfWatchError(f"the broker at {where}: unknown host ({exc.strerror})") from None
            except (OSError, ssl.SSLError) as exc:  # refused, unreachable, timed out: it may be starting up
                delay = backoff.next()
                print(f"central: the broker at {where} is not reachable ({exc}); retrying in {delay:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
                if self._interrupted.wait(delay):
                    raise Interrupted("stopped before the broker was reached") from None
        self.client.loop_start()
        waited = 0.0
        while not self._connack.wait(0.2):  # paho retries transient refusals and dropped connections meanwhile
            if self._interrupted.is_set():
                self._halt()
                raise Interrupted("stopped before the broker accepted central")
            waited += 0.2
            if waited >= connect_timeout:
                print(f"central: no answer yet from the broker at {where}; still trying", file=sys.stderr, flush=True)
                waited = 0.0
        if self._refusal:
            self._halt()
            raise ShelfWatchError(self._refusal)
        # Consuming starts at the broker's SUBACK: until then a new session has no subscription, and what a box
        # publishes meanwhile is nobody's (found by a test publishing right after "consuming" on a busy machine).
        while not self.subscribed.wait(0.2):
            if self.failed:
                self._halt()
                raise ShelfWatchError(self.failed)
            if self._interrupted.is_set():
                self._halt()
                raise Interrupted("stopped before the broker confirmed central's subscription")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if reason_code.value in PERMANENT_REFUSALS:
                user = f" as {self.broker.username!r}" if self.broker.username else ""
                where = f"{self.broker.host}:{self.broker.port}"
                hint = " (check the user name and the password)" if reason_code.value in (0x86, 0x87) else ""
                self._refusal = f"the broker at {where} refused central{user}: {reason_code}{hint}"
                if self._connack.is_set():  # refused on a reconnect (a password changed): no retry helps
                    self._fatal(self._refusal)
                self._connack.set()
                client.disconnect()
                return
            print(f"central: the broker refused the connection for now ({reason_code}); retrying",
                  file=sys.stderr, flush=True)  # fmt: skip
            return  # transient (server busy, unavailable): paho reconnects
        # With a persistent session the broker still holds the subscription (and has queued for it); subscribing
        # again is harmless and covers a session the broker lost.
        client.subscribe([(t, 1) for t in self.topics()])
        self._connack.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [f"{t}: {rc}" for t, rc in zip(self.topics(), reason_codes, strict=False) if rc.is_failure]
        if refused:
            self._fatal(f"the broker refused central's subscription ({'; '.join(refused)})")
            return
        self.subscribed.set()

    def _fatal(self, reason: str) -> None:
        if self.failed:
            return
        self.failed = reason
        self.central.problem = reason
        print(f"central: error: {reason}", file=sys.stderr, flush=True)
        self.stopped.set()
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def _halt(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        self._writer.join(5)

    def interrupt(self) -> None:
        """Give up connecting (SIGTERM while the broker is unreachable); a connected consumer is unaffected."""
        self._interrupted.set()

    def stop(self, drain_s: float = 5.0) -> None:
        """Store (and acknowledge) what is in hand, then disconnect; the session stays, so the broker queues
        for this consumer until it is back. Anything unacknowledged is redelivered then."""
        self._closing.set()  # what arrives from now on stays unacknowledged: the broker redelivers it later
        deadline = time.monotonic() + drain_s
        while (not self._inbox.empty() or not self._idle.is_set()) and time.monotonic() < deadline:
            if not self._writer.is_alive():
                break
            time.sleep(0.02)
        self._halt()
        self.stopped.set()

    def leave(self, quiet_s: float = 2.0) -> None:
        """Retire this member of the group for good: unsubscribe (no new share comes to it), store what the
        broker had queued for it, then end the session so that it holds no share any more."""
        self.client.unsubscribe(self.topics())
        last = -1
        while True:  # drained once nothing has come in for quiet_s
            time.sleep(quiet_s)
            seen = sum(self.central.counts.values())
            if seen == last and self._inbox.empty() and self._idle.is_set():
                break
            last = seen
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        gone = threading.Event()
        self.client.on_disconnect = lambda *_: gone.set()
        self.client.disconnect(properties=props)
        # The DISCONNECT must reach the broker before the network loop stops, or the session lives on.
        if not gone.wait(10):
            self._fatal("the broker did not confirm the end of the session; run `central leave` again")
        self.client.loop_stop()
        self._stop.set()
        self._writer.join(5)
        self.stopped.set()

    # -- messages in ----------------------------------------------------------------------------------------

    def _on_message(self, client, userdata, msg) -> None:
        if self._closing.is_set():
            return
        self._idle.clear()
        self._inbox.put(msg)

    def _write(self) -> None:
        try:
            self._write_loop()
        except BaseException as exc:  # whatever stopped the writer must stop the process
            self._fatal(f"the writer stopped ({_one_line(exc)})")

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._inbox.get(timeout=0.2)]
            except queue.Empty:
                self._idle.set()
                continue
            deadline = time.monotonic() + BATCH_WAIT_S
            while len(batch) < BATCH and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._inbox.get(timeout=left))
                except queue.Empty:
                    break
            if not self._commit(batch):
                return
            for m in batch:  # stored: now the broker may forget them
                self.client.ack(m.mid, m.qos)
            if self._inbox.empty():
                self._idle.set()

    def _commit(self, batch: list[mqtt.MQTTMessage]) -> bool:
        """Store the batch (False: stopped first). While the database is away the batch waits, unacknowledged.
        A batch the database refuses is split to find the message it refuses, which is dead-lettered with the
        reason: one bad message must neither stop the others nor come back forever. Only a database that
        refuses even the dead letter raises (the writer stops: acknowledging would lose the message)."""
        try:
            return self._until_stored(lambda: self._store(batch))
        except Exception as exc:  # the content of the batch, not the database's availability
            if len(batch) > 1:
                return all(self._commit([m]) for m in batch)
            (m,) = batch
            reason = f"not storable: {_one_line(exc)}"
            return self._until_stored(lambda: self.central.dead_letter("mqtt", _topic(m), m.payload, reason))

    def _until_stored(self, write: Callable[[], object]) -> bool:
        """Run `write`, retrying while the database is away (False: stopped first)."""
        while True:
            try:
                write()
                self.central.database_back()
                return True
            except TRANSIENT_DB as exc:
                reason = str(exc).splitlines()[0][:150]
                self.central.database_waiting(reason)  # /health says so (503) until a batch is stored again
                print(f"central: database error, retrying in {RETRY_S:.0f} s ({reason})", file=sys.stderr, flush=True)
                if self._stop.wait(RETRY_S):
                    return False

    def _store(self, batch: list[mqtt.MQTTMessage]) -> None:
        topics = [_topic(m) for m in batch]
        events = [(t, m.payload) for t, m in zip(topics, batch, strict=True) if not t.startswith(POS_TOPIC_ROOT + "/")]
        if events:
            self.central.events(events)
        for t, m in zip(topics, batch, strict=True):
            if t.startswith(POS_TOPIC_ROOT + "/"):  # in order, each reconciles on its own
                self.central.pos_payload("mqtt", t, m.payload)

    # -- alerts out -----------------------------------------------------------------------------------------

    def publish_alert(self, alert: Alert) -> None:
        """Alerts are stored before they are published (GET /alerts has them either way); a publish the broker
        refuses (MQTT 5 PUBACK with a failure code: an ACL denies it) is logged and counted, not ignored."""
        where = f"{ALERT_TOPIC_ROOT}/{alert.store}/{alert.lane}"
        self._publish(where, alert_payload(alert), f"alert {alert.alert_id} on {where}", "alerts", retain=False)

    def publish_control(self, topic: str, payload: bytes) -> None:
        """Control messages are retained: the box finds the latest of each when it connects."""
        self._publish(topic, payload, f"control message on {topic}", "controls", retain=True)

    def _publish(self, topic: str, payload: bytes, what: str, counted: str, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._published[info.mid] = (what, counted)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:  # not connected: paho sends it on reconnect
            print(f"central: {what} waits for the broker ({mqtt.error_string(info.rc)})", file=sys.stderr, flush=True)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        what, counted = self._published.pop(mid, ("a message", "alerts"))
        if reason_code.is_failure:
            self.central.counts.add(f"{counted}_refused")
            print(f"central: error: the broker refused {what}: {reason_code}", file=sys.stderr, flush=True)
        else:
            self.central.counts.add(f"{counted}_published")
