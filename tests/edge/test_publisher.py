"""The box's publisher against a real Mosquitto whose ACL denies some of its topics: MQTT 5 tells it so
(PUBACK reason 0x87), and a refused event stays in the outbox, is counted and logged, and is tried again after
a pause that grows, until the broker takes it."""

import signal
import time

from edge.config import MqttConfig
from edge.outbox import Outbox
from edge.publisher import Publisher
from tests.conftest import Broker

ALLOWED, DENIED = "shelfwatch/v1/s/allowed/pick", "shelfwatch/v1/s/denied/pick"


def wait(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_a_refused_event_stays_in_the_outbox_and_is_retried_with_backoff(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic write shelfwatch/v1/s/allowed/#\n")  # anonymous clients: this prefix only
    broker = Broker(tmp_path / "broker", extra=f"acl_file {acl}\n")
    broker.start()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    for i in range(6):
        outbox.add(DENIED if i % 2 else ALLOWED, lambda seq, event_id: b'{"n": %d}' % seq)
    logged: list[str] = []
    publisher = Publisher(outbox, MqttConfig(host="127.0.0.1", port=broker.port), "box-under-test",
                          "shelfwatch/v1/s/allowed/status", b"offline", log=logged.append)  # fmt: skip
    started = time.monotonic()
    publisher.start()
    try:
        assert wait(lambda: publisher.refused >= 3 and outbox.depth() == 3)
        assert [s.topic for s in outbox.pending()] == [DENIED] * 3  # the accepted ones are gone, the refused kept
        assert "0x87" in logged[0] and "stays in the outbox" in logged[0] and "event 2 " in logged[0]
        # Stopping does not wait for what the broker refuses (the agent's flush on SIGTERM), nor loses it.
        t0 = time.monotonic()
        assert publisher.flush(10) is False and time.monotonic() - t0 < 1 and outbox.depth() == 3
        # Retried after 1 s, then 2 s, then 4 s: a few tries, not a spin.
        time.sleep(max(0.0, started + 4.5 - time.monotonic()))
        assert 6 <= publisher.refused <= 9 and 2 <= len(logged) <= 3, (publisher.refused, logged)
        assert outbox.depth() == 3
        # The broker's ACL is fixed (SIGHUP reloads it): the next try delivers them, nothing was lost.
        acl.write_text("topic write shelfwatch/v1/s/#\n")
        broker.proc.send_signal(signal.SIGHUP)
        assert wait(lambda: outbox.depth() == 0, timeout=15)
    finally:
        publisher.stop()
        outbox.close()
        broker.stop()
