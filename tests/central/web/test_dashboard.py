"""The store dashboard in a browser, with everything real: a Mosquitto, `shelfwatch central run` consuming
and serving the pages behind a token, and `shelfwatch edge run` on a box config. Staff log in, watch the box
come online and its events arrive live, see an unscanned item's alert with its evidence, and see the box go
offline within seconds of its agent being killed."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from datetime import datetime, timezone

from tests.central.web.conftest import Server, screenshot, web_config
from tests.conftest import free_port
from tests.edge.test_agent_delivery import agent, box_yaml, sample


def pos(url: str, token: str, kind: str, n: int, **extra: object) -> None:
    body = {"type": kind, "message_id": f"m{n}", "transaction_id": "t-1", "store": "store-1", "lane": "box-a",
            "ts": datetime.now(timezone.utc).isoformat(), **extra}  # fmt: skip
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{url}/pos", json.dumps(body).encode(), headers)
    assert urllib.request.urlopen(request, timeout=10).status == 202


def wait_healthy(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_dashboard_shows_boxes_events_alerts_live_and_a_killed_box_offline(broker, page, tmp_path, shelfwatch):
    # The store's staff log in with their store's API token, the one its checkout uses too.
    db = f"sqlite:///{tmp_path / 'central.db'}"
    created = shelfwatch("central", "token", "create", "--store", "store-1", "--name", "staff", "--db", db)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    central = Server("central", "run", "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--db", db, "--http",
                     f"127.0.0.1:{free_port()}", "--web-config", web_config(tmp_path),
                     pattern=r"pages at (http://\S+/)", cwd=tmp_path)  # fmt: skip
    box = None
    try:
        wait_healthy(central.url)
        # Only with the token: the page sends the browser to log in, and a wrong token is refused.
        page.goto(f"{central.url}/dashboard")
        assert "/login" in page.url
        page.fill("input[name=token]", "not-the-token-at-all")
        page.click("button[type=submit]")
        assert page.locator(".error").text_content() == "That token was not accepted."
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{central.url}/dashboard")
        page.wait_for_selector("#live.online")

        pos(central.url, token, "basket_open", 1)
        video = sample(tmp_path, 300, seed=1000, index=6)  # one shopper takes one can at 9.4 s
        config = box_yaml(tmp_path, broker.port, video)
        box = agent(config, "--realtime")
        row = "tr[data-box='store-1/box-a']"
        page.wait_for_selector(f"{row} .state[data-state=online]", timeout=30_000)
        # Live, no reload. The clip plays in real time, but a busy machine's agent falls behind it: wait for the event
        # as long as the box may take to get there, not as long as the clip lasts.
        page.wait_for_selector("#feed li[data-kind=pick]", timeout=180_000)
        pos(central.url, token, "basket_close", 2)  # nothing scanned: the can is unpaid
        alert = page.locator("#alerts li").first
        alert.wait_for(timeout=10_000)
        assert "unit 1 not scanned" in alert.text_content() and "transaction t-1" in alert.text_content()
        alert.locator("summary").click()
        assert "pick by shopper" in alert.locator("details").text_content()
        page.wait_for_selector("#shrink table tbody tr", timeout=20_000)
        # The clip ends: the agent says so on its way out.
        page.wait_for_selector(f"{row} .state[data-state=stopped]", timeout=180_000)
        assert box.wait(60) == 0
        cells = page.locator(f"{row} td").all_text_contents()
        assert cells[0:2] == ["store-1", "box-a"] and cells[5] == "0" and cells[8] != "–"
        # The camera's rate (the clip, paced in real time) and the share of the box's time left over, not its
        # processing speed: a paced box's processing fps says nothing about whether it keeps up.
        rate = re.fullmatch(r"([\d.]+) fps · (\d+) % spare", cells[4])
        assert rate and float(rate[1]) == 30 and 0 <= int(rate[2]) <= 100, cells[4]
        # The shopper's visit (sent as the clip ended) is in the behaviour charts, from central's /insights.
        page.reload()
        page.wait_for_selector("#insights[data-loaded='1'] .funnel-sku", timeout=20_000)
        bars = ".bar-row:has-text('picked') .bar-value"
        picked = {card.get_attribute("data-sku"): int(card.locator(bars).text_content())
                  for card in page.locator(".funnel-sku").all()}  # fmt: skip
        assert any(n >= 1 for n in picked.values()), picked
        assert page.locator("#traffic .column").count() == 24  # the last 24 hours, hour by hour
        assert sum(int(v or 0) for v in page.locator("#traffic .column-value").all_text_contents()) >= 1
        page.set_viewport_size({"width": 1280, "height": 1200})  # the whole page in view: no stitched capture
        screenshot(page, "web-dashboard.png")

        # Started again and killed: the broker's last will shows it offline within seconds (the broker sends it when
        # the socket closes; waiting for keepalive to run out would take 1.5 x 30 s, past this wait).
        box = agent(config, "--realtime")
        page.wait_for_selector(f"{row} .state[data-state=online]", timeout=30_000)
        box.send_signal(signal.SIGKILL)
        page.wait_for_selector(f"{row} .state[data-state=offline]", timeout=30_000)
    finally:
        if box is not None and box.poll() is None:
            box.kill()
        if box is not None:
            box.communicate()
        central.stop()
