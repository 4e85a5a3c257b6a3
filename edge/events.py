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
What v1 gained later is additive: optional fields (an action's zone and product; the status's `bundle_key`,
`problem`, uplink and slot fields; `familiar` on actions, picks, put-backs and visits, and the status's
`unfamiliar_share`) and new kinds on their own topics (`visit`; `upload` and `control`, what the box did
over the channel); a consumer that ignores unknown fields and topics keeps working. A consumer that validates
strictly (central does) must be upgraded before the boxes that send what is new.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter

from edge.classes import ACTION_CLASSES
from edge.schema import Slug, Strict

EVENTS_VERSION = 1
TOPIC_ROOT = f"shelfwatch/v{EVENTS_VERSION}"
MAX_PAYLOAD_BYTES = 1024
MAX_INT = 2**53 - 1  # exact in every JSON parser and in a signed 64-bit column
MAX_QUANTITY = 1000  # units in one pick or put-back, or of one SKU in a basket
MAX_BASKET_SKUS = 64
MAX_VISIT_PARTS = 64  # a visit's products over this many events at most (MAX_BASKET_SKUS products, 1 per part)
MAX_VISIT_ZONES = 8  # a visit names at most this many shelf zones (a 1 KB payload has room for them)
MAX_CLOCK_AHEAD = timedelta(days=1)  # how far a box's clock may run ahead of the receiver's
MAX_PROBLEM = 256  # a status's `problem`: one line, with the path it is about
# Printable text without control characters (PostgreSQL refuses NUL in text; logs and pages want one line).
Text = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
FAMILIAR = (
    "Optional (added in v1): false when the footage this comes from was unlike the model's training (the box's "
    "familiarity guard), so it is not a sure fact; true when the guard found it familiar; absent when the box's "
    "bundle has no guard (familiarity unknown)."
)


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
    familiar: bool | None = Field(default=None, description=FAMILIAR)


