"""The box's publisher against a real Mosquitto whose ACL denies some of its topics: MQTT 5 tells it so
(PUBACK reason 0x87), and a refused event stays in the outbox, is counted and logged, and is tried again after
a pause that grows, until the broker takes it."""

import re
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
    logged: list[tuple[float, int, str]] = []  # (when, refusals so far, what)
    publisher = Publisher(outbox, MqttConfig(host="127.0.0.1", port=broker.port), "box-under-test",
                          "shelfwatch/v1/s/allowed/status", b"offline",
                          log=lambda line: logged.append((time.monotonic(), publisher.refused, line)))  # fmt: skip
    publisher.start()
    try:
        assert wait(lambda: publisher.refused >= 3 and outbox.depth() == 3, timeout=60)
        assert [s.topic for s in outbox.pending()] == [DENIED] * 3  # the accepted ones are gone, the refused kept
        first = logged[0][2]
        assert "0x87" in first and "stays in the outbox" in first and "event 2 " in first
        # Stopping does not wait for what the broker refuses (the agent's flush on SIGTERM), nor loses it: flush gives
        # up on held events at once, far inside its timeout (waiting them out would take all of it).
        t0 = time.monotonic()
        assert publisher.flush(60) is False and time.monotonic() - t0 < 30 and outbox.depth() == 3
        # Retried after 1 s, then 2 s, then 4 s: each round of refusals is announced once, at its first refusal (the
        # 1st, 4th, 7th: three refused events a round, no retry in between), with a wait twice the last, and comes
        # no sooner than that wait (a busy machine only makes it later: a spin would come at once).
        assert wait(lambda: len(logged) >= 3, timeout=60), logged
        rounds = logged[:3]
        assert [refused for _, refused, _ in rounds] == [1, 4, 7], rounds
        waits = [float(re.search(r"next try in (\d+) s", line).group(1)) for _, _, line in rounds]
        assert waits == [1, 2, 4], rounds
        assert all(b[0] - a[0] >= wait_s - 0.05 for a, b, wait_s in zip(rounds, rounds[1:], waits, strict=False))
        assert outbox.depth() == 3
        # The broker's ACL is fixed (SIGHUP reloads it): the next try delivers them, nothing was lost.
        acl.write_text("topic write shelfwatch/v1/s/#\n")
        broker.proc.send_signal(signal.SIGHUP)
        assert wait(lambda: outbox.depth() == 0, timeout=60)
    finally:
        publisher.stop()
        outbox.close()
        broker.stop()
