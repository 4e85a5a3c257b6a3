"""What the point of sale reports, over HTTP or MQTT: a basket opens, items are scanned, it is paid, it closes.

Every message carries the POS's own `message_id`, so a message sent twice counts once. The published
JSON Schema (`shelfwatch schema pos`) is what checkout integrations build against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from edge.events import Text, Timestamp
from edge.schema import Slug, Strict

POS_TOPIC_ROOT = "shelfwatch/pos/v1"  # shelfwatch/pos/v1/<store>/<lane>
ALERT_TOPIC_ROOT = "shelfwatch/alerts/v1"  # shelfwatch/alerts/v1/<store>/<lane>


class _Pos(Strict):
    # Bounded like the box events (printable strings of at most 64, sane timestamps, finite numbers), so that
    # whatever passes fits the database.
    model_config = ConfigDict(allow_inf_nan=False)

    message_id: Text
    transaction_id: Text
    store: Slug
    lane: Slug
    ts: Timestamp


class BasketOpen(_Pos):
    type: Literal["basket_open"] = "basket_open"


class ItemScanned(_Pos):
    type: Literal["item"] = "item"
    sku: Text
    quantity: int = Field(default=1, ge=-1000, le=1000, description="negative: a voided scan")


class Payment(_Pos):
    type: Literal["payment"] = "payment"
    amount: float = Field(ge=0, le=1e9)


class BasketClose(_Pos):
    type: Literal["basket_close"] = "basket_close"


PosMessage = Annotated[BasketOpen | ItemScanned | Payment | BasketClose, Field(discriminator="type")]
POS_ADAPTER: TypeAdapter[PosMessage] = TypeAdapter(PosMessage)


class Alert(Strict):
    """An item a checkout-lane box saw taken during a transaction that the POS did not scan (`unscanned`), or one it
    may have seen taken: only events from footage unlike the box model's training counted it, an unfamiliar pick or
    an unfamiliar put-back that may have returned it (`unsure`, "box unsure": review the clip, not a theft alert)."""

    alert_id: str
    store: str
    lane: str
    transaction_id: str
    sku: str
    name: str | None = Field(default=None, description=(
        "Added in v1: the product's name from the store's catalogue (absent where central knows none)"))  # fmt: skip
    unit: int = Field(ge=1, description="1 for the first unscanned unit of this SKU, 2 for the second …")
    confidence: float = Field(ge=0, le=1)
    box: str
    created: datetime
    kind: Literal["unscanned", "unsure"] = Field(default="unscanned", description=(
        "Added in v1: unscanned (a theft alert: the box surely saw it taken) or unsure (box unsure: only events from "
        "footage unlike its model's training counted it)"))  # fmt: skip


class ShrinkRow(Strict):
    sku: str
    name: str | None = Field(default=None, description="the product's name from the store's catalogue, if known")
    picked: int
    put_back: int
    taken: int = Field(description="picked minus put back, over every box of the store")
    sold: int = Field(description="scanned in closed transactions")
    unexplained: int = Field(description="taken minus sold: shrink if positive")
    put_back_unattributed: int = Field(default=0, description=(
        "put-backs nobody was seen taking (no shopper): not in put_back or taken, since they offset no pick (the "
        "box's rule: no basket goes below zero); a high number means missed picks or false put-backs"))  # fmt: skip
    picked_unsure: int = Field(default=0, description=(
        "picks from footage unlike the box model's training (familiar: false): in no other column"))  # fmt: skip
    put_back_unsure: int = Field(default=0, description=(
        "put-backs from footage unlike the box model's training (familiar: false): in no other column"))  # fmt: skip
