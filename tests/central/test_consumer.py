"""The consumer on a real Mosquitto: two consumers share one subscription and split the load; every event
is stored exactly once; invalid payloads are dead-lettered; POS messages and alerts travel over MQTT too."""

import json
import time
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt

from central import db
from central.consumer import Consumer
from central.service import Central
from tests.central.events import box_events
from tests.conftest import Subscriber


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="boxes-sim")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def wait(predicate, timeout=60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)
    return predicate()


def stored(engine) -> int:
    with engine.connect() as conn:
        return db.count(conn, db.events)


def test_two_consumers_share_the_subscription_and_store_each_event_once(broker, db_url):
    url = f"mqtt://127.0.0.1:{broker.port}"
    first, second = Central(db.connect(db_url)), Central(db.connect(db_url))
    consumers = [Consumer(first, url, "central", client_id="c1"), Consumer(second, url, "central", client_id="c2")]
    for c in consumers:
        c.start()
        assert c.subscribed.wait(10)
    events = [e for box in range(6) for e in box_events("s1", f"box-{box}", 40)]
    pub = publisher(broker.port)
    for topic, payload in events:
        pub.publish(topic, payload, qos=1)
    for topic, payload in events[:30]:  # a box's replay after a reconnect: duplicates
        pub.publish(topic, payload, qos=1)
    pub.publish("shelfwatch/v1/s1/box-0/pick", b'{"kind": "pick"}', qos=1)
    assert wait(lambda: stored(first.engine) == len(events) and first.counts["dead"] + second.counts["dead"] == 1)
    assert wait(lambda: sum(c.counts["duplicate"] for c in (first, second)) == 30)
    # The broker split the work: both consumers stored some of the events.
    assert first.counts["stored"] > 20 and second.counts["stored"] > 20
    assert first.counts["stored"] + second.counts["stored"] == len(events)
    with first.engine.connect() as conn:
        assert all(db.open_gaps(conn, "s1", f"box-{b}") == [] for b in range(6))
        assert "Field required" in conn.execute(db.dead_letters.select()).first().reason
    for c in consumers:
        c.stop()
    pub.loop_stop()


def test_pos_over_mqtt_and_alerts_published(broker, tmp_path):
    url = f"mqtt://127.0.0.1:{broker.port}"
    central = Central(db.connect(f"sqlite:///{tmp_path / 'c.db'}"))
    consumer = Consumer(central, url, client_id="c1")
    consumer.start()
    assert consumer.subscribed.is_set()  # start returns once subscribed: what is published from now on is ours
    alerts = Subscriber(broker.port, topic="shelfwatch/alerts/v1/#", client_id="alert-listener")
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    pub = publisher(broker.port)
    for topic, payload in box_events("s1", "lane-2", 2, t0=t0 - timedelta(seconds=1)):  # an action, then a pick
        pub.publish(topic, payload, qos=1)
    assert wait(lambda: stored(central.engine) == 2)

    def send(kind: str, n: int, **extra) -> None:
        ts = t0 + timedelta(seconds=n * 10 if kind != "basket_open" else -60)
        body = {"type": kind, "message_id": f"m{n}", "transaction_id": "t9", "store": "s1", "lane": "lane-2"}
        body |= {"ts": ts.isoformat(), **extra}
        pub.publish("shelfwatch/pos/v1/s1/lane-2", json.dumps(body), qos=1)

    send("basket_open", 0)
    send("basket_close", 3)
    pub.publish("shelfwatch/pos/v1/s1/lane-2", b'{"type": "item"}', qos=1)
    assert alerts.wait_for(lambda: len(alerts.payloads()) == 1)
    (alert,) = [json.loads(p) for _, p, _ in alerts.messages]
    assert alert["sku"] == "sku02" and alert["transaction_id"] == "t9" and alert["lane"] == "lane-2"
    assert wait(lambda: central.counts["dead"] == 1)
    consumer.stop()
    alerts.close()
    pub.loop_stop()


