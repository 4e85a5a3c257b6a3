"""Central's insights against the truth: the agent watches synthetic clips from a seeded range no bundle was tuned
on, central stores its events, and the funnel and traffic it answers are compared with what the clips' labels say
happened (the ledger of takes and returns, the action segments, who held which product): picks and put-backs per
SKU exact, inspections and dwell within 10 %, on at least as many clips as measured (the box misses some)."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import datetime, timedelta

import pytest

from central import insights
from central.insights import Scope
from tests.clips import CLIP_CLOCK, STANDARD, outcomes

# Clips drawn from the standard range fixed up front (tests/clips.py), each a box of its own; the box is not right on
# all of them. On how many (of 20) each answer was right, and all of them at once, measured with the demo bundle on
# 6 December 2026 (issue 26, commit 43a75df: picks as familiar as the hand's visits, clip-end counting, actions
# credited where the shelf moved during them): picked 14, put back 19, kept 15, shoppers 19, inspected 13, dwell 18,
# all 8 (before it: 13, 18, 15, 14, 13, 13, 5). Each floor is one below, for one clip that another CPU's ONNX Runtime
# kernels may tip either way; a change that makes central or the box answer worse fails.
CLIPS = STANDARD
FLOORS = {"picked": 13, "put back": 18, "kept": 14, "shoppers": 18, "inspected": 12, "dwell": 17, "all": 7}


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


@pytest.mark.long
def test_centrals_funnel_and_traffic_match_what_the_videos_labels_say(central, seeded_clips):
    """The agent watched each clip (its first frame at CLIP_CLOCK); central stores what it sent, and its funnel and
    traffic per box are compared with the clip's labels."""
    answers = agreement(central, seeded_clips.watched(CLIPS), CLIP_CLOCK)
    with central.engine.connect() as conn:
        hourly = insights.traffic(conn, Scope(("store-1",), CLIP_CLOCK, CLIP_CLOCK + timedelta(days=1), "hour", ()))
    assert [r.bucket for r in hourly] == [CLIP_CLOCK]  # every visit on its clip's own clock, not on when it ran
    right = {key: sum(a[key] for _, a in answers) for key in FLOORS if key != "all"}
    right["all"] = sum(all(a.values()) for _, a in answers)
    rows = [(name, all(a.values()), "all right" if all(a.values()) else
             "wrong: " + ", ".join(k for k, ok in a.items() if not ok)) for name, a in answers]  # fmt: skip
    below = {k: f"{right[k]} < {floor}" for k, floor in FLOORS.items() if right[k] < floor}
    print(f"right on (of {len(rows)}): {right}\n{outcomes(rows)}")  # the record, with -s
    assert not below, f"right on fewer clips (of {len(rows)}) than measured: {below}\n{outcomes(rows)}"


def agreement(central, watched: list, clock: datetime) -> list[tuple[str, dict[str, bool]]]:
    """Each clip's events stored as a box of its own; per clip, which of central's answers for that box agree with
    its labels: picks, put-backs and kept products per SKU and the number of shoppers exact, inspections and dwell
    within 10 %."""
    boxes = {}
    for n, w in enumerate(watched):
        box = f"box-{n}"
        events = [e | {"store": "store-1", "box": box} for e in w.events if e["kind"] != "status"]
        messages = [(f"shelfwatch/v1/store-1/{box}/{e['kind']}", json.dumps(e).encode()) for e in events]
        assert set(central.events(messages)) <= {"stored"}, w.clip.name
        boxes[box] = (w.clip.name, truth(w.clip.labels))
    day = Scope(("store-1",), clock, clock + timedelta(days=1), "total", ("store", "box"))
    with central.engine.connect() as conn:
        funnel = insights.funnel(conn, day)
        traffic = {r.box: r for r in insights.traffic(conn, day)}
    rows = []
    for box, (name, true) in boxes.items():
        mine = [r for r in funnel if r.box == box]
        inspected = Counter({r.sku: r.inspected for r in mine if r.inspected})
        seen = traffic.get(box)
        answers = {
            "picked": Counter({r.sku: r.picked_units for r in mine if r.picked_units}) == true["picked"],
            "put back": Counter({r.sku: r.put_back_units for r in mine if r.put_back_units}) == true["put_back"],
            "kept": sum(r.kept for r in mine) == true["kept"],
            "shoppers": (seen.shoppers if seen else 0) == true["shoppers"],
            "inspected": all(inspected[k] == pytest.approx(true["inspected"][k], rel=0.1)
                             for k in set(inspected) | set(true["inspected"])),
            "dwell": (seen is None and not true["dwell"]) or (seen is not None and true["dwell"] != [] and
                      seen.dwell_median_s == pytest.approx(statistics.median_low(true["dwell"]), rel=0.1)),
        }  # fmt: skip
        rows.append((name, answers))
    return rows
