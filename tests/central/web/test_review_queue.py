"""Alert verdicts and the review queue in Chromium, behind central's login: a manager marks an alert wrong on the
dashboard, with a note; the dashboard counts it, `/alerts` and its CSV carry the verdict, `/review` lists the box's
clip of the alert's pick as a disputed alert, and the clip opens in the editor at the stretch the box was unsure of.
Another store's manager sees neither the clip nor the alert."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from central import auth
from central.db import connect
from edge.events import PickEvent, encode, topic
from edge.tokens import digest, mint
from tests.central.test_cli import publish, wait
from tests.central.web.conftest import screenshot
from tests.central.web.test_editor import Central, log_in
from training.synth.generate import VideoSpec, write_video

pytestmark = pytest.mark.long  # central with its pages and a broker, an analysis of the clip, Chromium

STORE, BOX = "store-1", "lane-1"


def box_token(db_url: str) -> str:
    """The box's own token, as provisioning mints it and `central token import` registers it."""
    token_id, secret, token = mint()
    engine = connect(db_url)
    auth.import_box_tokens(engine, json.dumps([{"token_id": token_id, "secret_sha256": digest(secret),
                                                "store": STORE, "box": BOX}]))  # fmt: skip
    engine.dispose()
    return token


def test_a_manager_marks_an_alert_wrong_and_its_clip_opens_in_the_editor(tmp_path, browser):
    central = Central(tmp_path)
    try:
        opened = datetime.now(timezone.utc) - timedelta(minutes=5)
        pick = PickEvent(event_id="evt-lane-1-0001", seq=1, ts=opened + timedelta(minutes=1), store=STORE, box=BOX,
                         kind="pick", sku="sku03", shopper=2, frame=45, confidence=0.55)  # fmt: skip
        publish(central.broker.port, [(topic(STORE, BOX, "pick"), encode(pick))])
        # The box kept a clip of that pick (its unsure stretch: frames 30 to 60) and sent it with its own token.
        labels = write_video(VideoSpec(seed=5, index=1, frames=90, width=640, height=480), tmp_path / "synth")[0]
        video = labels.with_name(labels.name.replace(".labels.json", ".mp4"))
        name = f"clip-{int(pick.ts.timestamp() * 1000) - 1500}-30-60.mp4"
        token = box_token(central.db)
        request = urllib.request.Request(f"{central.url}/boxes/{STORE}/{BOX}/files/clip/{name}?covers={pick.event_id}",
                                         data=video.read_bytes(), method="PUT",
                                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 201
        # The checkout scanned nothing: an alert
        assert wait(lambda: central.call("GET", "/alerts", STORE)[0] == 200, 10)
        for n, (kind, minutes) in enumerate([("basket_open", 0), ("basket_close", 4)]):
            status, answer = central.call("POST", "/pos", STORE, {
                "type": kind, "message_id": f"m{n}", "transaction_id": "t1", "store": STORE, "lane": BOX,
                "ts": (opened + timedelta(minutes=minutes)).isoformat()})  # fmt: skip
            assert status == 202, answer
        status, alerts = central.call("GET", "/alerts", STORE)
        assert [(a["sku"], a["verdict"], a["clip"]) for a in alerts] == [("sku03", "open", f"{BOX}/{name}")]

        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        log_in(page, central.url, central.tokens[STORE])
        page.goto(f"{central.url}/dashboard")
        item = page.locator("#alerts > li").first
        item.locator(".verdict[data-verdict='open']").wait_for()
        assert page.locator("#verdicts [data-verdict='open']").inner_text() == "1"
        item.locator(".verdict-note").fill("the shopper put it back on the lower shelf")
        item.locator("button[data-set='wrong']").click()
        page.locator("#alerts > li .verdict[data-verdict='wrong']").wait_for()
        assert page.locator("#verdicts [data-verdict='wrong']").inner_text() == "1"
        assert page.locator("#verdicts [data-verdict='open']").inner_text() == "0"
        screenshot(page, "web-alert-verdict.png")

        status, alerts = central.call("GET", "/alerts", STORE)
        assert [(a["verdict"], a["note"]) for a in alerts] == [("wrong", "the shopper put it back on the lower shelf")]
        status, text = central.call("GET", "/alerts?format=csv", STORE)
        (row,) = csv.DictReader(io.StringIO(text.decode()))
        assert (row["verdict"], row["note"], row["clip"]) == ("wrong", "the shopper put it back on the lower shelf",
                                                              f"{BOX}/{name}")  # fmt: skip
        # The wrong alert's clip heads the review queue; another store's manager sees nothing of it
        status, queue = central.call("GET", "/web/api/review/queue", STORE)
        assert [(e["name"], e["alert_id"]) for e in queue] == [(name, alerts[0]["alert_id"])]
        assert queue[0]["reasons"] == ["low product confidence (0.55)", "disputed alert"]
        assert central.call("GET", "/web/api/review/queue", "store-2") == (200, [])
        assert central.call("GET", "/alerts", "store-2") == (200, [])

        # The clip opens in the editor, at the stretch the box was unsure of
        page.locator("#alerts > li .open-clip button").first.click()
        page.wait_for_url(f"{central.url}/analyses/*", timeout=60_000)
        page.wait_for_selector("#editor:not([hidden]) #ed-state", timeout=180_000)
        page.wait_for_selector("#editor[data-frame='30']")
        assert page.url.endswith("#frame=30&to=60")
        analysis = page.url
        # ... and from the queue's page too: the same analysis, at the same stretch
        page.goto(f"{central.url}/review")
        row = page.locator("#queue tbody tr").first
        assert row.get_attribute("data-name") == name and "disputed alert" in row.inner_text()
        screenshot(page, "web-review-queue.png")
        row.locator("button.open").click()
        page.wait_for_selector("#editor:not([hidden]) #ed-state", timeout=60_000)
        assert page.url == analysis
        assert central.call("GET", "/web/api/review/queue", STORE)[1][0]["state"] == "predicted"
    finally:
        central.stop()
