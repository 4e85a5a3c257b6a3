"""The durable outbox: seq that only grows across restarts, oldest-first bounds with counted drops."""

import json
import time

from edge.outbox import Outbox


def payload(seq, event_id):
    return json.dumps({"seq": seq, "event_id": event_id}).encode()


def test_seq_grows_and_survives_a_restart(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    first = [box.add("t/a", payload) for _ in range(3)]
    assert [s.seq for s in first] == [1, 2, 3]
    assert json.loads(first[1].payload) == {"seq": 2, "event_id": first[1].event_id}
    box.acknowledge(1)
    box.close()
    again = Outbox(tmp_path / "o.sqlite")  # a new process, the same file
    assert [s.seq for s in again.pending()] == [2, 3]
    assert again.add("t/a", payload).seq == 4 and again.last_seq() == 4
    assert [s.seq for s in again.pending(after=2)] == [3, 4]
    assert len({s.event_id for s in again.pending()}) == 3


def test_full_outbox_drops_the_oldest_and_counts_them(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_events=10)
    for _ in range(14):
        box.add("t", payload)
    assert box.depth() == 10 and box.dropped() == 4
    assert [s.seq for s in box.pending(limit=3)] == [5, 6, 7]


def test_old_events_expire_and_are_counted(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_age_s=0.2)
    box.add("t", payload)
    time.sleep(0.3)
    box.add("t", payload)
    assert [s.seq for s in box.pending()] == [2] and box.dropped() == 1