class PickEvent(_Event):
    """A product left the shelf in a shopper's hand (`pick`) or was carried back into it (`putback`)."""

    kind: Literal["pick", "putback"]
    sku: Text
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)
    shopper: Count | None = None
    frame: Count
    confidence: float = Field(ge=0, le=1)
    zone: Text | None = None
    familiar: bool | None = Field(default=None, description=FAMILIAR)


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
    then the most handled. A visit whose products do not fit one 1 KB payload (at most 8 a payload) is sent as
    several events, `part` 1..`parts`, each with the visit's own fields and the next products: no product is ever
    left out (`products_left_out` stays 0; older boxes cut the list and counted the rest there)."""

    kind: Literal["visit"] = "visit"
    shopper: Count
    start_ts: Timestamp
    end_ts: Timestamp
    dwell_s: float = Field(ge=0, le=MAX_INT, description="end_ts - start_ts, seconds")
    zones: list[Text] = Field(default_factory=list, max_length=MAX_VISIT_ZONES,
                              description="the shelf zones of its actions")  # fmt: skip
    inspect_shelf_s: float = Field(default=0, ge=0, le=MAX_INT, description="seconds spent looking at the shelf")
    actions: Count = Field(default=0, description="action segments in the visit")
    products: list[VisitProduct] = Field(default_factory=list, max_length=8)
    products_left_out: Count = 0
    part: int | None = Field(default=None, ge=1, le=MAX_VISIT_PARTS, description=(
        "Optional (added in v1): which of the visit's events this is, 1-based, when the visit was split over several "
        "(its products did not fit one payload); absent on a visit sent whole. Every part repeats the visit's "
        "shopper, times, zones and counts; only `products` differ, so a consumer counts the visit once (part 1) "
        "and its products from every part."))  # fmt: skip
    parts: int | None = Field(default=None, ge=2, le=MAX_VISIT_PARTS, description=(
        "Optional (added in v1): how many events the split visit was sent as."))  # fmt: skip
    reason: Literal["left", "end"] = "left"
    familiar: bool | None = Field(default=None, description=FAMILIAR)


# One line for a person: what the box could not do (no control characters, a sentence's length).
Line = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class UploadEvent(_Event):
    """Added in v1 (a new kind): a file this box uploaded to central over HTTPS and central acknowledged."""

    kind: Literal["upload"] = "upload"
    file_kind: Literal["clip", "snapshot"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    size: int = Field(ge=0, le=MAX_INT)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    covers: list[Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]] = Field(
        default_factory=list, max_length=8, description="ids of the events the file shows")  # fmt: skip


class ControlEvent(_Event):
    """Added in v1 (a new kind): what the box did with a control message from central."""

    kind: Literal["control"] = "control"
    name: Literal["desired", "snapshot"]
    state: Literal["received", "staged", "done", "refused"] = Field(description=(
        "received: taken on; staged: the file is downloaded and checked; done: carried out; refused: see "
        "detail"))  # fmt: skip
    detail: Line | None = None


class StatusEvent(_Event):
    """Heartbeat, retained. The broker publishes the `offline` one as the box's last will."""

    kind: Literal["status"] = "status"
    state: Literal["running", "stopped", "offline"]
    fps: float = Field(default=0, ge=0, description=(
        "Frames per second the box could process (the last 60 frames' processing time; its capacity)"))  # fmt: skip
    camera_fps: float | None = Field(default=None, ge=0, description=(
        "Optional (added in v1): the camera's frames per second over the last 60 frames, on the source's clock (a "
        "live camera's frames timed as they arrive, a file's at its own rate)"))  # fmt: skip
    busy: float | None = Field(default=None, ge=0, le=1, description=(
        "Optional (added in v1): the share of the time between frames spent processing them (1 - busy is the "
        "spare capacity); 1 when the box cannot keep up"))  # fmt: skip
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
    bundle_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$", description=(
        "Optional (added in v1): the id of the trusted key that signed the running bundle; absent when the box "
        "has no bundle_keys and runs its bundle unchecked."))  # fmt: skip
    # Optional, added within v1: the channel to central (files waiting to be uploaded, dropped for the disk budget).
    uplink_pending: Count | None = None
    uplink_dropped: Count | None = None
    unfamiliar_share: float | None = Field(default=None, ge=0, le=1, description=(
        "Optional (added in v1): the share of the last minute's analysed frames that the familiarity guard found "
        "unlike the model's training; absent when the bundle has no guard or no frame was analysed in that "
        "minute."))  # fmt: skip
    problem: str | None = Field(default=None, min_length=1, max_length=MAX_PROBLEM, pattern=r"^[^\x00-\x1f\x7f]+$",
                                description=(
        "Optional (added in v1): the latest thing the box refused or could not do, in the one line its log has: a "
        "bundle refused (unsigned, signed by no trusted key, a file that does not match, a newer schema or agent "
        "version required: the agent then stops), a control message it does not know, an upload central refused "
        "or cannot take now."))  # fmt: skip
    # Optional, added within v1: the box's two slots and its last switch (README: "Switching bundles on the box").
    staged_bundle: Text | None = Field(default=None, description=(
        "Optional (added in v1): the bundle staged in the box's inactive slot, waiting for its health gate or its "
        "switch."))  # fmt: skip
    fallback_bundle: Text | None = Field(default=None, description=(
        "Optional (added in v1): the bundle the box goes back to if the running one fails."))  # fmt: skip
    switch: Literal["switching", "trial", "done", "refused", "rolled_back"] | None = Field(default=None, description=(
        "Optional (added in v1): the last switch's result. switching: the gate passed, the agent restarts; trial: "
        "switched, and 3 crashes within 10 minutes would go back; done: switched, the trial passed; refused: the "
        "health gate refused the bundle and the old one runs on (why: `problem`); rolled_back: the new bundle was "
        "abandoned for the fallback (why: `problem`)."))  # fmt: skip
    switch_bundle: Text | None = Field(default=None, description=(
        "Optional (added in v1): the bundle the last switch was about."))  # fmt: skip
    switch_s: float | None = Field(default=None, ge=0, le=MAX_INT, description=(
        "Optional (added in v1): what the last switch cost: seconds from the last frame analysed before it to the "
        "first after it."))  # fmt: skip
    switch_frames: Count | None = Field(default=None, description=(
        "Optional (added in v1): the camera's frames in `switch_s`, not analysed."))  # fmt: skip


Event = Annotated[
    ActionEvent | PickEvent | BasketEvent | VisitEvent | UploadEvent | ControlEvent | StatusEvent,
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
KINDS = ("action", "pick", "putback", "basket", "visit", "upload", "control", "status")


def topic(store: str, box: str, kind: str) -> str:
    return f"{TOPIC_ROOT}/{store}/{box}/{kind}"


def encode(event: _Event) -> bytes:
    payload = event.model_dump_json(exclude_none=True).encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{event.kind} event is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")  # type: ignore[attr-defined]
    return payload


class PayloadTooLarge(ValueError):
    """A payload over MAX_PAYLOAD_BYTES: refused before it is parsed."""


AnyEvent = ActionEvent | PickEvent | BasketEvent | VisitEvent | UploadEvent | ControlEvent | StatusEvent


def decode(payload: bytes | str) -> AnyEvent:
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
