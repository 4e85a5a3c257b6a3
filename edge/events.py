"""The events a box publishes: the contract with central systems (`shelfwatch schema events` prints it).

Every event carries `event_id` (unique, and the same on every retry: it is stored with the event before
the first attempt), `seq` (per box, only grows, survives restarts; taken from the outbox), `ts` (UTC)
and `store`/`box`. Status heartbeats are not sequenced: their `seq` is the highest seq issued so far,
which lets a consumer see missing events at the tail.

Duplicates are recognised by `event_id`, never by `seq`. A box whose outbox is replaced (disk swapped, box
re-imaged) starts again at seq 1: a seq that goes backwards (one already used by another `event_id`) starts
a new *epoch* of that box, and consumers track gaps per epoch.

Every value is bounded, so that whatever passes this schema fits any consumer's database: a payload is at
most 1 KB (`decode` refuses more before parsing), integers stay within 2^53 - 1 (exact in JSON and in a
64-bit column), quantities within 1000, strings within 64 printable characters, a basket within 64 SKUs,
timestamps at most one day after the receiver's clock (a box's clock may be a little ahead; a
year-9999 event is not; no lower bound, so that a box whose clock is not yet set still keeps its events),
and floats are finite.
Topics: `shelfwatch/v1/<store>/<box>/<kind>`, QoS 1.
What v1 gained later is additive: optional fields (an action's zone and product) and a new kind (`visit`) on its
own topic; a consumer that ignores unknown fields and topics keeps working.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter

from edge.classes import ACTION_CLASSES
from edge.schema import Strict

EVENTS_VERSION = 1
TOPIC_ROOT = f"shelfwatch/v{EVENTS_VERSION}"
MAX_PAYLOAD_BYTES = 1024
MAX_INT = 2**53 - 1  # exact in every JSON parser and in a signed 64-bit column
MAX_QUANTITY = 1000  # units in one pick or put-back, or of one SKU in a basket
MAX_BASKET_SKUS = 64
MAX_CLOCK_AHEAD = timedelta(days=1)  # how far a box's clock may run ahead of the receiver's
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
# Printable text without control characters (PostgreSQL refuses NUL in text; logs and pages want one line).
Text = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]


def _sane_time(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("a timestamp needs a UTC offset")
    try:
        utc = ts.astimezone(timezone.utc)  # 0001-01-01T00:00+05:00 has no UTC time: refused here, not in a consumer
    except OverflowError:
        raise ValueError(f"{ts.isoformat()} is out of range in UTC") from None
    if utc > datetime.now(timezone.utc) + MAX_CLOCK_AHEAD:
        raise ValueError(f"{ts.isoformat()} is more than a day in the future")
    return ts


Timestamp = Annotated[
    datetime,
    AfterValidator(_sane_time),
    Field(description="UTC, ISO 8601 with an offset; at most one day ahead of the receiver's clock"),
]
ActionName = Literal[ACTION_CLASSES]  # type: ignore[valid-type]


class _Event(Strict):
    model_config = ConfigDict(allow_inf_nan=False)  # merged with Strict's: unknown keys refused, frozen

    v: Literal[1] = EVENTS_VERSION
    event_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    seq: Count = Field(description="per box and epoch; a seq that goes backwards starts a new epoch of the box")
    ts: Timestamp
    store: Slug
    box: Slug


class ActionEvent(_Event):
    """A closed action segment; frames are the video's frame indices, `start` inclusive, `end` exclusive."""

    kind: Literal["action"] = "action"
    action: ActionName
    start: Count
    end: Count
    start_ts: Timestamp
    end_ts: Timestamp
    confidence: float = Field(ge=0, le=1)
    shopper: Count | None = None
    # Added within v1, all optional: a consumer that ignores unknown fields keeps working; one that validates
    # against an older copy of this schema must take the new one.
    zone: Text | None = Field(default=None, description=(
        "Optional (added in v1): the shelf zone the action was at (the zone that moved most during it, else the "
        "one nearest the shopper)."))  # fmt: skip
    sku: Text | None = Field(default=None, description=(
        "Optional (added in v1), when the box knows it: the product in the hand (inspect_product, "
        "retract_from_shelf) or the product slot nearest the hand (reach_to_shelf, hand_in_shelf)."))  # fmt: skip
    sku_confidence: float | None = Field(default=None, ge=0, le=1, description=(
        "Optional (added in v1): how sure the box is of `sku`."))  # fmt: skip


class PickEvent(_Event):
    """A product left the shelf in a shopper's hand (`pick`) or was carried back into it (`putback`)."""

    kind: Literal["pick", "putback"]
    sku: Text
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)
    shopper: Count | None = None
    frame: Count
    confidence: float = Field(ge=0, le=1)
    zone: Text | None = None


