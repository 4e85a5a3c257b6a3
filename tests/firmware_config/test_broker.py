"""The provisioned broker's rules, against Mosquitto run with the files `provision` wrote, over MQTT 5 (whose
acknowledgements say when the broker refuses): each role reaches exactly its topics, a box cannot take another
box's session, and what the broker acknowledged survives a kill -9 of the broker."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import saved_after as save_file_written

STORE = "example-store"
NOT_AUTHORIZED = 0x87


class V5:
    """An MQTT 5 client that records what the broker answers: PUBACK and SUBACK reason codes, messages."""

    def __init__(self, p: dict, user: str, client_id: str = "", *, will: str | None = None,
                 session_s: int = 0) -> None:  # fmt: skip
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{user}",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        ca = str(p["out"] / "broker" / "ca.crt")
        if user.startswith(f"{STORE}."):  # a box: its certificate is its identity
            certs = p["out"] / "boxes" / user.removeprefix(f"{STORE}.") / "certs"
            self.client.tls_set(ca_certs=ca, certfile=str(certs / "box.crt"), keyfile=str(certs / "box.key"))
            self.port = p["box_port"]
        else:
            self.client.tls_set(ca_certs=ca)
            self.client.username_pw_set(user, (p["out"] / "consumers" / f"{user}.password").read_text().strip())
            self.port = p["consumer_port"]
        if will:
            self.client.will_set(will, b"offline", qos=1, retain=False)
        self.session_s = session_s
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.connected, self.disconnected = threading.Event(), threading.Event()
        self.client.on_connect = lambda c, u, f, rc, props: self.connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda c, u, f, rc, props: self.disconnected.set()
        self.client.on_publish = lambda c, u, mid, rc, props: self.acks.__setitem__(mid, rc.value)
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.__setitem__(mid, [r.value for r in rcs])
        self.client.on_message = lambda c, u, msg: self.messages.append((msg.topic, msg.payload))

    def connect(self) -> V5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_s
        self.client.connect("127.0.0.1", self.port, clean_start=self.session_s == 0, properties=props)
        self.client.loop_start()
        assert self.connected.wait(10), "not connected"
        return self

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        """The PUBACK's reason code (0: accepted)."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        return self.acks[info.mid]

    def subscribe(self, topic: str) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while mid not in self.subacks and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.subacks[mid][0]

    def barrier(self, topic: str) -> None:
        """A QoS 1 publish of our own, acknowledged: the broker handles and answers packets in order (one thread), so
        whatever it was to deliver to us before it took this publish has reached us by the time its PUBACK has. With
        it, "nothing arrived" means nothing was sent, not that it was slow."""
        assert self.publish(topic, b"barrier") < 0x80

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


LEFT, RIGHT, POS_USER = f"{STORE}.aisle1-left", f"{STORE}.aisle1-right", f"pos-{STORE}"
EVENTS, POS, ALERTS = "shelfwatch/v1", "shelfwatch/pos/v1", "shelfwatch/alerts/v1"
CASES = [  # (user, "write" or "read", topic, allowed)
    (LEFT, "write", f"{EVENTS}/{STORE}/aisle1-left/pick", True),
    (LEFT, "write", f"{EVENTS}/{STORE}/aisle1-left/status", True),
    (LEFT, "write", f"{EVENTS}/{STORE}/aisle1-right/pick", False),  # another box's prefix
    (LEFT, "write", f"{EVENTS}/other-store/aisle1-left/pick", False),
    (LEFT, "write", f"{POS}/{STORE}/lane-1", False),  # a box cannot fake a checkout
    (LEFT, "write", f"{ALERTS}/{STORE}/lane-1", False),
    (LEFT, "read", f"{EVENTS}/{STORE}/aisle1-right/pick", False),  # nor read what the others publish
    (LEFT, "read", f"{POS}/{STORE}/lane-1", False),
    ("central", "read", f"{EVENTS}/{STORE}/aisle1-left/pick", True),
    ("central", "read", f"{POS}/{STORE}/lane-1", True),
    ("central", "write", f"{ALERTS}/{STORE}/lane-1", True),
    ("central", "write", f"{EVENTS}/{STORE}/aisle1-left/pick", False),  # central cannot forge a box's events
    ("central", "write", f"{POS}/{STORE}/lane-1", False),
    (POS_USER, "write", f"{POS}/{STORE}/lane-1", True),
    (POS_USER, "write", f"{POS}/other-store/lane-1", False),
    (POS_USER, "write", f"{POS}/{STORE}/lane-1/extra", False),
    (POS_USER, "write", f"{EVENTS}/{STORE}/aisle1-left/pick", False),
    (POS_USER, "write", f"{ALERTS}/{STORE}/lane-1", False),  # nor clear an alert
    (POS_USER, "read", f"{ALERTS}/{STORE}/lane-1", False),
    (POS_USER, "read", f"{EVENTS}/{STORE}/aisle1-left/pick", False),
]


