"""What the dashboard shows, from central's tables: a principal limited to one store sees only that store's
boxes and events; a box's open seq gaps are counted with the events they miss."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

from central.db import connect
from central.service import Central
from central.web import dashboard
from central.web.auth import stores_of
from edge.events import ActionEvent, StatusEvent, encode, topic

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def status(store: str, box: str, seq: int) -> tuple[str, bytes]:
    e = StatusEvent(event_id=f"st-{store}-{box}-{seq}", seq=seq, ts=NOW, store=store, box=box, state="running",
                    fps=12.5, outbox_depth=3, dropped_frames=1, bundle_id="b" * 16)  # fmt: skip
    return topic(store, box, "status"), encode(e)


def action(store: str, box: str, seq: int) -> tuple[str, bytes]:
    e = ActionEvent(event_id=f"ac-{store}-{box}-{seq}", seq=seq, ts=NOW, store=store, box=box,
                    action="reach_to_shelf", start=0, end=10, start_ts=NOW, end_ts=NOW, confidence=0.9)  # fmt: skip
    return topic(store, box, "action"), encode(e)


def test_one_store_sees_its_own_boxes_and_events(tmp_path):
    central = Central(connect(f"sqlite:///{tmp_path / 'c.db'}"))
    central.events([status("s1", "lane-1", 0), action("s1", "lane-1", 1), action("s1", "lane-1", 5),
                    status("s2", "lane-9", 0), action("s2", "lane-9", 1)])  # fmt: skip
    staff = SimpleNamespace(store="s1")
    assert stores_of(staff) == {"s1"} and stores_of(None) is None
    assert stores_of(SimpleNamespace(stores=["s1", "s2"])) == {"s1", "s2"}
    (box,) = dashboard.boxes(central.engine, stores_of(staff))
    assert (box["store"], box["box"], box["state"], box["fps"], box["outbox_depth"]) == ("s1", "lane-1", "running",
                                                                                        12.5, 3)  # fmt: skip
    assert (box["dropped_frames"], box["gaps"], box["missing"], box["bundle_id"]) == (1, 1, 3, "b" * 16)
    assert {e["store"] for e in dashboard.feed(central.engine, {"s1"})} == {"s1"}
    assert len(dashboard.feed(central.engine, None)) == 3
    assert list(dashboard.shrink(central.engine, {"s2"})) == ["s2"]
    central.engine.dispose()