class BasketEvent(_Event):
    """A shopper's items (picks minus put-backs per SKU): on every change, and when the shopper leaves."""

    kind: Literal["basket"] = "basket"
    shopper: Count
    items: dict[Text, Annotated[int, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]] = Field(max_length=MAX_BASKET_SKUS)
    reason: Literal["change", "left"]
    confidence: float = Field(ge=0, le=1)


class VisitProduct(Strict):
    """One product a shopper dealt with during a visit."""

    model_config = ConfigDict(allow_inf_nan=False)

    sku: Text
    zone: Text | None = None
    reached: Count = Field(default=0, description="hand visits into the shelf at its slot")
    inspected: Count = Field(default=0, description="inspections with it in the hand")
    inspect_s: float = Field(default=0, ge=0, le=MAX_INT, description="seconds it was inspected in the hand")
    picked: int = Field(default=0, ge=0, le=MAX_QUANTITY, description="taken off the shelf; a product seen in the "
                        "hand that the shelf never missed counts as picked and put back")  # fmt: skip
    put_back: int = Field(default=0, ge=0, le=MAX_QUANTITY)
    outcome: Literal["kept", "put_back", "looked"] = Field(
        description="kept: more picked than put back; put_back: picked (now or before) and returned; looked: "
        "reached for or inspected only"
    )


class VisitEvent(_Event):
    """Added in v1 (a new kind; consumers that do not know it can ignore its topic): one shopper's visit at the
    shelf, from their first action to their last, sent when the shopper leaves (`reason` left) or when the
    source ends or the agent stops with the shopper still there (`end`). Products picked or put back come first,
    then the most handled; as many as keep the payload under 1 KB (at most 8), the rest counted in
    `products_left_out`."""

    kind: Literal["visit"] = "visit"
    shopper: Count
    start_ts: Timestamp
    end_ts: Timestamp
    dwell_s: float = Field(ge=0, le=MAX_INT, description="end_ts - start_ts, seconds")
    zones: list[Text] = Field(default_factory=list, max_length=8, description="the shelf zones of its actions")
    inspect_shelf_s: float = Field(default=0, ge=0, le=MAX_INT, description="seconds spent looking at the shelf")
    actions: Count = Field(default=0, description="action segments in the visit")
    products: list[VisitProduct] = Field(default_factory=list, max_length=8)
    products_left_out: Count = 0
    reason: Literal["left", "end"] = "left"


class StatusEvent(_Event):
    """Heartbeat, retained. The broker publishes the `offline` one as the box's last will."""

    kind: Literal["status"] = "status"
    state: Literal["running", "stopped", "offline"]
    fps: float = Field(default=0, ge=0)  # finite (allow_inf_nan=False) is all a database needs
    latency_ms: float = Field(default=0, ge=0)  # frame read -> its events stored, median of the last interval
    frames: Count = 0
    dropped_frames: Count = 0
    motion_skip: float = Field(default=0, ge=0, le=1)  # fraction of frames the motion gate skipped
    outbox_depth: Count = 0
    outbox_dropped: Count = 0
    source_reconnects: Count = 0
    # Publishes the broker refused (MQTT 5 reason code 0x80 or more: this box may not write there); those events
    # stay in the outbox. Optional: added within v1, older boxes do not send it.
    refused_publishes: Count | None = None
    bundle_id: Text | None = None


Event = Annotated[ActionEvent | PickEvent | BasketEvent | VisitEvent | StatusEvent, Field(discriminator="kind")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
KINDS = ("action", "pick", "putback", "basket", "visit", "status")


def topic(store: str, box: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{store}/{box}/{kind}"


def encode(event: _Event) -> bytes:
    payload = event.model_dump_json(exclude_none=True).encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{event.kind} event is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")  # type: ignore[attr-defined]
    return payload


class PayloadTooLarge(ValueError):
    """A payload over MAX_PAYLOAD_BYTES: refused before it is parsed."""


def decode(payload: bytes | str) -> ActionEvent | PickEvent | BasketEvent | VisitEvent | StatusEvent:
    """Parse and validate one payload (raises pydantic's ValidationError with the reason, or PayloadTooLarge)."""
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"payload is {size} bytes, over the contract's {MAX_PAYLOAD_BYTES}")
    return EVENT_ADAPTER.validate_json(payload)


def events_schema() -> dict:
    schema = EVENT_ADAPTER.json_schema()
    schema["$id"] = f"https://shelfwatch.dev/schemas/events/v{EVENTS_VERSION}.json"
    schema["title"] = "ShelfWatch box events"
    return schema
