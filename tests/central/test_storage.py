"""Idempotent, order-independent storage: replays and shuffles change nothing; gaps in a box's seq are found
and closed by late events; invalid payloads go to the dead letters with their reason, and nowhere else."""

import json
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from central import db
from tests.central.events import T0, box_events, status


def test_replaying_twice_or_out_of_order_leaves_the_same_state(central, db_url):
    events = box_events("s1", "a", 40) + box_events("s1", "b", 25) + [status("s1", "a", 40)]
    for topic, payload in events:
        central.event(topic, payload)
    with central.engine.connect() as conn:
        reference = db.snapshot(conn)
    assert len(reference["events"]) == 65 and reference["gaps"] == []
    for topic, payload in events:  # the same again
        assert central.event(topic, payload) in ("duplicate", "status")
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    for topic, payload in shuffled:
        central.event(topic, payload)
    with central.engine.connect() as conn:
        assert db.snapshot(conn) == reference
    fresh = type(central)(db.connect(db_url.replace("central.db", "other.db"))) if "sqlite" in db_url else None
    if fresh is not None:  # a second database fed in another order ends up identical
        for topic, payload in shuffled:
            fresh.event(topic, payload)
        with fresh.engine.connect() as conn:
            assert db.snapshot(conn) == reference


def test_gaps_open_on_missing_seq_and_close_when_late_events_arrive(central):
    events = dict(enumerate(box_events("s1", "a", 9), start=1))
    for seq in (1, 2, 5, 6):
        central.event(*events[seq])
    with central.engine.connect() as conn:
        assert db.open_gaps(conn, "s1", "a") == [(3, 4)]
    central.event(*status("s1", "a", 9))  # the box says it issued 9: 7..9 are missing too
    with central.engine.connect() as conn:
        assert db.open_gaps(conn, "s1", "a") == [(3, 4), (7, 9)]
    for seq in (4, 8):
        central.event(*events[seq])
    with central.engine.connect() as conn:
        assert db.open_gaps(conn, "s1", "a") == [(3, 3), (7, 7), (9, 9)]
    for seq in (3, 7, 9):
        central.event(*events[seq])
    with central.engine.connect() as conn:
        assert db.open_gaps(conn, "s1", "a") == []
        box = db.box_rows(conn)[0]
    assert box["max_seq"] == 9 and box["online"] is True and box["state"] == "running"


def test_a_last_will_marks_the_box_offline(central):
    connected = datetime.now(timezone.utc) - timedelta(minutes=1)
    central.event(*status("s1", "a", 0, ts=connected))
    central.event(*status("s1", "a", 0, state="offline", ts=connected))  # the will is dated when it was set
    with central.engine.connect() as conn:
        assert db.box_rows(conn)[0]["online"] is False


def test_invalid_payloads_are_dead_lettered_with_the_reason(central):
    (topic, payload), = box_events("s1", "a", 2)[1:]  # fmt: skip
    good = json.loads(payload)
    cases = [
        (topic, b"{not json", "Invalid JSON"),
        (topic, json.dumps({**good, "extra": 1}).encode(), "extra: Extra inputs are not permitted"),
        (topic, json.dumps({**good, "seq": -3}).encode(), "seq: Input should be greater than or equal to 0"),
        ("shelfwatch/v1/s1/b/pick", payload, "topic does not match the payload"),
    ]
    for t, p, _ in cases:
        assert central.event(t, p) == "dead"
    with central.engine.connect() as conn:
        reasons = [r.reason for r in conn.execute(select(db.dead_letters).order_by(db.dead_letters.c.id))]
        assert db.count(conn, db.events) == 0 and db.count(conn, db.boxes) == 0
    for (_, _, expected), reason in zip(cases, reasons, strict=True):
        assert expected in reason


