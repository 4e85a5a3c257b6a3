"""The review queue and alert verdicts in central: box clips ranked by what the events they cover say (unfamiliar,
unsure action, unsure product, a disputed alert), a wrong alert entering the queue (with its clip when the box kept
one), filters, the random share, `/alerts` and its CSV with the verdict, and clips deleted after their retention."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest

from central import db, review_queue, verdicts
from central.retention import expire_clips
from central.review_queue import Entry, Thresholds, queue, stretch_of, with_random_share
from edge.events import ActionEvent, encode, topic
from tests.central.conftest import api
from tests.central.test_checkout_api import OPEN, pick, pos


def action(seq: int, confidence: float, familiar: bool | None = None, box: str = "lane-1") -> tuple[str, bytes]:
    ts = OPEN + timedelta(minutes=seq)
    event = ActionEvent(event_id=f"evt-{box}-{seq:04d}", seq=seq, ts=ts, store="s1", box=box, action="hand_in_shelf",
                        start=seq * 10, end=seq * 10 + 5, start_ts=ts, end_ts=ts, confidence=confidence,
                        familiar=familiar)  # fmt: skip
    return topic("s1", box, "action"), encode(event)


def kept(central, data: Path, box: str, name: str, covers: list[str], minutes_ago: float = 0) -> Path:
    """A clip a box sent, as `central.files` stores it (its row and its file)."""
    path = data / "files" / "s1" / box / "clip" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"an mp4")
    with central.engine.begin() as conn:
        conn.execute(db.files.insert().values(store="s1", box=box, kind="clip", name=name, direction="up", size=6,
                                              sha256="0" * 64, path=str(path.relative_to(data)), covers=covers,
                                              created=db.now() - timedelta(minutes=minutes_ago)))  # fmt: skip
    return path


def names(entries: list[Entry]) -> list[str | None]:
    return [e.name or e.alert_id for e in entries]


def test_clips_are_ranked_by_worth_and_a_wrong_alert_enters_the_queue_with_its_clip(central, tmp_path):
    t = Thresholds(review_confidence=0.85, product_confidence=0.6)
    for message in [action(1, 0.95), action(2, 0.7), action(3, 0.9, familiar=False), pick(4, "pick", "sku09", 4),
                    action(5, 0.95, box="aisle-2")]:  # fmt: skip
        central.event(*message)
    kept(central, tmp_path, "lane-1", "clip-1000-30-45.mp4", ["evt-lane-1-0001"], minutes_ago=3)  # sure: drawn
    kept(central, tmp_path, "lane-1", "clip-2000-30-45.mp4", ["evt-lane-1-0002"], minutes_ago=2)
    kept(central, tmp_path, "lane-1", "clip-3000-30-45.mp4", ["evt-lane-1-0003"], minutes_ago=1)
    kept(central, tmp_path, "aisle-2", "clip-4000-30-45.mp4", ["evt-aisle-2-0005"])
    ranked = queue(central.engine, {"s1"}, t, share=0.0)
    assert names(ranked) == ["clip-3000-30-45.mp4", "clip-2000-30-45.mp4", "clip-4000-30-45.mp4",
                             "clip-1000-30-45.mp4"]  # fmt: skip
    assert ranked[0].reasons == ["unfamiliar"] and ranked[1].reasons == ["low action confidence (0.70)"]
    assert ranked[2].worth == ranked[3].worth == 0  # sure ones: the newer first
    assert ranked[0].stretch == (30, 45) == stretch_of("clip-3000-30-45.mp4") and ranked[0].state == "new"
    assert names(queue(central.engine, {"s1"}, t, 0.0, box="aisle-2")) == ["clip-4000-30-45.mp4"]
    assert queue(central.engine, {"s1"}, t, 0.0, classes="pick") == []
    assert len(queue(central.engine, {"s1"}, t, 0.0, state="new")) == 4
    assert queue(central.engine, {"s1"}, t, 0.0, state="verified") == []
    assert queue(central.engine, {"s2"}, t, 0.0) == []  # another store's staff see none of it

    # The pick is not scanned: an alert; a manager says it is wrong, and it enters the queue above every clip.
    client = api(central)
    assert pos(client, "basket_open", 1, 0).status_code == 202
    alert_id = pos(client, "basket_close", 2, 8).json()["alerts"][0]["alert_id"]
    body = verdicts.VerdictBody(alert_id=alert_id, verdict="wrong", note="the shopper put it back behind the cans")
    with pytest.raises(verdicts.NotFound):  # another store's staff cannot judge it
        verdicts.judge(central.engine, body, "tok1", {"s2"})
    judged = verdicts.judge(central.engine, body, "tok1", {"s1"})
    assert (judged.verdict, judged.note, judged.verdict_by, judged.clip) == ("wrong", body.note, "tok1", None)
    top = queue(central.engine, {"s1"}, t, 0.0)[0]
    assert (top.kind, top.alert_id, top.reasons) == ("alert", alert_id, ["disputed alert", "no clip kept"])
    # Once the box's clip of that pick is there, the alert's entry is that clip, and the alert carries it.
    kept(central, tmp_path, "lane-1", "clip-5000-20-35.mp4", ["evt-lane-1-0004"])
    top = queue(central.engine, {"s1"}, t, 0.0)[0]
    assert (top.kind, top.name, top.alert_id) == ("clip", "clip-5000-20-35.mp4", alert_id)
    assert top.reasons == ["disputed alert"] and top.classes == ["pick"]
    assert sum(e.kind == "alert" for e in queue(central.engine, {"s1"}, t, 0.0)) == 0

    # /alerts and its CSV carry the verdict and the clip; the counts the dashboard shows
    served = client.get("/alerts", params={"store": "s1"}).json()
    assert [(a["verdict"], a["note"], a["clip"]) for a in served] == [("wrong", body.note,
                                                                        "lane-1/clip-5000-20-35.mp4")]  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(client.get("/alerts", params={"store": "s1", "format": "csv"}).text)))
    assert [(r["alert_id"], r["verdict"], r["note"], r["verdict_by"], r["clip"]) for r in rows] == [
        (alert_id, "wrong", body.note, "tok1", "lane-1/clip-5000-20-35.mp4")]  # fmt: skip
    assert client.get("/alerts", params={"verdict": "open"}).json() == []
    with central.engine.connect() as conn:
        assert verdicts.counts(conn, {"s1"}) == {"open": 0, "confirmed": 0, "wrong": 1}
    verdicts.judge(central.engine, verdicts.VerdictBody(alert_id=alert_id, verdict="open"), "tok1", None)
    assert client.get("/alerts", params={"verdict": "open"}).json()[0]["note"] is None  # taken back


def test_a_share_of_the_places_goes_to_entries_drawn_at_random_the_same_all_day():
    entries = [Entry(kind="clip", store="s1", box="b", name=f"clip-{i}-0-1.mp4", worth=10 - i, reasons=[], classes=[],
                     state="new", created=db.now(), covers=[]) for i in range(12)]  # fmt: skip
    assert with_random_share(entries, 0.0, "2026-12-06") == entries
    drawn = with_random_share(entries, 0.2, "2026-12-06")
    assert sorted(names(drawn)) == sorted(names(entries)) and [e.drawn for e in drawn].count(True) == 2
    assert drawn[4].drawn and drawn[9].drawn  # every fifth place
    assert names(with_random_share(entries, 0.2, "2026-12-06")) == names(drawn)  # a reload shows the same queue


def test_retention_deletes_a_box_clip_and_its_analysis_after_its_days(central, tmp_path):
    old = kept(central, tmp_path, "lane-1", "clip-1-0-1.mp4", [], minutes_ago=31 * 24 * 60)
    new = kept(central, tmp_path, "lane-1", "clip-2-0-1.mp4", [], minutes_ago=29 * 24 * 60)
    with central.engine.begin() as conn:
        conn.execute(db.files.update().where(db.files.c.name == "clip-1-0-1.mp4").values(analysis="a1b2c3d4e5f60718"))
    forgotten: list[str] = []
    assert expire_clips(central.engine, tmp_path, 30, forget_analysis=forgotten.append) == ["s1/lane-1/clip-1-0-1.mp4"]
    assert not old.exists() and new.exists() and forgotten == ["a1b2c3d4e5f60718"]
    assert names(queue(central.engine, None, Thresholds(), 0.0)) == ["clip-2-0-1.mp4"]
    assert review_queue.CLIP_NAME.match("clip-2-0-1.mp4")


def test_a_clip_of_an_unfamiliar_stretch_ranks_as_unfamiliar_with_no_event(central, tmp_path):
    kept(central, tmp_path, "lane-1", "clip-1000-30-31-unfamiliar.mp4", [])
    kept(central, tmp_path, "lane-1", "clip-2000-30-45.mp4", [])
    ranked = queue(central.engine, None, Thresholds(), 0.0)
    assert [(e.name, e.reasons, e.stretch) for e in ranked] == [
        ("clip-1000-30-31-unfamiliar.mp4", ["unfamiliar"], (30, 31)),
        ("clip-2000-30-45.mp4", [], (30, 45))]  # fmt: skip
