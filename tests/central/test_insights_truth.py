"""Central's insights against the truth: the agent watches held-out synthetic videos (seed 1000, never tuned on),
central stores its events, and the funnel and traffic it answers are compared with what the videos' labels say
happened (the ledger of takes and returns, the action segments, who held which product): picks and put-backs per
SKU exact (on videos where item counting is exact), inspections and dwell within 10 %."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from central import insights
from central.insights import Scope
from edge.agent import RunOptions, run_agent
from edge.config import BoxConfig, Camera, OutboxConfig
from training.synth.generate import VideoSpec, write_video

DEMO_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "demo"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
# Held-out videos on which the box's item counts are exact: index 6 is the demo's (three takes, none put back), in
# index 1 a shopper takes one product, looks at it and puts it back, then takes another.
VIDEOS = (6, 1)


def truth(labels: dict) -> dict:
    """What happened, from the labels: per shopper who did something, the visit's dwell; per SKU, the units taken
    and put back and the shoppers who inspected it (the product in that shopper's hand during inspect_product)."""
    fps, frames = labels["fps"], labels["frames"]
    by_shopper: dict[int, list[dict]] = {}
    for s in labels["segments"]:
        by_shopper.setdefault(s["shopper"], []).append(s)
    dwell = [(max(s["end"] for s in segs) - 1 - min(s["start"] for s in segs)) / fps for segs in by_shopper.values()]
    inspected: dict[str, set[int]] = {}
    for s in labels["segments"]:
        if s["label"] != "inspect_product":
            continue
        held = Counter(p["sku"] for f in frames[s["start"] : s["end"]] for p in f["products"]
                       if p["place"] == "hand" and p.get("shopper") == s["shopper"])  # fmt: skip
        if held:
            inspected.setdefault(held.most_common(1)[0][0], set()).add(s["shopper"])
    picked = Counter(e["sku"] for e in labels["ledger"] if e["kind"] == "take")
    returned = Counter(e["sku"] for e in labels["ledger"] if e["kind"] == "return")
    net = Counter()
    for e in labels["ledger"]:
        net[(e["shopper"], e["sku"])] += 1 if e["kind"] == "take" else -1
    return {"shoppers": len(by_shopper), "dwell": dwell, "picked": picked, "put_back": returned,
            "inspected": Counter({sku: len(who) for sku, who in inspected.items()}),
            "kept": sum(n > 0 for n in net.values())}  # fmt: skip


@pytest.fixture(scope="module")
def watched(tmp_path_factory) -> list[tuple[str, list[tuple[str, bytes]], dict]]:
    """Each video rendered, watched by the agent (its clip starting at T0 + an hour per video), and its events as
    the box would publish them."""
    out = []
    for n, index in enumerate(VIDEOS):
        folder = tmp_path_factory.mktemp(f"video{index}")
        labels_path, _ = write_video(VideoSpec(seed=1000, index=index, frames=900), folder)
        video = labels_path.with_name(labels_path.name.replace(".labels.json", ".mp4"))
        box = f"box-{index}"
        config = BoxConfig(store="store-1", box=box, camera=Camera(source=str(video)), bundle=DEMO_BUNDLE,
                           outbox=OutboxConfig(path=folder / "outbox.sqlite"), threads=1)  # fmt: skip
        jsonl = folder / "events.jsonl"
        run_agent(config, RunOptions(events_jsonl=jsonl, start_time=T0 + timedelta(hours=n)))
        events = [json.loads(line) for line in jsonl.read_text().splitlines()]
        messages = [(f"shelfwatch/v1/store-1/{box}/{e['kind']}", json.dumps(e).encode()) for e in events
                    if e["kind"] != "status"]  # fmt: skip
        out.append((box, messages, truth(json.loads(labels_path.read_text()))))
    return out


def test_centrals_funnel_and_traffic_match_what_the_videos_labels_say(central, watched):
    for _box, messages, _ in watched:
        assert set(central.events(messages)) == {"stored"}
    day = Scope(("store-1",), T0, T0 + timedelta(days=1), "total", ("store", "box"))
    with central.engine.connect() as conn:
        funnel = insights.funnel(conn, day)
        traffic = {r.box: r for r in insights.traffic(conn, day)}
        hourly = insights.traffic(conn, Scope(("store-1",), T0, T0 + timedelta(days=1), "hour", ()))
    assert [r.bucket for r in hourly] == [T0 + timedelta(hours=n) for n in range(len(VIDEOS))]  # the clips' clocks
    for box, _, true in watched:
        mine = [r for r in funnel if r.box == box]
        assert Counter({r.sku: r.picked_units for r in mine if r.picked_units}) == true["picked"], box
        assert Counter({r.sku: r.put_back_units for r in mine if r.put_back_units}) == true["put_back"], box
        inspected = Counter({r.sku: r.inspected for r in mine if r.inspected})
        for sku in set(inspected) | set(true["inspected"]):
            assert inspected[sku] == pytest.approx(true["inspected"][sku], rel=0.1), (box, sku)
        assert traffic[box].shoppers == true["shoppers"], box
        assert traffic[box].dwell_median_s == pytest.approx(statistics.median_low(true["dwell"]), rel=0.1), box
        assert sum(r.kept for r in mine) == true["kept"], box  # products a shopper took and did not put back


@pytest.fixture(autouse=True)
def _needs_the_demo_bundle():
    assert (DEMO_BUNDLE / "manifest.json").is_file(), "models/demo is committed; rebuild it with `make models`"