def test_oversized_and_out_of_range_events_are_dead_lettered_not_stored(central):
    """Issue 17.11: central bounds what it stores by the same contract (both backends)."""
    ((topic, payload),) = box_events("s1", "a", 2)[1:]  # fmt: skip  (a pick)
    good = json.loads(payload)
    basket_topic = topic.replace("/pick", "/basket")
    huge_basket = {**good, "kind": "basket", "shopper": 1, "reason": "left", "confidence": 1.0,
                   "items": {f"sku{i:07d}": 1 for i in range(60_000)}}  # fmt: skip
    for key in ("sku", "quantity", "frame", "zone"):
        huge_basket.pop(key, None)
    cases = [
        (basket_topic, json.dumps(huge_basket).encode(), "over the contract's 1024"),
        (topic, json.dumps({**good, "quantity": 10**12}).encode(), "quantity: Input should be less than or equal"),
        (topic, json.dumps({**good, "ts": "9999-01-01T00:00:00Z"}).encode(), "more than a day in the future"),
        (topic, json.dumps({**good, "seq": 2**63}).encode(), "seq: Input should be less than or equal"),
        (topic, json.dumps({**good, "sku": "a\u0000b"}).encode(), "sku: String should match pattern"),
    ]
    for t, p, _ in cases:
        assert central.event(t, p) == "dead"
    assert central.event(topic, payload) == "stored"
    with central.engine.connect() as conn:
        reasons = [r.reason for r in conn.execute(select(db.dead_letters).order_by(db.dead_letters.c.id))]
        assert db.count(conn, db.events) == 1
    for (_, _, expected), reason in zip(cases, reasons, strict=True):
        assert expected in reason


def test_a_reimaged_box_starts_a_new_epoch_and_loses_nothing(central):
    """Issue 17.2: a box whose outbox was replaced starts again at seq 1; (store, box, seq) used to be unique,
    so every new event was dropped as a duplicate (29 of 29 lost). Duplicates are by event_id now, and a seq
    that goes backwards starts a new epoch with its own gaps."""
    first = box_events("s1", "a", 29)
    second = box_events("s1", "a", 29, outbox="reimaged", t0=T0 + timedelta(hours=1))
    third = box_events("s1", "a", 10, outbox="again", t0=T0 + timedelta(hours=2))
    assert central.events(first) == ["stored"] * 29
    assert central.events(second[:10]) == ["stored"] * 10  # seq 1..10 again: epoch 2
    assert central.events(second[14:]) == ["stored"] * 15  # 11..14 late: a gap of epoch 2
    assert central.events(first[:5] + second[:3]) == ["duplicate"] * 8  # replays stay duplicates
    with central.engine.connect() as conn:
        assert db.box_rows(conn)[0]["epoch"] == 2 and db.box_rows(conn)[0]["max_seq"] == 29
        assert db.open_gaps(conn, "s1", "a") == [(11, 14)] and db.open_gaps(conn, "s1", "a", epoch=1) == []
    assert central.events(second[10:14][::-1]) == ["stored"] * 4  # late, out of order: the gap closes
    # Re-imaged again, and its first two events are lost on the way: epoch 3 starts with a gap.
    assert central.events(third[2:]) == ["stored"] * 8
    with central.engine.connect() as conn:
        assert db.count(conn, db.events) == 29 + 29 + 8
        assert db.all_gaps(conn, "s1", "a") == [{"epoch": 3, "first": 1, "last": 2}]
        epochs = dict(conn.execute(select(db.events.c.event_id, db.events.c.epoch)).all())
    assert {epochs[json.loads(p)["event_id"]] for _, p in second} == {2}
    assert {epochs[json.loads(p)["event_id"]] for _, p in third[2:]} == {3}


def test_consumers_starting_together_on_a_new_database_all_start(db_url):
    """Several consumers of a group create the tables (central's and the insight rollups') at once; none may fail
    with 'already exists'."""
    import subprocess
    import sys

    code = f"from central import db, service\nservice.Central(db.connect({db_url!r}))\nprint('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]  # fmt: skip
    results = [p.communicate(timeout=60) for p in procs]
    assert [out.strip() for out, _ in results] == ["ok"] * 3, [err for _, err in results]