def test_an_alert_the_broker_refuses_is_counted_and_logged(tmp_path, capsys):
    """Issue 17.8: over MQTT 5 a denied publish gets a PUBACK with a failure code; central used to ignore it."""
    from central.pos import BasketClose, BasketOpen
    from tests.conftest import Broker

    acl = tmp_path / "acl"
    acl.write_text("topic readwrite shelfwatch/v1/#\ntopic readwrite shelfwatch/pos/v1/#\n")  # no alerts topic
    broker = Broker(tmp_path / "broker", extra=f"acl_file {acl}\n")
    broker.start()
    central = Central(db.connect(f"sqlite:///{tmp_path / 'c.db'}"))
    consumer = Consumer(central, f"mqtt://127.0.0.1:{broker.port}", client_id="c-alerts")
    try:
        consumer.start()
        assert consumer.subscribed.wait(10)
        t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
        for topic, payload in box_events("s1", "lane-2", 2, t0=t0):  # an action, then a pick
            central.event(topic, payload)
        common = {"transaction_id": "t1", "store": "s1", "lane": "lane-2"}
        central.pos(BasketOpen(message_id="m1", ts=t0 - timedelta(minutes=1), **common))
        alerts, _ = central.pos(BasketClose(message_id="m2", ts=t0 + timedelta(minutes=1), **common))
        assert len(alerts) == 1
        assert wait(lambda: central.counts["alerts_refused"] == 1, 10)
        assert central.counts["alerts_published"] == 0
        assert "the broker refused alert s1/t1:sku02:1 on shelfwatch/alerts/v1/s1/lane-2: Not authorized" in (
            capsys.readouterr().err)  # fmt: skip
    finally:
        consumer.stop()
        broker.stop()


def test_a_writer_that_cannot_go_on_fails_health(tmp_path):
    """Issue 17.3: the writer thread used to die silently while /health said ok."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from central.api import create_app
    from tests.conftest import Broker

    broker = Broker(tmp_path / "broker")
    broker.start()
    url = f"sqlite:///{tmp_path / 'c.db'}"
    central = Central(db.connect(url))
    consumer = Consumer(central, f"mqtt://127.0.0.1:{broker.port}", client_id="c-health")
    api = TestClient(create_app(central))
    try:
        consumer.start()
        assert consumer.subscribed.wait(10)
        assert api.get("/health").json()["ok"] is True
        with central.engine.begin() as conn:
            for table in ("events", "dead_letters"):
                conn.execute(text(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                                  "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))  # fmt: skip
        pub = publisher(broker.port)
        pub.publish(*box_events("s1", "a", 1)[0], qos=1)
        assert consumer.stopped.wait(20)
        health = api.get("/health")
        assert health.status_code == 503 and "disk full" in health.json()["problem"]
        pub.loop_stop()
    finally:
        consumer.stop()
        broker.stop()


def test_health_fails_while_the_database_is_away_and_recovers(tmp_path):
    """Events wait unacknowledged while the database cannot take them, and /health says so (503) meanwhile."""
    import sqlite3

    from fastapi.testclient import TestClient

    from central.api import create_app
    from tests.conftest import Broker

    broker = Broker(tmp_path / "broker")
    broker.start()
    central = Central(db.connect(f"sqlite:///{tmp_path / 'c.db'}?timeout=0.5"))
    consumer = Consumer(central, f"mqtt://127.0.0.1:{broker.port}", client_id="c-away")
    api = TestClient(create_app(central))
    blocker = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    try:
        consumer.start()
        assert consumer.subscribed.wait(10)
        blocker.execute("BEGIN EXCLUSIVE")  # the database is away (locked) for the writer
        pub = publisher(broker.port)
        for topic, payload in box_events("s1", "a", 5):
            pub.publish(topic, payload, qos=1)
        assert wait(lambda: api.get("/health").status_code == 503, 20)
        assert "database unavailable, retrying" in api.get("/health").json()["problem"]
        blocker.execute("ROLLBACK")
        assert wait(lambda: stored(central.engine) == 5, 20)
        assert api.get("/health").status_code == 200
        pub.loop_stop()
    finally:
        blocker.close()
        consumer.stop()
        broker.stop()
