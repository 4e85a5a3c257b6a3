"""The smaller things a store manager trips over (issue 26, item 7), in Chromium against `central run`: the login
page has no navigation and no "Log out", every page has a favicon, the funnel says what counts visits and what
counts units, the traffic chart is labelled in hours of the day, and at 390 px wide no page scrolls sideways."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta, timezone

from central.db import connect
from central.service import Central
from edge.events import VisitEvent, VisitProduct, encode, topic
from tests.central.web.conftest import central_with_pages


def no_sideways_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_login_favicon_funnel_labels_and_a_phones_width(broker, page, tmp_path):
    server = central_with_pages(tmp_path, broker.port)
    try:
        now = datetime.now(timezone.utc) - timedelta(minutes=2)
        central = Central(connect(f"sqlite:///{tmp_path / 'central.db'}"))
        visit = VisitEvent(event_id="visit-0001", seq=1, ts=now, store="s1", box="aisle-1", shopper=1, start_ts=now,
                           end_ts=now, dwell_s=12, zones=["shelf"], actions=4,
                           products=[VisitProduct(sku="sku00", reached=1, picked=2, outcome="kept")])  # fmt: skip
        central.events([(topic("s1", "aisle-1", "visit"), encode(visit))])
        central.engine.dispose()
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{server.url}/login?next=/dashboard")
        assert page.locator("header nav").count() == 0 and page.get_by_text("Log out").count() == 0
        assert no_sideways_scroll(page)
        icon = page.locator("link[rel=icon]").get_attribute("href")
        for path in (icon, "/favicon.ico"):
            answer = urllib.request.urlopen(f"{server.url}{path}", timeout=10)
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("image/svg+xml")
        page.fill("input[name=token]", server.tokens["s1"])
        page.click("button[type=submit]")
        page.wait_for_selector(".funnel-sku[data-sku=sku00]", timeout=20_000)
        assert page.get_by_text("Log out").count() == 1  # logged in: now there is something to log out of
        card = page.locator(".funnel-sku[data-sku=sku00]")
        assert card.locator(".bar-row:has-text('picked it') .bar-value").text_content() == "1"  # one visit...
        assert card.locator(".units").text_content().startswith("units: 2 picked, 0 put back")  # ...two cans
        labels = [t for t in page.locator("#traffic .column-label").all_text_contents() if t]
        assert len(labels) == 8 and all(len(t) == 5 and t.endswith(":00") and int(t[:2]) % 3 == 0 for t in labels)
        assert no_sideways_scroll(page)
        for box in page.locator("#traffic .column-label").all():  # legible: no two labels overlap
            assert box.evaluate("(e) => e.scrollWidth <= e.parentElement.clientWidth * 3 + 1")
        page.goto(f"{server.url}/analyse")
        assert no_sideways_scroll(page)
    finally:
        server.stop()
