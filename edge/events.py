"""The events a box publishes: the contract with central systems (`shelfwatch schema events` prints it).

Every event carries `event_id` (unique, and the same on every retry: it is stored with the event before
the first attempt), `seq` (per box, only grows, survives restarts; taken from the outbox), `ts` (UTC)
and `store`/`box`. Status heartbeats are not sequenced: their `seq` is the highest seq issued so far,
which lets a consumer see missing events at the tail. Each payload stays under 1 KB.
Topics: `shelfwatch/v1/<store>/<box>/<kind>`, QoS 1.
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


Event = Annotated[ActionEvent | PickEvent | BasketEvent | StatusEvent, Field(discriminator="kind")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
KINDS = ("action", "pick", "putback", "basket", "status")


def topic(store: str, box: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{store}/{box}/{kind}"


def encode(event: _Event) -> bytes:
    payload = event.model_dump_json(exclude_none=True).encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{event.kind} event is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")  # type: ignore[attr-defined]
    return payload


def decode(payload: bytes | str) -> ActionEvent | PickEvent | BasketEvent | StatusEvent:
    """Parse and validate one payload (raises pydantic's ValidationError with the reason)."""
    return EVENT_ADAPTER.validate_json(payload)


def events_schema() -> dict:
    schema = EVENT_ADAPTER.json_schema()
    schema["$id"] = f"https://shelfwatch.dev/schemas/events/v{EVENTS_VERSION}.json"
    schema["title"] = "ShelfWatch box events"
    return schema
