"""The event contract: versioned pydantic models, a published JSON Schema, payloads under 1 KB."""

import json
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from edge.classes import ACTION_CLASSES
from edge.events import (
    MAX_PAYLOAD_BYTES,
    ActionEvent,
    BasketEvent,
    PickEvent,
    StatusEvent,
    VisitEvent,
    VisitProduct,
    decode,
    encode,
    events_schema,
    topic,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
COMMON = {"event_id": "7d1e4c1a-5b7e-4f7e-9a63-0d2b1c9e4f10", "seq": 42, "ts": NOW, "store": "store-7", "box": "aisle3"}


def test_every_kind_round_trips_and_stays_small():
    events = [
        ActionEvent(
            **COMMON, action="reach_to_shelf", start=10, end=30, start_ts=NOW, end_ts=NOW, confidence=0.9, shopper=2
        ),
        PickEvent(**COMMON, kind="pick", sku="sku03", shopper=2, frame=31, confidence=0.8, zone="shelf"),
        PickEvent(**COMMON, kind="putback", sku="sku03", shopper=2, frame=90, confidence=0.8),
        BasketEvent(**COMMON, shopper=2, items={f"sku{i:02d}": i for i in range(30)}, reason="left", confidence=1),
        StatusEvent(**COMMON, state="running", fps=120.5, latency_ms=8.2, outbox_depth=3, bundle_id="abc"),
        ActionEvent(
            **COMMON,
            action="inspect_product",
            start=40,
            end=90,
            start_ts=NOW,
            end_ts=NOW,
            confidence=0.9,
            shopper=2,
            zone="shelf-left",
            sku="sku03",
            sku_confidence=0.71,
        ),
        VisitEvent(
            **COMMON,
            shopper=2,
            start_ts=NOW,
            end_ts=NOW,
            dwell_s=31.5,
            zones=["shelf-left", "shelf-right"],
            inspect_shelf_s=12.0,
            actions=14,
            products=[
                VisitProduct(
                    sku=f"sku{i:02d}",
                    zone="shelf-left",
                    reached=2,
                    inspected=1,
                    inspect_s=3.25,
                    picked=1,
                    put_back=1,
                    outcome="put_back",
                )
                for i in range(5)
            ],
        ),
    ]
    for event in events:
        payload = encode(event)
        assert len(payload) < MAX_PAYLOAD_BYTES
        assert decode(payload) == event


def test_a_payload_that_breaks_the_contract_is_rejected_with_the_reason():
    good = json.loads(encode(PickEvent(**COMMON, kind="pick", sku="sku03", frame=1, confidence=0.5)))
    for change, reason in [
        ({"unexpected": 1}, "Extra inputs are not permitted"),
        ({"kind": "teleport"}, "does not match any of the expected tags"),
        ({"seq": -1}, "greater than or equal to 0"),
        ({"store": "Store With Spaces"}, "should match pattern"),
        ({"confidence": 2}, "less than or equal to 1"),
    ]:
        with pytest.raises(ValidationError, match=reason):
            decode(json.dumps({**good, **change}))
    with pytest.raises(ValidationError):
        ActionEvent(**COMMON, action="dancing", start=0, end=1, start_ts=NOW, end_ts=NOW, confidence=0.5)


def test_the_published_schema_covers_every_kind():
    schema = events_schema()
    kinds = {v["properties"]["kind"].get("const") or tuple(v["properties"]["kind"]["enum"])
             for v in schema["$defs"].values() if "kind" in v.get("properties", {})}  # fmt: skip
    assert kinds == {"action", ("pick", "putback"), "basket", "visit", "upload", "control", "status"}
    assert schema["discriminator"]["propertyName"] == "kind"
    action = schema["$defs"]["ActionEvent"]
    assert action["additionalProperties"] is False
    assert tuple(action["properties"]["action"]["enum"]) == ACTION_CLASSES
    assert topic("store-7", "aisle3", "pick") == "shelfwatch/v1/store-7/aisle3/pick"


def test_schema_command_prints_it(shelfwatch):
    result = shelfwatch("schema", "events")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "ShelfWatch box events"
    for what in ("manifest", "box-config"):
        assert "properties" in json.loads(shelfwatch("schema", what).stdout)


def test_every_field_is_bounded_so_that_it_fits_any_consumer():
    """Issue 17.11 and 17.3: a 1 MB basket, quantity 10^12, a year-9999 timestamp, seq 2^63 and the like were
    schema-valid; each is refused now, with the reason."""
    pick = json.loads(encode(PickEvent(**COMMON, kind="pick", sku="sku03", frame=1, confidence=0.5)))
    basket = json.loads(encode(BasketEvent(**COMMON, shopper=1, items={"sku03": 1}, reason="left", confidence=1)))
    for change, reason in [
        ({"seq": 2**63}, "less than or equal to 9007199254740991"),
        ({"frame": 2**53}, "less than or equal to 9007199254740991"),
        ({"quantity": 10**12}, "less than or equal to 1000"),
        ({"ts": "9999-12-31T00:00:00Z"}, "more than a day in the future"),
        ({"ts": "2026-11-25T12:00:00"}, "needs a UTC offset"),
        ({"ts": "0001-01-01T00:00:00+05:00"}, "out of range in UTC"),
        ({"sku": "a\u0000b"}, "should match pattern"),
        ({"sku": "x" * 65}, "at most 64 characters"),
        ({"event_id": "../../etc/passwd"}, "should match pattern"),
        ({"confidence": float("nan")}, "finite number"),
    ]:
        with pytest.raises(ValidationError, match=reason):
            decode(json.dumps({**pick, **change}))
    with pytest.raises(ValidationError, match="at most 64 items"):
        decode(json.dumps({**basket, "items": {f"s{i}": 1 for i in range(65)}}))
    with pytest.raises(ValueError, match="over the contract's 1024"):
        decode(json.dumps({**basket, "items": {f"sku{i:07d}": 1 for i in range(60_000)}}))  # about 1 MB
    schema = events_schema()["$defs"]
    assert schema["PickEvent"]["properties"]["quantity"]["maximum"] == 1000
    assert schema["BasketEvent"]["properties"]["items"]["maxProperties"] == 64
    # What a box really sends stays valid, right up to the bounds.
    decode(json.dumps({**pick, "quantity": 1000, "seq": 2**53 - 1, "ts": datetime.now(timezone.utc).isoformat()}))


def test_an_event_the_contract_cannot_carry_is_not_made_and_the_box_goes_on(tmp_path, capsys):
    from edge.emitter import Emitter
    from edge.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    emitter = Emitter("store-1", "box-a", outbox)
    too_many = {f"sku{i:03d}": 1 for i in range(200)}  # a basket of 200 SKUs: over the contract's bound
    assert emitter.emit("basket", shopper=1, items=too_many, reason="change", confidence=1.0) == b""
    assert "a basket event was not made, it breaks the event contract" in capsys.readouterr().err
    assert emitter.emit("basket", shopper=1, items={"sku001": 1}, reason="change", confidence=1.0)
    assert outbox.depth() == 1 and outbox.last_seq() == 1  # no seq was used up by the one not made
    assert emitter.counts == {"unsendable": 1, "basket": 1}
    outbox.close()


def test_the_fields_added_within_v1_are_optional_and_say_so():
    """An action event as boxes sent it before the zone and product fields still decodes, and encodes unchanged."""
    old = {**json.loads(encode(PickEvent(**COMMON, kind="pick", sku="x", frame=1, confidence=0.5))), "kind": "action"}
    del old["sku"], old["frame"], old["quantity"]
    old |= {"action": "reach_to_shelf", "start": 1, "end": 5, "start_ts": old["ts"], "end_ts": old["ts"]}
    event = decode(json.dumps(old))
    assert (event.zone, event.sku, event.sku_confidence) == (None, None, None)
    assert json.loads(encode(event)) == old  # nothing new on the wire unless the box knows it
    action = events_schema()["$defs"]["ActionEvent"]
    for name in ("zone", "sku", "sku_confidence"):
        assert name not in action["required"]
        assert action["properties"][name]["description"].startswith("Optional (added in v1)")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        ActionEvent(**COMMON, action="reach_to_shelf", start=0, end=1, start_ts=NOW, end_ts=NOW, confidence=0.5,
                    sku="sku01", sku_confidence=1.5)  # fmt: skip