def own_topic(user: str) -> str:
    """A topic `user` may write (for its barrier)."""
    if user == POS_USER:
        return f"{POS}/{STORE}/lane-1"
    if user == "central":
        return f"{ALERTS}/{STORE}/lane-1"
    return f"{EVENTS}/{STORE}/{user.removeprefix(STORE + '.')}/status"


def writer(topic: str) -> str:
    """Who may write `topic`: the box it names, the store's POS, or central (alerts)."""
    if topic.startswith(POS + "/"):
        return POS_USER
    if topic.startswith(ALERTS + "/"):
        return "central"
    return f"{STORE}.{topic.split('/')[3]}"


def test_each_role_reaches_exactly_its_topics(provisioned):
    """A write is refused with reason code 0x87. Mosquitto 2.0's ACL file grants every SUBACK and enforces read
    access when it delivers, so a read is checked by what arrives when the topic's rightful writer publishes."""
    clients: dict[str, V5] = {}

    def client(user: str) -> V5:
        return clients.get(user) or clients.setdefault(user, V5(provisioned, user).connect())

    got = []
    for n, (user, action, topic, allowed) in enumerate(CASES):
        if action == "write":
            code = client(user).publish(topic)
            # Accepted: a reason code below 0x80 (success, or 0x10 "no matching subscribers").
            got.append((user, action, topic, code < 0x80 if allowed else code == NOT_AUTHORIZED, hex(code)))
            continue
        reader = client(user)
        reader.subscribe(topic)
        payload = f"case {n}".encode()
        assert client(writer(topic)).publish(topic, payload) < 0x80
        if allowed:
            deadline = time.monotonic() + 30
            while (topic, payload) not in reader.messages and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            reader.barrier(own_topic(user))
        got.append((user, action, topic, ((topic, payload) in reader.messages) == allowed, "received"))
    for c in clients.values():
        c.close()
    assert [g for g in got if not g[3]] == []


