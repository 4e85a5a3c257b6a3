"""Clips of unsure moments through the real processes: a provisioned box keeps clips, an agent on a paced stream (a
file played at its frame rate) keeps the seconds around the action it was unsure of, within its budget, and uploads
it with the event's id; in central's review queue it ranks above a clip of a sure moment."""

from __future__ import annotations

import cv2
import pytest
import yaml

from tests.central.test_channel import LEFT, STORE, Channel
from tests.central.test_cli import wait
from tests.edge.test_agent_delivery import sample

pytestmark = pytest.mark.long  # provisioning, a broker, central and an agent on a paced ten-second stream

CLIPS = {"keep": True, "before_s": 2, "after_s": 1, "review_confidence": 0.85, "max_per_hour": 4, "max_mb": 20}


@pytest.fixture
def channel(tmp_path):
    c = Channel(tmp_path, web=True)
    yield c
    c.close()


def test_an_unsure_moment_is_kept_uploaded_and_ranked_above_a_sure_one(channel, tmp_path):
    c = channel
    config = c.out / "boxes" / LEFT / "config.yaml"
    data = yaml.safe_load(config.read_text())
    assert data["clips"]["keep"] is False  # provisioned boxes keep no footage unless the store says so
    config.write_text(yaml.safe_dump({**data, "clips": {**data["clips"], **CLIPS}}))
    video = sample(tmp_path, 300)
    agent = c.agent(LEFT, video)  # --realtime: the frames come at the clip's pace, as from a camera
    assert agent.wait(120) == 0, (tmp_path / f"agent-{LEFT}.err").read_text()[-2000:]

    def listing() -> list[dict]:
        status, files = c.request("GET", f"/boxes/{STORE}/{LEFT}/files", c.staff)
        return [f for f in files if f["kind"] == "clip"] if status == 200 else []

    assert wait(lambda: listing() and len(c.events("action")) == 5, 60), (tmp_path / f"agent-{LEFT}.err").read_text()
    (clip,) = listing()
    actions = {e["event_id"]: e for e in c.events("action")}
    (covered,) = clip["covers"]
    assert actions[covered]["confidence"] < 0.85  # the action the box was unsure of, and only it
    assert all(e["confidence"] >= 0.85 for i, e in actions.items() if i != covered)
    on_box = list((tmp_path / f"state-{LEFT}" / "clips").glob("clip-*.mp4"))
    assert [p.name for p in on_box] == [clip["name"]] and clip["size"] <= 20_000_000
    # Its frames came from the box's memory: the seconds before the action (2 s) to one after it.
    cap = cv2.VideoCapture(str(on_box[0]))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    segment = actions[covered]["end"] - actions[covered]["start"]
    assert frames == segment + 3 * 30, (frames, segment)

    # A clip of a sure moment (one the box keeps at random), sent with the box's own token
    sure = next(i for i, e in actions.items() if e["confidence"] >= 0.9)
    status, _ = c.request("PUT", f"/boxes/{STORE}/{LEFT}/files/clip/clip-1-0-10.mp4?covers={sure}", c.box_token(LEFT),
                          on_box[0].read_bytes(), "application/octet-stream")  # fmt: skip
    assert status == 201
    status, queue = c.request("GET", "/web/api/review/queue", c.staff)
    assert status == 200, queue
    assert [(e["name"], e["worth"] > 0) for e in queue] == [(clip["name"], True), ("clip-1-0-10.mp4", False)]
    assert queue[0]["reasons"][0].startswith("low action confidence") and queue[0]["classes"] == [
        actions[covered]["action"]]  # fmt: skip
