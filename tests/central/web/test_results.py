"""An analysis's downloads from the events the agent wrote."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from central.web.results import events_csv
from edge.events import BasketEvent, PickEvent, encode

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def test_events_csv_keeps_a_formula_from_a_box_config_as_text(tmp_path):
    """Issue 21.5: a SKU or zone a spreadsheet would run (a box config's catalogue can name one) gets a ' before it;
    numbers stay numbers, a negative one too."""
    common = {"seq": 1, "ts": NOW, "store": "s1", "box": "b1"}
    events = [
        PickEvent(event_id="evt-00001", **common, kind="pick", sku="=HYPERLINK(\"http://evil.example\",\"x\")",
                  frame=3, confidence=0.9, zone="@SUM(1+1)"),
        PickEvent(event_id="evt-00002", **{**common, "seq": 2}, kind="putback", sku="-1+1", frame=9,
                  confidence=0.8, zone="+shelf"),
        BasketEvent(event_id="evt-00003", **{**common, "seq": 3}, shopper=1, items={"cola": -1}, reason="left",
                    confidence=0.8),
    ]  # fmt: skip
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(b"\n".join(encode(e) for e in events) + b"\n")
    rows = list(csv.DictReader(io.StringIO(events_csv(jsonl))))
    assert [(r["sku"], r["zone"]) for r in rows] == [("'=HYPERLINK(\"http://evil.example\",\"x\")", "'@SUM(1+1)"),
                                                     ("'-1+1", "'+shelf"), ("", "")]  # fmt: skip
    assert rows[2]["items"] == '{"cola": -1}' and rows[0]["frame"] == "3" and rows[1]["confidence"] == "0.8"
