"""What the stages found, as events: closed action segments (with the shelf zone and, when known, the product
involved), shelf changes credited to a shopper's basket, the final basket of each shopper who left, and each
shopper's visit at the shelf. Every event goes through the emitter (outbox first), stamped with the time of the
frames it describes (a clip's own clock for a file, see `edge.video`).

Familiarity (with a bundle that has a guard, `edge.familiarity`): an action, pick or put-back is `familiar` when
the frames scored during it, judged as one window, were (an action: its frames and the model's delay after them; a
shelf change: the hand's visits into the shelf that it settles). What is not familiar is no sure fact: it
is sent flagged (or, with the `drop` policy, not at all), it changes no basket (the box counts it apart) and it
makes no visit. Without a guard `familiar` is left out (unknown) and everything counts as before.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime

from edge.annotate import Happening
from edge.baskets import Baskets
from edge.classes import ACTION_CLASSES, Action
from edge.emitter import Emitter
from edge.events import MAX_INT, MAX_PAYLOAD_BYTES, MAX_VISIT_PARTS, MAX_VISIT_ZONES, VisitEvent, VisitProduct
from edge.familiarity import Guard, Reading
from edge.scene import Foreground, ShopperTracker
from edge.schedule import DetectionSchedule
from edge.segments import ActionSegment
from edge.shelf import INTO_SHELF, ShelfChange, ShelfCounter, front_edge
from edge.times import from_epoch
from edge.video import Frame

NOBODY = 0  # the shopper of a pick with nobody in view (a put-back nobody was seen taking has no shopper)
IN_HAND = {Action.INSPECT_PRODUCT, Action.RETRACT_FROM_SHELF}  # the product involved is the one in the hand
MIN_SIGHTINGS = 2  # detections of one SKU in a hand during a segment before the segment names it
SETTLE_WAIT_S = 15.0  # a leaving shopper's visit waits this long at most for the shelf's recount (their picks)
MAX_VISIT_PRODUCTS = 8
# A put-back settled in a file's last second gets the end-of-file rule (picks only: the last frames may still show a
# hand over the shelf), as a zone counted from a clip's last frames does: it is not reported.
END_OF_FILE_S = 1.0


@dataclass
class _Product:
    zone: str | None = None
    reached: int = 0
    inspected: int = 0
    inspect_s: float = 0.0
    picked: int = 0
    put_back: int = 0

    @property
    def outcome(self) -> str:
        if self.picked > self.put_back:
            return "kept"
        return "put_back" if self.put_back else "looked"


@dataclass
class _Visit:
    """One shopper at the shelf, from their first action to their last."""

    start: float
    end: float
    zones: list[str] = field(default_factory=list)
    inspect_shelf_s: float = 0.0
    actions: int = 0
    previous: int | None = None  # the last action's class: a reach then a hand in the shelf are one hand visit
    products: dict[str, _Product] = field(default_factory=dict)
    left_at: float | None = None  # the shopper left: the visit waits for the shelf to settle, then goes out
    # A visit is a shopper seen at the shelf: it needs a shelf action that was reported (and familiar, where the
    # bundle has a guard). A shelf change credited to someone whose actions nobody reported makes none.
    reported: bool = False


def visit_parts(products: list[VisitProduct], fields: dict, ts: datetime) -> list[list[VisitProduct]]:
    """A visit's products in as many events as keep each under the 1 KB payload limit (in order, at most
    MAX_VISIT_PRODUCTS each): never a product left out. Measured with the longest ids a box gives (what fits here
    fits there) and the part numbers a split visit carries."""

    def fits(part: list[VisitProduct]) -> bool:
        probe = VisitEvent(event_id="x" * 64, seq=MAX_INT, ts=ts, store="s" * 63, box="b" * 63, products=part,
                           part=MAX_VISIT_PARTS, parts=MAX_VISIT_PARTS, **fields)  # fmt: skip
        return len(probe.model_dump_json(exclude_none=True)) <= MAX_PAYLOAD_BYTES  # as `encode` measures it

    parts: list[list[VisitProduct]] = []
    current: list[VisitProduct] = []
    for product in products:
        if current and (len(current) == MAX_VISIT_PRODUCTS or not fits([*current, product])):
            parts.append(current)
            current = []
        current.append(product)
    if current or not parts:
        parts.append(current)
    return parts[:MAX_VISIT_PARTS]


class Reporter:
    def __init__(
        self, emitter: Emitter, shoppers: ShopperTracker, fps: float, min_confidence: float = 0.0,
        shelf: ShelfCounter | None = None, schedule: DetectionSchedule | None = None, delay: int = 0,
        guard: Guard | None = None, policy: str = "flag", detector_floor: float = 0.0, file_frames: int | None = None,
    ) -> None:  # fmt: skip
        self.emitter, self.shoppers, self.fps = emitter, shoppers, fps
        self.min_confidence = min_confidence  # an action segment less sure than this is not reported
        self.delay = delay  # the model scores frame t - delay at frame t: a segment's evidence runs that much longer
        self.guard, self.policy = guard, policy  # the bundle's familiarity guard (None: none); flag or drop
        self.detector_floor = detector_floor  # a put-back nobody was seen taking, less sure than this: not reported
        self.frame_score: dict[int, float] = {}  # scored frames: the guard's score (with a guard)
        self.latest_familiar: bool | None = None
        self.file_frames = file_frames  # a file's length in frames (None: a camera or stream, which does not end)
        self.unsure: Counter = Counter()  # unfamiliar picks and put-backs: counted apart, never in a basket
        self.withheld: Counter = Counter()  # events not sent: dropped by policy, end of file, under the floor
        self.shelf, self.schedule = shelf, schedule  # where an action was and what it held (None: not told)
        self.baskets = Baskets()
        self.frame_ts: dict[int, float] = {}
        self.frame_motion: dict[int, dict[str, tuple[float, float]]] = {}  # zone -> (motion share, x) per frame
        self.now_ts: float | None = None  # the latest frame's time
        self.visits: dict[int, _Visit] = {}
        self.shelf_x: float | None = None  # where the shelf moved in the last second (the annotated video's "touching")
        self.shelf_x_frame = 0
        self.actions_seen: Counter = Counter()
        self.picks = self.putbacks = 0
        self.final_baskets: dict[int, dict[str, int]] = {}
        self.happenings: deque[Happening] = deque(maxlen=8)  # the latest picks and put-backs, for the annotated video
        # The hands going into the shelf as reported: (start, end, shopper) of each reach and hand-in-shelf segment,
        # so that what a disturbance took is the shopper's whose hand went in (a passer-by can stand nearer by then).
        self.hands_in: deque[tuple[int, int, int]] = deque(maxlen=256)

    @property
    def guarded(self) -> bool:
        return self.guard is not None

    def saw(self, frame: Frame, fg: Foreground) -> None:
        """Remember when each frame was taken (segments carry their times) and where the shelf moved."""
        self.frame_ts[frame.index] = frame.ts
        self.now_ts = frame.ts
        self.frame_ts.pop(frame.index - 10 * int(self.fps) * 60, None)  # ten minutes of timestamps is plenty
        self.frame_motion.pop(frame.index - 10 * int(self.fps) * 60, None)
        self.frame_score.pop(frame.index - 10 * int(self.fps) * 60, None)
        moved = {z: (share, x) for z, share in fg.zones.items() if share > 0 and (x := fg.zone_x.get(z)) is not None}
        if moved:
            self.frame_motion[frame.index] = moved
        xs = [x for x in fg.zone_x.values() if x is not None]
        if xs:
            self.shelf_x, self.shelf_x_frame = float(statistics.mean(xs)), frame.index
        elif frame.index - self.shelf_x_frame > self.fps:  # a still hand in the shelf is still there for a moment
            self.shelf_x = None

    def shoppers_left(self, gone: list[int]) -> None:
        for shopper in gone:
            final = self.baskets.leave(shopper)
            if final is not None:
                self.final_baskets[shopper] = final
                self.emitter.emit("basket", ts=self._now(), shopper=shopper, items=final, reason="left",
                                  confidence=1.0)  # fmt: skip
            if shopper in self.visits and self.visits[shopper].left_at is None:
                self.visits[shopper].left_at = self.now_ts if self.now_ts is not None else time.time()

    def scored(self, index: int, reading: Reading) -> None:
        """The familiarity guard's reading of a scored frame."""
        self.frame_score[index] = reading.score
        self.latest_familiar = reading.familiar

    def familiar_over(self, spans: list[tuple[int, int]]) -> bool | None:
        """Whether the scored frames of the spans [start, end), judged as one window, were familiar; None without a
        guard. Fewer of them than the guard's window: with the frames scored just before the first of them, up to a
        window (a single short stretch is then judged by the window that ends with it, as the guard judges a frame;
        what happened between two spans stays out), back to the last gap, where the guard's window starts afresh.
        Where none of them was scored (a still picture carried on), the latest verdict stands."""
        if self.guard is None:
            return None
        frames = {i for a, b in spans for i in range(max(0, a), b) if i in self.frame_score}
        if not frames:
            return self.latest_familiar is not False
        i = min(frames)
        while len(frames) < self.guard.window and i - 1 in self.frame_score:
            i -= 1
            frames.add(i)
        return self.guard.familiar(sum(self.frame_score[i] for i in frames) / len(frames))

    def _familiar_change(self, change: ShelfChange) -> bool | None:
        """A pick or put-back is as familiar as what it took from the action model: the hand's visits into the shelf.
        What the shopper did between visits (looking at a product) and the detector's recount of the shelf at rest are
        not the model's to vouch for. `hands` holds the frames the label came out on; with the model's delay, a label
        out at frame t is about frame t - delay and was made from the frames between. Without recorded visits (a
        caller that does not say), the frames of its whole disturbance."""
        if change.hands:
            return self.familiar_over([(a - self.delay, b) for a, b in change.hands])
        since = change.since if change.since is not None else change.frame
        return self.familiar_over([(since, change.frame + 1)])

    def _hand_owner(self, change: ShelfChange) -> int | None:
        """The shopper credited with most of the hands that went into the shelf during the change's disturbance, if
        still in view; None where no reported reach or hand-in-shelf overlaps them (then: the one nearest the change).
        `hands` holds the frames the label came out on, about `delay` frames after the frames it describes."""
        overlap: Counter = Counter()
        for a, b in change.hands:
            for start, end, shopper in self.hands_in:
                overlap[shopper] += max(0, min(b - self.delay, end) - max(a - self.delay, start))
        present = [(n, shopper) for shopper, n in overlap.items() if n > 0 and shopper in self.shoppers.present]
        return max(present)[1] if present else None

    def _send(self, kind: str, familiar: bool | None, **fields: object) -> bool:
        """Emit an action, pick or put-back unless the policy drops what is unfamiliar; True if it went out."""
        if familiar is False and self.policy == "drop":
            self.withheld[f"{kind}_unfamiliar"] += 1
            return False
        self.emitter.emit(kind, familiar=familiar, **fields)
        return True

    def actions(self, segments: list[ActionSegment]) -> None:
        for seg in segments:
            if seg.label == Action.NO_ACTION or seg.confidence < self.min_confidence:
                continue
            familiar = self.familiar_over([(seg.start, seg.end + self.delay)])
            self.actions_seen[ACTION_CLASSES[seg.label]] += 1
            # The shopper nearest to where the shelf moved during this action; where it did not move, or for a look
            # at the shelf (which moves nothing on it: motion there is someone else's, or noise), the one standing
            # closest to the shelf's front. Not where the shelf moved last: by the time an action is reported, that
            # can be another shopper's, or a moment of noise long before.
            motion = self._motion(seg) if seg.label != Action.INSPECT_SHELF else None
            zone_moved, x_moved = motion if motion else (None, None)
            nearest = self.shoppers.nearest(x_moved, self._front(zone_moved))
            zone, x = self._where(seg, motion, nearest.centre[0] if nearest else None)
            sku, sure = self._product(seg, zone, x)
            start_ts, end_ts = self._time_of(seg.start), self._time_of(seg.end - 1)
            self._send("action", familiar, ts=end_ts, action=ACTION_CLASSES[seg.label], start=seg.start, end=seg.end,
                       start_ts=start_ts, end_ts=end_ts, confidence=round(seg.confidence, 4),
                       shopper=nearest.id if nearest else None, zone=zone, sku=sku,
                       sku_confidence=None if sku is None else round(sure, 4))  # fmt: skip
            if nearest is not None and seg.label in INTO_SHELF:
                self.hands_in.append((seg.start, seg.end, nearest.id))
            if nearest is not None and familiar is not False:  # what is unfamiliar makes no visit
                self._visited(nearest.id, seg, zone, sku, start_ts.timestamp(), end_ts.timestamp())

    def changes(self, changes: list[ShelfChange]) -> None:
        # A pick and a put-back of one SKU in one recount: a unit taken and put back (edge.shelf), one fact the shelf
        # at rest showed; the end-of-file rule for put-backs (a hand still over the shelf) does not split it.
        taken_back = {(c.sku, c.frame) for c in changes if c.kind == "pick"}
        for change in changes:
            credited = self._hand_owner(change)
            if credited is None:
                nearest = self.shoppers.nearest(change.x, change.y)
                credited = nearest.id if nearest else None
            if change.kind == "pick":
                owner = credited if credited is not None else NOBODY
            else:
                owner = self.baskets.owner_of_putback(change.sku, credited, self.shoppers.present)
                # A put-back of an item nobody was seen taking still counts for the shelf, but is nobody's: no
                # basket goes below zero (a checkout cross-check would read a negative count as nonsense). With
                # only the detector to vouch for it, one it is less sure of than its floor is not reported.
                if owner is None and change.confidence < self.detector_floor:
                    self.withheld["putback_under_floor"] += 1
                    continue
                last_second = self.file_frames and change.frame >= self.file_frames - END_OF_FILE_S * self.fps
                if last_second and (change.sku, change.frame) not in taken_back:
                    self.withheld["putback_end_of_file"] += change.quantity
                    continue
            when = self._time_of(change.frame)
            familiar = self._familiar_change(change)
            # The visit is the credited shopper's even where the basket is nobody's: they did put a product back.
            visitor = owner if owner not in (None, NOBODY) else credited
            if visitor is not None and familiar is not False:
                product = self._visit(visitor, when.timestamp()).products.setdefault(change.sku, _Product(change.zone))
                if change.kind == "pick":
                    product.picked += change.quantity
                else:
                    product.put_back += change.quantity
            self._send(change.kind, familiar, ts=when, sku=change.sku, quantity=change.quantity, shopper=owner,
                       frame=change.frame, confidence=round(change.confidence, 4), zone=change.zone)  # fmt: skip
            # Shown when it is reported (the recount settles it a moment after the hand left the shelf).
            self.happenings.append(Happening(self.now_ts if self.now_ts is not None else when.timestamp(), change.kind,
                                             change.sku, owner or None))  # fmt: skip
            if familiar is False:  # no sure fact: counted apart, never in a basket
                self.unsure[change.kind] += change.quantity
                continue
            if change.kind == "pick":
                self.picks += change.quantity
            else:
                self.putbacks += change.quantity
            if owner is None:
                continue
            items = self.baskets.apply(owner, change.kind, change.sku, change.quantity)
            self.emitter.emit("basket", ts=when, shopper=owner, items=items, reason="change",
                              confidence=round(change.confidence, 4))  # fmt: skip
        self._send_visits()

    def finish(self) -> None:
        """The source ended or the agent stops: every visit still open goes out (`end`: the shopper was still there)."""
        self._send_visits(everyone=True)

    def _visit(self, shopper: int, ts: float) -> _Visit:
        visit = self.visits.get(shopper)
        if visit is None or (visit.left_at is not None and shopper in self.shoppers.present):
            if visit is not None:  # a shopper id seen again after leaving: their earlier visit is over
                self._send_visit(shopper, visit, "left")
            visit = self.visits[shopper] = _Visit(ts, ts)
        return visit

    def _visited(
        self, shopper: int, seg: ActionSegment, zone: str | None, sku: str | None, start: float, end: float
    ) -> None:
        visit = self._visit(shopper, start)
        visit.start, visit.end = min(visit.start, start), max(visit.end, end)
        visit.actions += 1
        visit.reported = True
        if zone is not None and zone not in visit.zones:
            visit.zones.append(zone)
        seconds = (seg.end - seg.start) / self.fps
        if seg.label == Action.INSPECT_SHELF:
            visit.inspect_shelf_s += seconds
        if sku is not None:
            product = visit.products.setdefault(sku, _Product(zone))
            if seg.label in INTO_SHELF and visit.previous not in INTO_SHELF:
                product.reached += 1
            elif seg.label == Action.INSPECT_PRODUCT:
                product.inspected += 1
                product.inspect_s += seconds
        visit.previous = seg.label

    def _send_visits(self, everyone: bool = False) -> None:
        """A leaving shopper's visit goes out once the shelf has been recounted (their last picks are in it), or
        after SETTLE_WAIT_S."""
        settled = self.shelf is None or not any(s.disturbed for s in self.shelf.states)
        now = self.now_ts if self.now_ts is not None else time.time()
        for shopper, visit in list(self.visits.items()):
            if everyone or (visit.left_at is not None and (settled or now - visit.left_at > SETTLE_WAIT_S)):
                self._send_visit(shopper, visit, "left" if visit.left_at is not None else "end")

    def _send_visit(self, shopper: int, visit: _Visit, reason: str) -> None:
        del self.visits[shopper]
        if not visit.reported:  # no reported (familiar) shelf action: nobody was surely at the shelf
            self.withheld["visit_without_action"] += 1
            return
        # Picked or put back first, then the most handled: what a funnel needs most comes first.
        ranked = sorted(visit.products.items(), key=lambda kv: (-(kv[1].picked + kv[1].put_back),
                        -kv[1].inspected, -kv[1].reached, kv[0]))  # fmt: skip
        products = [VisitProduct(sku=sku, zone=p.zone, reached=p.reached, inspected=p.inspected,
                                 inspect_s=round(p.inspect_s, 2), picked=p.picked, put_back=p.put_back,
                                 outcome=p.outcome)  # type: ignore[arg-type]
                    for sku, p in ranked]  # fmt: skip
        start, end = from_epoch(visit.start), from_epoch(visit.end)
        fields = dict(shopper=shopper, start_ts=start, end_ts=end, dwell_s=round(visit.end - visit.start, 2),
                      zones=visit.zones[:MAX_VISIT_ZONES], inspect_shelf_s=round(visit.inspect_shelf_s, 2),
                      actions=visit.actions, reason=reason)  # fmt: skip
        ts = from_epoch(max(self.now_ts if self.now_ts is not None else visit.end, visit.end))
        parts = visit_parts(products, fields, ts)
        for n, part in enumerate(parts, 1):
            numbered = {"part": n, "parts": len(parts)} if len(parts) > 1 else {}
            self.emitter.emit("visit", ts=ts, products=part, familiar=True if self.guarded else None, **numbered,
                              **fields)  # fmt: skip

    def present_baskets(self) -> dict[int, dict[str, int]]:
        """The baskets of the shoppers in view, for the annotated video."""
        return {s: self.baskets.snapshot(s) for s in self.shoppers.present}

    def open_baskets(self) -> dict[int, dict[str, int]]:
        """Every basket: those of shoppers who left and those still open."""
        return {**self.final_baskets, **{s: self.baskets.snapshot(s) for s in list(self.baskets.items)}}

    def _motion(self, seg: ActionSegment) -> tuple[str, float] | None:
        """The zone that moved most during the segment and where along it (frame pixels); None where none moved."""
        moved: Counter = Counter()
        xs: dict[str, list[float]] = {}
        for i in range(seg.start, seg.end):
            for zone, (share, x) in self.frame_motion.get(i, {}).items():
                moved[zone] += share
                xs.setdefault(zone, []).append(x)
        if not moved:
            return None
        zone = moved.most_common(1)[0][0]
        return zone, float(statistics.median(xs[zone]))

    def _front(self, zone: str | None) -> float | None:
        """A zone's front edge in the picture (its lowest point); of every zone, the lowest, for None."""
        if self.shelf is None or not self.shelf.states:
            return None
        return max(front_edge(s.zone) for s in self.shelf.states if zone in (None, s.zone.name))

    def _where(
        self, seg: ActionSegment, motion: tuple[str, float] | None, shopper_x: float | None
    ) -> tuple[str | None, float | None]:
        """The zone an action was at and where along it (frame pixels): the zone that moved most during the
        segment; with no motion in any (a shopper looking at the shelf), the zone in front of the shopper."""
        if self.shelf is None or not self.shelf.states:
            return None, None
        if motion is not None:
            return motion
        zones = [s.zone for s in self.shelf.states]
        if shopper_x is None or len(zones) == 1:
            return zones[0].name, None
        return min(zones, key=lambda z: abs(statistics.mean(p[0] for p in z.polygon) - shopper_x)).name, None

    def _product(self, seg: ActionSegment, zone: str | None, x: float | None) -> tuple[str | None, float]:
        """The product involved and how sure: the SKU seen in a hand at the zone's edge during an inspection or a
        retract; the product slot nearest the hand's motion for a reach or a hand in the shelf."""
        if self.shelf is None or zone is None:
            return None, 0.0
        state = next(s for s in self.shelf.states if s.zone.name == zone)
        if seg.label in IN_HAND and self.schedule is not None:
            seen: dict[str, list[float]] = {}
            for _, found in self.schedule.between(seg.start, seg.end):
                for d in found:
                    if self.shelf.in_hand(state.zone, d):
                        seen.setdefault(d.sku, []).append(d.confidence)
            if not seen:
                return None, 0.0
            sku, confs = max(seen.items(), key=lambda kv: sum(kv[1]))
            if len(confs) < MIN_SIGHTINGS:
                return None, 0.0
            share = len(confs) / sum(len(c) for c in seen.values())  # another SKU seen too: less sure
            return sku, float(statistics.mean(confs)) * share
        if seg.label in INTO_SHELF and x is not None and state.units:
            unit = min(state.units, key=lambda u: abs((u.box[0] + u.box[2]) / 2 - x))
            distance = abs((unit.box[0] + unit.box[2]) / 2 - x)
            if distance > self.shelf.near:
                return None, 0.0
            return unit.sku, unit.confidence * (1 - distance / self.shelf.near)
        return None, 0.0

    def _now(self) -> datetime:
        return from_epoch(self.now_ts if self.now_ts is not None else time.time())

    def _time_of(self, frame: int) -> datetime:
        return from_epoch(self.frame_ts.get(frame, self.now_ts if self.now_ts is not None else time.time()))
