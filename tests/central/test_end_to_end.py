"""End to end over a real Mosquitto: the edge agent watches a checkout lane on a synthetic video whose ledger
says a shopper took three items; the POS scans two; central raises exactly one alert, naming the missing SKU."""

import json
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from central import db
from central.consumer import Consumer
from central.service import Central
from tests.central.conftest import api
from tests.conftest import shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample


def test_one_unscanned_item_one_alert(broker, tmp_path):
    # A held-out video in which one shopper takes three items: two of one SKU and one of another.
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
    agent = subprocess.run(shelfwatch_command("edge", "run", "--config", config, "--start-time", started),
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert agent.returncode == 0, agent.stderr
    deadline = datetime.now(timezone.utc) + timedelta(seconds=30)
    while datetime.now(timezone.utc) < deadline:
        with central.engine.connect() as conn:
            picks = Counter()
            for r in conn.execute(db.events.select().where(db.events.c.kind == "pick")):
                picks[r.sku] += r.quantity
            box = db.box_rows(conn)
        if sum(picks.values()) >= 3 and box and box[0]["state"] == "stopped":
            break
        time.sleep(0.2)
    assert picks == taken
    send("item", 2, 32, sku=twice)  # one of the two
    send("item", 3, 33, sku=once)
    send("payment", 4, 34, amount=7.5)
    alerts = send("basket_close", 5, 35)["alerts"]
    assert [(a["sku"], a["unit"], a["transaction_id"]) for a in alerts] == [(twice, 1, "t-1")]
    assert 0 < alerts[0]["confidence"] <= 1
    assert pos.get("/alerts").json() == alerts
    consumer.stop()
