"""The events a box publishes: the contract with central systems (`shelfwatch schema events` prints it).

Every event carries `event_id` (unique, and the same on every retry: it is stored with the event before
the first attempt), `seq` (per box, only grows, survives restarts; taken from the outbox), `ts` (UTC)
and `store`/`box`. Status heartbeats are not sequenced: their `seq` is the highest seq issued so far,
which lets a consumer see missing events at the tail. Each payload stays under 1 KB.
Topics: `shelfwatch/v1/<store>/<box>/<kind>`, QoS 1.
What v1 gained later is additive: optional fields (an action's zone and product) and a new kind (`visit`) on its
own topic; a consumer that ignores unknown fields and topics keeps working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from edge.classes import ACTION_CLASSES

EVENTS_VERSION = 1
TOPIC_ROOT = f"shelfwatch/v{EVENTS_VERSION}"
MAX_PAYLOAD_BYTES = 1024
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ActionName = Literal[ACTION_CLASSES]  # type: ignore[valid-type]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = EVENTS_VERSION
    event_id: str = Field(min_length=8, max_length=64)
    seq: int = Field(ge=0)
    ts: datetime
    store: Slug
    box: Slug


class ActionEvent(_Event):
    """A closed action segment; frames are the video's frame indices, `start` inclusive, `end` exclusive."""

    kind: Literal["action"] = "action"
    action: ActionName
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    start_ts: datetime
    end_ts: datetime
    confidence: float = Field(ge=0, le=1)
    shopper: int | None = Field(default=None, ge=0)
    # Added within v1, all optional: a consumer that ignores unknown fields keeps working; one that validates
    # against an older copy of this schema must take the new one.
    zone: str | None = Field(default=None, max_length=64, description=(
        "Optional (added in v1): the shelf zone the action was at (the zone that moved most during it, else the "
        "one nearest the shopper)."))  # fmt: skip
    sku: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "Optional (added in v1), when the box knows it: the product in the hand (inspect_product, "
        "retract_from_shelf) or the product slot nearest the hand (reach_to_shelf, hand_in_shelf)."))  # fmt: skip
    sku_confidence: float | None = Field(default=None, ge=0, le=1, description=(
        "Optional (added in v1): how sure the box is of `sku`."))  # fmt: skip


class PickEvent(_Event):
    """A product left the shelf in a shopper's hand (`pick`) or was carried back into it (`putback`)."""

    kind: Literal["pick", "putback"]
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1)
    shopper: int | None = Field(default=None, ge=0)
    frame: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)
    zone: str | None = Field(default=None, max_length=64)


class BasketEvent(_Event):
    """A shopper's items (picks minus put-backs per SKU): on every change, and when the shopper leaves."""

    kind: Literal["basket"] = "basket"
    shopper: int = Field(ge=0)
    items: dict[str, int]
    reason: Literal["change", "left"]
    confidence: float = Field(ge=0, le=1)


class VisitProduct(BaseModel):
    """One product a shopper dealt with during a visit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=64)
    zone: str | None = Field(default=None, max_length=64)
    reached: int = Field(default=0, ge=0, description="hand visits into the shelf at its slot")
    inspected: int = Field(default=0, ge=0, description="inspections with it in the hand")
    inspect_s: float = Field(default=0, ge=0, description="seconds it was inspected in the hand")
    picked: int = Field(default=0, ge=0, description="taken off the shelf; a product seen in the hand that the "
                        "shelf never missed counts as picked and put back")  # fmt: skip
    put_back: int = Field(default=0, ge=0)
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
    shopper: int = Field(ge=0)
    start_ts: datetime
    end_ts: datetime
    dwell_s: float = Field(ge=0, description="end_ts - start_ts, seconds")
    zones: list[str] = Field(default_factory=list, max_length=8, description="the shelf zones of its actions")
    inspect_shelf_s: float = Field(default=0, ge=0, description="seconds spent looking at the shelf")
    actions: int = Field(default=0, ge=0, description="action segments in the visit")
    products: list[VisitProduct] = Field(default_factory=list, max_length=8)
    products_left_out: int = Field(default=0, ge=0)
    reason: Literal["left", "end"] = "left"


class StatusEvent(_Event):
    """Heartbeat, retained. The broker publishes the `offline` one as the box's last will."""

    kind: Literal["status"] = "status"
    state: Literal["running", "stopped", "offline"]
    fps: float = Field(default=0, ge=0)
    latency_ms: float = Field(default=0, ge=0)  # frame read -> its events stored, median of the last interval
    frames: int = Field(default=0, ge=0)
    dropped_frames: int = Field(default=0, ge=0)
    motion_skip: float = Field(default=0, ge=0, le=1)  # fraction of frames the motion gate skipped
    outbox_depth: int = Field(default=0, ge=0)
    outbox_dropped: int = Field(default=0, ge=0)
    source_reconnects: int = Field(default=0, ge=0)
    bundle_id: str | None = Field(default=None, max_length=64)


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


def decode(payload: bytes | str) -> ActionEvent | PickEvent | BasketEvent | VisitEvent | StatusEvent:
    """Parse and validate one payload (raises pydantic's ValidationError with the reason)."""
    return EVENT_ADAPTER.validate_json(payload)


def events_schema() -> dict:
    schema = EVENT_ADAPTER.json_schema()
    schema["$id"] = f"https://shelfwatch.dev/schemas/events/v{EVENTS_VERSION}.json"
    schema["title"] = "ShelfWatch box events"
    return schema