def test_what_is_refused_never_reaches_central(provisioned):
    central = V5(provisioned, "central").connect()
    assert central.subscribe(f"{EVENTS}/#") == 1 and central.subscribe(f"{POS}/#") == 1
    box, pos = V5(provisioned, LEFT).connect(), V5(provisioned, POS_USER).connect()
    assert box.publish(f"{EVENTS}/{STORE}/aisle1-right/pick", b"forged") == NOT_AUTHORIZED
    assert pos.publish(f"{POS}/other-store/lane-1", b"forged") == NOT_AUTHORIZED
    assert box.publish(f"{EVENTS}/{STORE}/aisle1-left/pick", b"own") < 0x80
    assert pos.publish(f"{POS}/{STORE}/lane-1", b"scan") < 0x80
    deadline = time.monotonic() + 30
    while len(central.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    central.barrier(own_topic("central"))  # anything else on its way to central is here now
    assert sorted(central.messages) == [(f"{POS}/{STORE}/lane-1", b"scan"),
                                        (f"{EVENTS}/{STORE}/aisle1-left/pick", b"own")]  # fmt: skip
    for client in (central, box, pos):
        client.close()


@pytest.mark.parametrize("stolen_id", [LEFT, "shelfwatch-example-store-aisle1-left"])
def test_a_box_cannot_take_over_another_boxs_session(provisioned, stolen_id):
    """Box B connects with box A's client id (as the broker knows it, and as the agent sends it): A stays
    connected and its last will is not published."""
    watcher = V5(provisioned, "central").connect()
    assert watcher.subscribe(f"{EVENTS}/#") == 1
    will = f"{EVENTS}/{STORE}/aisle1-left/status"
    a = V5(provisioned, LEFT, "shelfwatch-example-store-aisle1-left", will=will).connect()
    b = V5(provisioned, RIGHT, stolen_id).connect()
    # B's CONNACK came after the broker decided about A; A's publish, acknowledged after that, says A is still on
    # (a knocked-off A gets no PUBACK), and the watcher's barrier that no will is on its way.
    assert a.publish(f"{EVENTS}/{STORE}/aisle1-left/pick") < 0x80 > b.publish(f"{EVENTS}/{STORE}/aisle1-right/pick")
    watcher.barrier(own_topic("central"))
    assert not a.disconnected.is_set(), "box A was knocked off"
    assert not any(t == will for t, _ in watcher.messages), "box A's last will was published"
    # A password user cannot claim a box's client id either.
    pos = V5(provisioned, POS_USER, stolen_id).connect()
    assert a.publish(f"{EVENTS}/{STORE}/aisle1-left/pick") < 0x80
    watcher.barrier(own_topic("central"))
    assert not a.disconnected.is_set() and not any(t == will for t, _ in watcher.messages)
    for client in (a, b, pos, watcher):
        client.close()


def test_queued_messages_survive_a_broker_kill_9(provisioned):
    """Central's persistent session is away; the box's events are acknowledged and queued for it; the broker is
    killed (no chance to save on exit) and started again: central gets all of them."""
    central = V5(provisioned, "central", session_s=3600).connect()
    assert central.subscribe(f"$share/central/{EVENTS}/+/+/+") == 1
    central.close()
    box = V5(provisioned, LEFT).connect()
    for i in range(10):
        assert box.publish(f"{EVENTS}/{STORE}/aisle1-left/pick", f"event {i}".encode()) < 0x80
    box.close()
    saved_after(provisioned, time.time_ns())  # the broker's autosave has written the queue
    broker = provisioned["broker"]
    broker.stop(signal.SIGKILL)
    broker.start()
    again = V5(provisioned, "central", session_s=3600).connect()  # the same user: the same session
    deadline = time.monotonic() + 30
    while len(again.messages) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(p for _, p in again.messages) == sorted(f"event {i}".encode() for i in range(10))
    again.close()


def test_a_box_cannot_make_the_broker_hold_a_big_message(provisioned):
    """Issue 21.3: a box certificate published five 30 MB messages; the broker acknowledged and delivered them, grew
    by 170 MB and rewrote a 150 MB save file every second. Now a packet over 4 KB (two of 30 MB here) disconnects
    its sender before the broker holds it: its memory stays where it was, central gets nothing of it, and the save
    file stays small; the largest legitimate event (1 KB) still goes through."""
    from tests.central.hostile import MB, Meter

    central = V5(provisioned, "central").connect()
    assert central.subscribe(f"{EVENTS}/#") == 1
    meter = Meter(provisioned["broker"].proc.pid)
    peak = meter.peak_bytes()
    topic = f"{EVENTS}/{STORE}/aisle1-left/pick"
    for n in range(2):
        box = V5(provisioned, LEFT).connect()
        box.client.publish(topic, bytes([65 + n]) * (30 * MB), qos=1)
        assert box.disconnected.wait(30), "the broker took a 30 MB message"
        box.close()
    grown = meter.peak_bytes() - peak
    box = V5(provisioned, LEFT).connect()
    assert box.publish(topic, b"{" + b"e" * 1022 + b"}") < 0x80  # 1 KB: what an event may be
    deadline = time.monotonic() + 30
    while not central.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    central.barrier(own_topic("central"))  # anything else on its way to central is here now
    saved_after(provisioned, time.time_ns())
    box.close()
    central.close()
    assert [len(p) for _, p in central.messages] == [1024]
    assert grown < 1 * MB, grown
    assert saved_after(provisioned, 0).stat().st_size < 64 * 1024


def saved_after(provisioned: dict, since_ns: int) -> Path:
    return save_file_written(Path(provisioned["out"]) / "broker" / "data" / "mosquitto.db", since_ns)
