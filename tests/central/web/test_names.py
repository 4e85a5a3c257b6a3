"""Names, not codes (issue 26): everything a person reads names products as the store's catalogue does (the
bundles and box configs central is shown), with the code beside it for staff: the dashboard's feed, alerts, shrink
table and funnel in a browser, the live stream's payloads, the alerts' JSON, and the CSV exports."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from datetime import datetime, timedelta, timezone

from central.db import connect
from central.pos import BasketClose, BasketOpen
from central.service import Central
from edge.events import PickEvent, VisitEvent, VisitProduct, encode, topic
from tests.central.web.conftest import central_with_pages

NAME = "Cola can"  # sku00 in the demo bundle's catalogue (models/ is the pages' bundles_dir)


def stored_events(db: str) -> None:
    """A pick of sku00 at lane-1 during a transaction that scanned nothing (an alert), and a visit that kept it."""
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    central = Central(connect(db))
    pick = PickEvent(event_id="pick-0001", seq=1, ts=now + timedelta(seconds=10), store="s1", box="lane-1", kind="pick",
                     sku="sku00", shopper=1, frame=300, confidence=0.9)  # fmt: skip
    visit = VisitEvent(event_id="visit-0001", seq=2, ts=now + timedelta(seconds=20), store="s1", box="lane-1",
                       shopper=1, start_ts=now, end_ts=now + timedelta(seconds=20), dwell_s=20, zones=["shelf"],
                       actions=3,
                       products=[VisitProduct(sku="sku00", reached=1, picked=1, outcome="kept")])  # fmt: skip
    assert central.events([(topic("s1", "lane-1", "pick"), encode(pick)),
                           (topic("s1", "lane-1", "visit"), encode(visit))]) == ["stored", "stored"]  # fmt: skip
    central.pos(BasketOpen(message_id="m1", transaction_id="t-1", store="s1", lane="lane-1", ts=now))
    alerts, _ = central.pos(BasketClose(message_id="m2", transaction_id="t-1", store="s1", lane="lane-1",
                                        ts=now + timedelta(seconds=30)))  # fmt: skip
    assert [a.sku for a in alerts] == ["sku00"]
    central.engine.dispose()


def get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(request, timeout=10).read()


def test_the_dashboard_its_stream_the_alerts_json_and_the_csv_exports_name_products(broker, page, tmp_path):
    server = central_with_pages(tmp_path, broker.port)
    try:
        stored_events(f"sqlite:///{tmp_path / 'central.db'}")
        token = server.tokens["s1"]
        page.goto(f"{server.url}/login?next=/dashboard")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_selector("#feed li[data-kind=pick]", timeout=20_000)
        assert f"pick: 1× {NAME} (sku00) by shopper 1" in page.locator("#feed li[data-kind=pick]").text_content()
        assert f"took or put back {NAME} (sku00)" in page.locator("#feed li[data-kind=visit]").text_content()
        assert page.locator("#alerts li strong").first.text_content() == f"{NAME} (sku00) unit 1 not scanned"
        page.wait_for_selector("#shrink table tbody tr", timeout=20_000)
        assert page.locator("#shrink tbody td").first.text_content() == f"{NAME} (sku00)"
        page.wait_for_selector("#insights[data-loaded='1'] .funnel-sku", timeout=20_000)
        assert page.locator(".funnel-sku h3").first.text_content() == f"{NAME} sku00"

        # The live stream's payload carries the names beside the codes.
        snapshot = page.evaluate("""() => new Promise((resolve) => {
            const s = new EventSource('/web/api/dashboard/stream');
            s.addEventListener('snapshot', (m) => { s.close(); resolve(JSON.parse(m.data)); });
        })""")  # fmt: skip
        [pick] = [e for e in snapshot["feed"] if e["kind"] == "pick"]
        [visit] = [e for e in snapshot["feed"] if e["kind"] == "visit"]
        assert (pick["sku"], pick["name"], visit["products"][0]["name"]) == ("sku00", NAME, NAME)
        assert (snapshot["alerts"][0]["name"], snapshot["shrink"]["s1"][0]["name"]) == (NAME, NAME)

        # The alerts' JSON and the CSV exports.
        [alert] = json.loads(get(f"{server.url}/alerts", token))
        assert (alert["sku"], alert["name"]) == ("sku00", NAME)
        [row] = json.loads(get(f"{server.url}/reports/shrink?store=s1", token))
        assert (row["sku"], row["name"]) == ("sku00", NAME)
        funnel = list(csv.DictReader(io.StringIO(get(f"{server.url}/insights/funnel?format=csv", token).decode())))
        assert [(r["sku"], r["name"], r["picked_units"]) for r in funnel] == [("sku00", NAME, "1")]
    finally:
        server.stop()
