"""End to end over a real Mosquitto: the edge agent watches a checkout lane on a synthetic video whose ledger
says a shopper took three items; the POS scans two; central raises an alert for each unit the box saw picked and the
POS did not scan (when the box counted right: exactly one, naming the missing SKU). How often the box counts right is
not this test's business: tests/edge/test_agent_run.py measures it on a seeded range of clips."""

import json
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from central import db
from central.consumer import Consumer
from central.service import Central
from tests.central.conftest import api
from tests.central.test_checkout_api import as_raised
from tests.conftest import shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample


def test_one_unscanned_item_one_alert(broker, tmp_path):
    # A video chosen for what its labels say happens in it: one shopper takes three items, two of one SKU and one of
    # another, and puts none back.
    video = sample(tmp_path, 900, seed=1000, index=6)
    ledger = json.loads(video.with_name(video.name.replace(".mp4", ".labels.json")).read_text())["ledger"]
    taken = Counter(e["sku"] for e in ledger if e["kind"] == "take")
    assert sum(taken.values()) == 3 and len(taken) == 2 and not [e for e in ledger if e["kind"] == "return"]
    (twice, _), (once, _) = taken.most_common()

    central = Central(db.connect(f"sqlite:///{tmp_path / 'central.db'}"))
    consumer = Consumer(central, f"mqtt://127.0.0.1:{broker.port}", client_id="central-e2e")
    consumer.start()
    assert consumer.subscribed.wait(10)
    pos = api(central)

    # The clip is the lane's 30 s while the basket was open, on the clip's own clock (--start-time): the POS messages
    # carry the times of that half minute.
    opened = datetime.now(timezone.utc)

    def send(kind: str, n: int, after_s: float = 0, **extra) -> dict:
        body = {"type": kind, "message_id": f"m{n}", "transaction_id": "t-1", "store": "s1", "lane": "lane-1",
                "ts": (opened + timedelta(seconds=after_s)).isoformat(), **extra}  # fmt: skip
        response = pos.post("/pos", json=body)
        assert response.status_code == 202, response.text
        return response.json()

    send("basket_open", 1)
    config = tmp_path / "lane-1.yaml"
    mqtt = f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}"
    config.write_text(f"store: s1\nbox: lane-1\ncamera: {{source: {video}}}\nbundle: {DEMO_BUNDLE}\n{mqtt}\n"
                      f"outbox: {{path: {tmp_path / 'o.sqlite'}}}\n")  # fmt: skip
    started = (opened + timedelta(seconds=1)).isoformat()
    jsonl = tmp_path / "events.jsonl"
    agent = subprocess.run(shelfwatch_command("edge", "run", "--config", config, "--start-time", started,
                                              "--events-jsonl", jsonl),
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert agent.returncode == 0, agent.stderr
    sent = [json.loads(line) for line in jsonl.read_text().splitlines()]
    picks, net = Counter(), Counter()  # what the box saw picked, and what it says left the shelf
    for e in sent:
        if e["kind"] in ("pick", "putback"):
            picks[e["sku"]] += e["quantity"] if e["kind"] == "pick" else 0
            net[e["sku"]] += e["quantity"] if e["kind"] == "pick" else -e["quantity"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with central.engine.connect() as conn:
            stored = Counter()
            for r in conn.execute(db.events.select().where(db.events.c.kind == "pick")):
                stored[r.sku] += r.quantity
            box = db.box_rows(conn)
        if stored == picks and box and box[0]["state"] == "stopped":
            break
        time.sleep(0.2)
    assert stored == picks  # every pick the box sent reached central, once
    scanned = Counter({twice: 1, once: 1})  # one of the two
    send("item", 2, 32, sku=twice)
    send("item", 3, 33, sku=once)
    send("payment", 4, 34, amount=7.5)
    alerts = send("basket_close", 5, 35)["alerts"]
    # One alert per unit the box saw leave the shelf and the POS did not scan, numbered per SKU.
    expected = sorted((sku, unit, "t-1") for sku, n in (net - scanned).items() for unit in range(1, n + 1))
    assert sorted((a["sku"], a["unit"], a["transaction_id"]) for a in alerts) == expected, (net, taken)
    if +net == taken:  # the box counted this clip right: exactly the unit the POS missed
        assert expected == [(twice, 1, "t-1")]
    assert 0 < alerts[0]["confidence"] <= 1
    assert as_raised(pos.get("/alerts").json()) == alerts
    consumer.stop()
