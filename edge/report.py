"""What the stages found, as events: closed action segments, shelf changes credited to a shopper's basket, and
the final basket of each shopper who left. Every event goes through the emitter (outbox first)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import datetime, timezone

from edge.baskets import Baskets
from edge.classes import ACTION_CLASSES, Action
from edge.emitter import Emitter
from edge.scene import Foreground, ShopperTracker
from edge.segments import ActionSegment
from edge.shelf import ShelfChange
from edge.video import Frame

NOBODY = 0  # the shopper of a pick with nobody in view (a put-back nobody was seen taking has no shopper)


class Reporter:
    def __init__(self, emitter: Emitter, shoppers: ShopperTracker, fps: float, min_confidence: float = 0.0) -> None:
        self.emitter, self.shoppers, self.fps = emitter, shoppers, fps
        self.min_confidence = min_confidence  # an action segment less sure than this is not reported
        self.baskets = Baskets()
        self.frame_ts: dict[int, float] = {}
        self.shelf_x: float | None = None  # where the shelf last moved: an action is credited to the nearest shopper
        self.actions_seen: Counter = Counter()
        self.picks = self.putbacks = 0
        self.final_baskets: dict[int, dict[str, int]] = {}

    def saw(self, frame: Frame, fg: Foreground) -> None:
        """Remember when each frame was taken (segments carry their times) and where the shelf moved."""
        self.frame_ts[frame.index] = frame.ts
        self.frame_ts.pop(frame.index - 10 * int(self.fps) * 60, None)  # ten minutes of timestamps is plenty
        xs = [x for x in fg.zone_x.values() if x is not None]
        if xs:
            self.shelf_x = float(statistics.mean(xs))

    def shoppers_left(self, gone: list[int]) -> None:
        for shopper in gone:
            final = self.baskets.leave(shopper)
            if final is not None:
                self.final_baskets[shopper] = final
                self.emitter.emit("basket", shopper=shopper, items=final, reason="left", confidence=1.0)

    def actions(self, segments: list[ActionSegment]) -> None:
        for seg in segments:
            if seg.label == Action.NO_ACTION or seg.confidence < self.min_confidence:
                continue
            self.actions_seen[ACTION_CLASSES[seg.label]] += 1
            nearest = self.shoppers.nearest(self.shelf_x)
            self.emitter.emit("action", action=ACTION_CLASSES[seg.label], start=seg.start, end=seg.end,
                              start_ts=self._time_of(seg.start), end_ts=self._time_of(seg.end - 1),
                              confidence=round(seg.confidence, 4), shopper=nearest.id if nearest else None)  # fmt: skip

    def changes(self, changes: list[ShelfChange]) -> None:
        for change in changes:
            nearest = self.shoppers.nearest(change.x, change.y)
            nearest_id = nearest.id if nearest else None
            if change.kind == "pick":
                self.picks += change.quantity
                owner = nearest_id if nearest_id is not None else NOBODY
            else:
                self.putbacks += change.quantity
                owner = self.baskets.owner_of_putback(change.sku, nearest_id, self.shoppers.present)
            # A put-back of an item nobody was seen taking still counts for the shelf, but is nobody's: no basket
            # goes below zero (a checkout cross-check would read a negative count as nonsense).
            self.emitter.emit(change.kind, sku=change.sku, quantity=change.quantity, shopper=owner, frame=change.frame,
                              confidence=round(change.confidence, 4), zone=change.zone)  # fmt: skip
            if owner is None:
                continue
            items = self.baskets.apply(owner, change.kind, change.sku, change.quantity)
            self.emitter.emit("basket", shopper=owner, items=items, reason="change",
                              confidence=round(change.confidence, 4))  # fmt: skip

    def present_baskets(self) -> dict[int, dict[str, int]]:
        """The baskets of the shoppers in view, for the annotated video."""
        return {s: self.baskets.snapshot(s) for s in self.shoppers.present}

    def open_baskets(self) -> dict[int, dict[str, int]]:
        """Every basket: those of shoppers who left and those still open."""
        return {**self.final_baskets, **{s: self.baskets.snapshot(s) for s in list(self.baskets.items)}}

    def _time_of(self, frame: int) -> datetime:
        return datetime.fromtimestamp(self.frame_ts.get(frame, time.time()), timezone.utc)
