"""Issue 21.6: the dashboard's live stream checks its token again while it is open. Against `central run`: two of
store s1's staff watch the stream; one's token is revoked with `central token revoke`; that stream ends with a
`revoked` event, and the other goes on receiving what the boxes send afterwards."""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlparse

from central import auth
from central.db import connect
from tests.central.events import box_events
from tests.central.test_cli import publish
from tests.central.web.conftest import central_with_pages
from tests.conftest import Broker


class Stream:
    """An open /web/api/dashboard/stream: its events as (name, data), read by a thread until the stream ends."""

    def __init__(self, url: str, token: str) -> None:
        where = urlparse(url)
        self.conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
        self.conn.request("GET", "/web/api/dashboard/stream", headers={"Authorization": f"Bearer {token}"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.events: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        name, data = "message", ""
        try:
            while line := self.response.readline():
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    name = text[7:]
                elif text.startswith("data: "):
                    data = text[6:]
                elif not text and data:
                    with self.changed:
                        self.events.append((name, data))
                        self.changed.notify_all()
                    name, data = "message", ""
        except (OSError, ValueError, AttributeError):  # closed by the test (http.client drops its file)
            pass
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def wait(self, predicate, timeout: float = 30) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def close(self) -> None:
        self.conn.close()


def test_a_revoked_token_ends_its_open_stream_and_only_that_one(tmp_path, shelfwatch):
    broker = Broker(tmp_path / "broker")
    broker.start()
    central = central_with_pages(tmp_path, broker.port)
    db = f"sqlite:///{tmp_path / 'central.db'}"
    engine = connect(db)
    second = auth.create(engine, "s1", "second")[1]
    engine.dispose()
    revoked, kept = Stream(central.url, central.tokens["s1"]), Stream(central.url, second)
    try:
        for stream in (revoked, kept):
            assert stream.wait(lambda s: any(name == "snapshot" for name, _ in s.events))
        token_id = central.tokens["s1"].split("_")[1]
        assert shelfwatch("central", "token", "revoke", token_id, "--db", db).returncode == 0
        assert revoked.wait(lambda s: s.ended), "the revoked token's stream is still open"
        assert revoked.events[-1][0] == "revoked"
        # After it ended, the boxes send more: the other stream shows it (so the first would have too).
        publish(broker.port, box_events("s1", "after-revoke", 3))
        assert kept.wait(lambda s: any("after-revoke" in data for _, data in s.events)), kept.events[-1:]
        assert not kept.ended and not any("after-revoke" in data for _, data in revoked.events)
    finally:
        revoked.close()
        kept.close()
        central.stop()
        broker.stop()