def _outcome_counts(central) -> tuple[int, int]:
    with central.engine.connect() as conn:
        return db.count(conn, db.events), db.count(conn, db.dead_letters)


def test_every_bounded_column_takes_a_message_at_or_past_its_limit_as_an_event_or_a_dead_letter(central):
    """Issue 21.1: whatever length a field has, the message ends as a stored event (intact) or a dead letter, on
    both backends; nothing raises. The lengths tried are the database columns' own limits, minus one to plus one."""
    ((_, payload),) = box_events("s1", "a", 2)[1:]  # a pick
    pick = json.loads(payload)
    fields = {"store": db.events.c.store, "box": db.events.c.box, "event_id": db.events.c.event_id,
              "sku": db.events.c.sku, "zone": db.events.c.sku}  # fmt: skip
    seq = 10
    for field, column in fields.items():
        limit = column.type.length
        for n in (limit - 1, limit, limit + 1, 300):
            seq += 1
            value = ("a" * n) if field != "event_id" else f"{seq:08d}".ljust(n, "e")
            message = pick | {field: value, "seq": seq, "event_id": f"{seq:08d}"} | (
                {"event_id": value} if field == "event_id" else {})  # fmt: skip
            where = f"shelfwatch/v1/{message['store']}/{message['box']}/pick"
            before = _outcome_counts(central)
            outcome = central.event(where, json.dumps(message).encode())
            after = _outcome_counts(central)
            assert outcome in ("stored", "dead"), (field, n)
            assert after == (before[0] + (outcome == "stored"), before[1] + (outcome == "dead")), (field, n)
            if outcome == "stored":
                with central.engine.connect() as conn:
                    row = conn.execute(select(db.events.c.payload).where(
                        db.events.c.event_id == message["event_id"])).one()  # fmt: skip
                assert row.payload[field] == value  # stored whole, never cut
            assert outcome == "dead" or n <= limit  # no field past its column is stored


def test_pos_fields_past_their_columns_become_dead_letters_on_both_backends(central):
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    base = {"type": "basket_open", "message_id": "m1", "transaction_id": "t1", "store": "s1", "lane": "l1",
            "ts": t0.isoformat()}  # fmt: skip
    for field in ("message_id", "transaction_id", "store", "lane"):
        for n in (64, 65, 300):
            message = base | {field: "a" * n}
            where = f"shelfwatch/pos/v1/{message['store']}/{message['lane']}"
            alerts, reason = central.pos_payload("mqtt", where, json.dumps(message))
            assert (alerts is None) == bool(reason)
    with central.engine.connect() as conn:
        kept = list(conn.execute(select(db.dead_letters.c.topic)))
        opened = db.count(conn, db.transactions)
    assert opened + len(kept) == 12 and len(kept) >= 8
    assert max(len(t) for (t,) in kept) == db.dead_letters.c.topic.type.length


def test_a_dead_letter_keeps_what_fits_and_says_it_was_cut(central):
    """A 300-character last topic level once stopped central on PostgreSQL (varchar(256)): now it is cut."""
    ((topic, payload),) = box_events("s1", "a", 2)[1:]
    huge_reason_payload = b'{"kind": "pick", ' + b'"x": 1, ' * 20_000 + b"}"
    assert central.event(topic + "x" * 300, payload) == "dead"
    assert central.event(topic + "x" * 70_000, huge_reason_payload) == "dead"
    with central.engine.connect() as conn:
        rows = list(conn.execute(select(db.dead_letters).order_by(db.dead_letters.c.id)))
    limit = db.dead_letters.c.topic.type.length
    assert [len(r.topic) for r in rows] == [limit, limit] and all(r.topic.endswith("…") for r in rows)
    assert rows[0].topic.startswith(topic) and "topic does not match" in rows[0].reason
    assert len(rows[1].payload) == db.DEAD_PAYLOAD_CHARS and rows[1].payload.endswith("…")
