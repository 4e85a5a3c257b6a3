"""The dashboard's rollouts in a browser (issue 34): `shelfwatch central run` serving the pages, its database holding a
rollout that aborted on its canary's refusal and one still on its canary, as central's engine left them; staff see
each box's running bundle (and the bundle its gate refused), each rollout's progress, state and reason, and each
box's state, canary mark and reason."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from central.db import connect
from central.files import FileStore
from central.rollout import Params, Rollouts, bundle_target, start
from central.service import Central
from edge.events import ControlEvent, StatusEvent, encode, topic
from tests.central.web.conftest import central_with_pages, screenshot
from tests.edge.test_slots import demo_variant

S = "s1"


def report(central: Central, box: str, seq: int, event_type: type, **fields: object) -> None:
    event = event_type(event_id=uuid.uuid4().hex, seq=seq, ts=datetime.now(timezone.utc), store=S, box=box, **fields)
    central.event(topic(S, box, event.kind), encode(event))


def test_the_dashboard_shows_each_boxs_bundle_and_each_rollouts_progress_failures_and_reasons(broker, page, tmp_path):
    central = Central(connect(f"sqlite:///{tmp_path / 'central.db'}"))
    files = FileStore(central.engine, tmp_path / "data")
    for box in ("lane-1", "lane-2", "lane-3"):
        report(central, box, 0, StatusEvent, state="running", bundle_id="0ld0ld0ld0ld0ld0")
    bad = bundle_target(demo_variant(tmp_path / "bad", "2026-12-06T06:00:00+00:00"))
    good = bundle_target(demo_variant(tmp_path / "good", "2026-12-06T07:00:00+00:00"))
    aborted = start(central, files, bad, [(S, "lane-1"), (S, "lane-2")], Params())
    engine = Rollouts(central, files)
    engine.tick()  # lane-1, the canary, is sent the bad bundle; it refuses it
    why = f"desired: bundle {bad.target} refused by the health gate: reference clip: 32 of 32 frames labelled otherwise"
    report(central, "lane-1", 1, ControlEvent, name="desired", state="refused", detail=why)
    report(central, "lane-1", 1, StatusEvent, state="running", bundle_id="0ld0ld0ld0ld0ld0", switch="refused",
           switch_bundle=bad.target, problem=f"bundle {bad.target} refused: health gate")  # fmt: skip
    engine.tick()
    running = start(central, files, good, [(S, "lane-2"), (S, "lane-3")], Params(timeout_s=3600))
    engine.tick()  # lane-2, its canary, is sent the good one and has not reported yet
    central.engine.dispose()

    server = central_with_pages(tmp_path, broker.port)
    try:
        page.goto(f"{server.url}/dashboard")
        page.fill("input[name=token]", server.tokens[S])
        page.click("button[type=submit]")
        page.wait_for_selector(f".rollout[data-rollout='{aborted}'][data-state=aborted]", timeout=30_000)
        first = page.locator(f".rollout[data-rollout='{aborted}']")
        assert "1 of 1 boxes attempted failed (100 %), over the 5 % this rollout allows" in first.text_content()
        assert "0 of 2 running it, 1 failed · 1 cancelled" in first.locator(".progress").text_content()
        failed = first.locator("tr[data-box='s1/lane-1']")
        assert failed.get_attribute("data-state") == "failed" and "(canary)" in failed.text_content()
        assert "refused by the health gate: reference clip" in failed.text_content()
        second = page.locator(f".rollout[data-rollout='{running}']")
        assert second.get_attribute("data-state") == "running"
        assert "0 of 2 running it, 0 failed · 1 sent, 1 pending" in second.locator(".progress").text_content()
        assert second.locator("tr[data-box='s1/lane-2']").get_attribute("data-state") == "sent"
        cells = page.locator("#boxes tr[data-box='s1/lane-1'] td").all_text_contents()
        assert cells[7] == "none"  # every seq the box issued arrived
        assert cells[8] == f"0ld0ld0ld0ld (refused {bad.target[:12]})"  # what runs, and the bundle its gate refused
        screenshot(page, "web-dashboard-rollouts.png")
    finally:
        server.stop()
