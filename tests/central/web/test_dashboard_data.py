"""What the dashboard shows, from central's tables: a principal limited to one store sees only that store's
boxes and events; a box's open seq gaps are counted with the events they miss."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from central.db import connect
from central.service import Central
from central.web import dashboard
from central.web.auth import stores_of
from edge.events import ActionEvent, StatusEvent, encode, topic

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def status(store: str, box: str, seq: int) -> tuple[str, bytes]:
    e = StatusEvent(event_id=f"st-{store}-{box}-{seq}", seq=seq, ts=NOW, store=store, box=box, state="running",
                    fps=12.5, camera_fps=30.0, busy=0.4, outbox_depth=3, dropped_frames=1,
                    bundle_id="b" * 16)  # fmt: skip
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
    assert (box["camera_fps"], box["busy"]) == (30.0, 0.4)  # the camera's rate and the box's share of time used
    assert {e["store"] for e in dashboard.feed(central.engine, {"s1"})} == {"s1"}
    assert len(dashboard.feed(central.engine, None)) == 3
    assert list(dashboard.shrink(central.engine, {"s2"})) == ["s2"]
    central.engine.dispose()


def heartbeat(box: str, minutes: float, share: float | None) -> tuple[str, bytes]:
    ts = NOW + timedelta(minutes=minutes)
    e = StatusEvent(event_id=f"st-{box}-{minutes}", seq=0, ts=ts, store="s1", box=box, state="running",
                    unfamiliar_share=share)  # fmt: skip
    return topic("s1", box, "status"), encode(e)


def test_a_box_whose_footage_stayed_unfamiliar_for_ten_minutes_gets_the_warning(tmp_path):
    """Issue 25: central's share (20 % by default) and minutes (10): a heartbeat under the share, or one without it,
    ends the stretch; the warning names what to do."""
    central = Central(connect(f"sqlite:///{tmp_path / 'c.db'}"))
    warned = lambda: {b["box"]: b["unfamiliar_warning"] for b in dashboard.boxes(central.engine, None, 10.0)}  # noqa: E731
    central.events([heartbeat("aisle-1", 0, 0.35), heartbeat("aisle-2", 0, 0.35), heartbeat("aisle-3", 0, None)])
    central.events([heartbeat("aisle-1", 9.5, 0.9), heartbeat("aisle-2", 5, 0.1), heartbeat("aisle-3", 9.5, None)])
    assert warned() == {"aisle-1": None, "aisle-2": None, "aisle-3": None}  # 9.5 minutes is not yet 10
    central.events([heartbeat("aisle-1", 10, 0.2), heartbeat("aisle-2", 10, 0.5), heartbeat("aisle-3", 10, None)])
    assert warned() == {"aisle-1": dashboard.UNFAMILIAR_WARNING, "aisle-2": None, "aisle-3": None}
    assert dashboard.UNFAMILIAR_WARNING == ("this camera's footage is unlike the model's training: review clips to "
                                            "adapt it")  # fmt: skip
    (one,) = [b for b in dashboard.boxes(central.engine, None) if b["box"] == "aisle-1"]
    assert one["unfamiliar_share"] == 0.2 and one["unfamiliar_since"] == NOW.isoformat()
    central.events([heartbeat("aisle-1", 10.5, 0.05)])  # the camera was fixed (or the model adapted)
    assert warned()["aisle-1"] is None
    stricter = Central(central.engine, unfamiliar_share=0.5)
    stricter.events([heartbeat("aisle-2", 11, 0.4)])  # under a store's own share: no stretch
    assert warned()["aisle-2"] is None
    central.engine.dispose()


def test_the_dashboard_shows_each_rollout_with_only_the_viewers_boxes(tmp_path):
    """Issue 34: the latest rollouts, their progress by state and each box's state and reason; a store's staff see
    their store's boxes of a chain-wide rollout, and nothing of one that does not reach their store."""
    from central import rollout
    from central.files import FileStore
    from tests.edge.test_slots import demo_variant

    central = Central(connect(f"sqlite:///{tmp_path / 'c.db'}"))
    central.events([status("s1", "lane-1", 0), status("s2", "lane-9", 0)])
    files = FileStore(central.engine, tmp_path / "data")
    target = rollout.bundle_target(demo_variant(tmp_path / "new", "2026-12-06T05:00:00+00:00"))
    chain = rollout.start(central, files, target, [("s1", "lane-1"), ("s2", "lane-9")], rollout.Params())
    rollout.start(central, files, target, [("s2", "lane-8")], rollout.Params())
    rollout.Rollouts(central, files).tick()  # the canary: s1/lane-1, the first of the chain-wide rollout
    (seen,) = dashboard.rollouts(central.engine, {"s1"})
    assert (seen["rollout_id"], seen["state"], seen["total"], seen["target"]) == (chain, "running", 1, target.target)
    (box,) = seen["boxes"]
    assert (box["box"], box["state"], box["canary"]) == ("lane-1", "sent", True) and seen["counts"]["sent"] == 1
    assert [r["total"] for r in dashboard.rollouts(central.engine, None)] == [1, 2]  # the newest first
    (lane,) = dashboard.boxes(central.engine, {"s1"})
    assert lane["bundle_id"] == "b" * 16 and lane["staged_bundle"] is None and lane["switch"] is None
    central.engine.dispose()
