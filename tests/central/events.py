"""Events as a box would publish them, for central's tests and benchmark."""

import uuid
from datetime import datetime, timedelta, timezone

from edge.events import ActionEvent, BasketEvent, PickEvent, StatusEvent, encode, topic

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def box_events(
    store: str, box: str, n: int, start_seq: int = 1, t0: datetime = T0, outbox: str = ""
) -> list[tuple[str, bytes]]:
    """`n` sequenced events (actions, picks, put-backs, baskets) of one box, as (topic, payload). `outbox`
    names the box's outbox: a box re-imaged with a new one issues new event ids for the same seqs."""
    out = []
    for i in range(n):
        seq = start_seq + i
        common = {"event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{store}/{box}/{seq}{outbox}")), "seq": seq,
                  "ts": t0 + timedelta(seconds=seq), "store": store, "box": box}  # fmt: skip
        sku = f"sku{seq % 4:02d}"
        if seq % 4 == 1:
            event = ActionEvent(**common, action="reach_to_shelf", start=seq * 10, end=seq * 10 + 8,
                                start_ts=common["ts"], end_ts=common["ts"], confidence=0.9, shopper=1)  # fmt: skip
        elif seq % 4 == 2:
            event = PickEvent(**common, kind="pick", sku=sku, shopper=1, frame=seq * 10, confidence=0.8)
        elif seq % 4 == 3:
            event = PickEvent(**common, kind="putback", sku=sku, shopper=1, frame=seq * 10, confidence=0.7)
        else:
            event = BasketEvent(**common, shopper=1, items={sku: 1}, reason="change", confidence=0.8)
        out.append((topic(store, box, event.kind), encode(event)))
    return out


def status(store: str, box: str, seq: int, state: str = "running", ts: datetime = T0) -> tuple[str, bytes]:
    event = StatusEvent(event_id=str(uuid.uuid4()), seq=seq, ts=ts, store=store, box=box, state=state)
    return topic(store, box, "status"), encode(event)
