"""Item counting at the shelf: which product units left it and which came back.

Each shelf zone is recounted with the product detector once it has been quiet for a moment after a hand
was recognised at the shelf: a few detections, SAMPLES frames apart, are compared with the units the zone
held before. Counting the shelf at rest is what makes this robust: hands, arms and motion blur never hide
products while the count is taken, and a product only has to be recognised where the detector sees it best.

The zone keeps its units (SKU and box), not just counts per SKU, which is the light product tracker:
- a unit is still there while any sample shows a product on its place, even at the detector's lowest
  confidence or under another class: a product the detector grows unsure of is not a pick;
- a unit is new (a put-back) only when every sample shows it at the configured confidence on a free place;
- a unit gone or new counts only near where the hand was (the zone's motion while it was disturbed):
  a change across the shelf from the hand is the detector's noise, not the shopper;
- a hand takes or returns one product per visit (a reach into the shelf); of more units gone than that, those whose
  places changed most were taken (an emptied place against a neighbour half hidden by the product held over it);
- a unit still there at the recount, but missing from its place on the detections made while the hand was out of
  the shelf between two of its visits (retracting, looking at a product), was taken and put back: the shelf at
  rest cannot show a product that came back before the hand left it for good; where the stream ends first, it is
  back only if the hand had left the shelf, or detections with the hand out after a later visit showed it at its
  place again (a hand still in the shelf may be holding it there or have just let go: neither is counted);
- a unit gone or new counts only where the shelf's look changed since the last recount: a place that looks as it
  did then (normalised correlation, allowing for the camera's shake; each picture's look found in the other) holds
  what it held, whatever the detector says of it now (noise, blur and light drift make it lose and find units at
  rest);
- products in a hand at the shelf's edge are remembered from the detections made while a hand is at the
  shelf: one still in the hand after its last visit, while the action model saw a product looked at, left the shelf,
  even where the shelf cannot show it.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.classes import Action
from edge.config import Zone
from edge.detector import Detection
from edge.geometry import Box, iou, pixel_box, suppress_overlaps
from edge.scene import MASK_SIZE, Foreground
from edge.schedule import Look

SAMPLES = 3  # detections per recount
SPACING = 3  # frames between them
MOSTLY_INSIDE = 0.75  # of a box's area in the zone: a product on the shelf, not in a hand at its edge
SAME_PLACE = 0.3  # IoU at which two boxes are one product's place
HAND_BAND = 0.1  # of the frame height: how far outside a zone a product is still at the shelf's edge, in a hand
HELD_SIGHTINGS = 3  # sightings of one product in a hand after the last visit: a pick the shelf cannot show
# A pick seen only in a hand (the shelf showed no change) is less sure than a unit gone from the shelf: one
# product seen in a hand, never counted at rest.
CARRIED_AWAY_DISCOUNT = 0.8
NEAR_HAND = 0.15  # of the frame width: how far from the hand's motion a change may be
ACTIVE_COLUMN, ACTIVE_SHARE = 3, 0.1  # changed pixel-frames for a mask column to count as the hand's place
# A place's look at rest against the last recount's (normalised correlation of grey levels, the best over shifts of up
# to SHAKE of the frame height): at UNCHANGED or more nothing was taken from it or put on it. Gain and offset do not
# change it (light drift); a unit taken or returned does.
SHAKE = 0.015
UNCHANGED = 0.8
MIN_PATCH, MIN_CONTRAST = 6, 2.0  # pixels a side, and grey levels of spread: a place smaller or flatter says nothing
ADOPT_AFTER = 2  # a unit missing at this many recounts away from any hand leaves the zone's memory silently
# Detections in a row, made while a hand was out of the shelf between two visits, that miss a unit at its place (at
# any confidence): it was in the hand then. Three runs are six frames or more (the schedule's stride), not a flicker.
AWAY_RUNS = 3

# A hand at or in the shelf, or a product being looked at (held over the shelf's edge, often put straight back):
# no shelf recount while one is recognised.
AT_SHELF = {Action.REACH_TO_SHELF, Action.HAND_IN_SHELF, Action.RETRACT_FROM_SHELF, Action.INSPECT_PRODUCT}
# A hand going into the shelf: one visit, however the model splits it between reaching and being in the shelf.
INTO_SHELF = {Action.REACH_TO_SHELF, Action.HAND_IN_SHELF}


@dataclass(frozen=True)
class ShelfChange:
    kind: Literal["pick", "putback"]
    sku: str
    quantity: int
    zone: str
    x: float | None  # where along the shelf the product was (frame pixels)
    y: float  # the zone's front edge (its lowest point in the picture)
    frame: int
    confidence: float
    since: int | None = None  # the first frame of the disturbance it settles (the hand's visit began there or later)
    # The frames [start, end) a hand was recognised going into the shelf during that disturbance: all the count took
    # from the action model (that a hand was there, and how often); the count itself is the detector's, at rest.
    hands: tuple[tuple[int, int], ...] = ()


@dataclass
class Unit:
    """One product on the shelf, as the recounts saw it."""

    sku: str
    box: Box
    confidence: float
    misses: int = 0  # recounts in a row that did not see it, while no hand was near
    away: int = 0  # detections in a row that missed it while a hand was out of the shelf between visits
    was_away: bool = False  # away for AWAY_RUNS during this disturbance
    away_after: int = 0  # the hand visits of this disturbance before it was away: only a later one can bring it back
    back_runs: int = 0  # detections in a row, made while the hand was out after a later visit, showing it at its place
    clear_runs: int = 0  # detections in a row missing it, made while the hand was clear of the shelf (not retracting)
    came_back: bool = False  # back for AWAY_RUNS after a later visit: taken and put back, whatever follows

    def settled(self) -> None:
        """A recount kept it: what the disturbance showed of it is spent."""
        self.away, self.was_away, self.away_after, self.back_runs, self.came_back = 0, False, 0, 0, False
        self.clear_runs = 0


@dataclass
class _ZoneState:
    zone: Zone
    units: list[Unit] | None = None  # None until the first recount
    disturbed: bool = False
    since: int | None = None  # the frame the current disturbance began
    touched: bool = False  # a hand was recognised at the shelf during this disturbance
    quiet: int = 0
    hands: list[tuple[int, int]] = field(default_factory=list)  # frames [start, end) a hand was going into the shelf
    hand_visits: int = 0  # hands going into the shelf during this disturbance
    held: list[Detection] = field(default_factory=list)  # products seen in a hand at the shelf since the last visit
    looked_at: bool = False  # the action model saw a product inspected since the hand's last visit
    activity: np.ndarray = field(default_factory=lambda: np.zeros(MASK_SIZE[0], np.int64))  # per mask column
    samples: list[list[Detection]] = field(default_factory=list)
    views: list[np.ndarray] = field(default_factory=list)  # the samples' frames, grey uint8 (where given)
    rest: np.ndarray | None = None  # the shelf's look at the last recount: the mean of its samples' frames, grey


@dataclass
class _PendingLook:
    """Detections made on a frame, and what the labels of that frame said (see ShelfCounter._judge_looks)."""

    frame: int
    detections: list[Detection]
    scored: bool = False  # the action model scored the frame
    into: bool = False  # a hand going into the shelf, by any of its labels
    retract: bool = False  # an arm coming out of the shelf, by any of them


class ShelfCounter:
    def __init__(
        self,
        zones: list[Zone],
        quiet_frames: int,
        motion_fraction: float,
        min_confidence: float,
        frame_size: tuple[int, int],
        delay: int = 0,
        settle: int = 0,
    ) -> None:
        self.states = [_ZoneState(z) for z in zones]
        self.delay = delay  # the action model labels frame t - delay at frame t: a label is that late
        self.previous: int | None = None  # the action recognised on the frame before
        self.frame: int | None = None  # the frame being observed
        self.last_hand: int | None = None  # the last frame a hand was recognised going into the shelf
        self.settle = settle  # frames a change of action takes to become the label (edge.segments.Segmenter)
        self.looks: deque[_PendingLook] = deque()  # detections waiting for the labels of their frame
        self.quiet_frames, self.motion_fraction, self.min_confidence = quiet_frames, motion_fraction, min_confidence
        self.frame_size = frame_size
        width, height = frame_size
        self.near = NEAR_HAND * width
        self.column_px = width / MASK_SIZE[0]
        # Integral images of each zone, and of the zone grown by the hand band: how much of a box lies inside.
        self.inside_sums: dict[tuple[str, bool], np.ndarray] = {}
        reach = 2 * round(HAND_BAND * height) + 1
        for z in zones:
            m = np.zeros((height, width), np.uint8)
            cv2.fillPoly(m, [np.round(np.array(z.polygon)).astype(np.int32)], 1)
            self.inside_sums[(z.name, False)] = cv2.integral(m)
            self.inside_sums[(z.name, True)] = cv2.integral(cv2.dilate(m, np.ones((reach, reach), np.uint8)))

    def update(self, frame: int, fg: Foreground, action: int | None, look: Look) -> list[ShelfChange]:
        """One frame: the zones' motion (`fg`), the action recognised on it (None: nothing scored) and the frame's
        product detections (`look`: run if the schedule wanted them, or here when a recount needs them).
        Returns the picks and put-backs this frame settles."""
        hand_in = action in INTO_SHELF and self.previous not in INTO_SHELF
        self.previous = action
        self.frame = frame
        recount = self.observe(
            fg, busy=action in AT_SHELF, hand_in=hand_in, inspecting=action == Action.INSPECT_PRODUCT
        )
        if action in INTO_SHELF:
            self.last_hand = frame
            for s in self.states:
                if s.disturbed:
                    s.hands[-1:] = _extended(s.hands[-1:], frame)
        detections = look.detections() if recount or look.wanted else None
        if detections is not None:
            self.handled(detections)
            self.looks.append(_PendingLook(frame, detections))
        self._judge_looks(frame, action)
        return self.counted(frame, detections, look.image) if recount and detections is not None else []

    def _judge_looks(self, frame: int, action: int | None) -> None:
        """A look is judged by the labels of the frame it was made on: the label out `delay` frames later, and those
        out while a change of action could still be confirmed (`settle` frames more). Judged by the label out when
        it was made, a look at a hand already reaching back in (the product over its place) passed for one with the
        hand out of the shelf, and showed the unit back."""
        for waiting in self.looks:
            if waiting.frame + self.delay == frame:
                waiting.scored = action is not None
            if waiting.frame + self.delay <= frame:
                waiting.into |= action in INTO_SHELF
                waiting.retract |= action == Action.RETRACT_FROM_SHELF
        while self.looks and self.looks[0].frame + self.delay + self.settle <= frame:
            done = self.looks.popleft()
            if done.scored and not done.into:
                self.glimpsed(done.detections, clear=not done.retract)

    def observe(self, fg: Foreground, busy: bool = False, hand_in: bool = False, inspecting: bool = False) -> bool:
        """Follow each zone's activity; True when a recount wants a detection on this frame.

        `busy`: the action model sees a hand at the shelf or a product being handled there. A still hand
        inside a shelf is only a few pixels of motion, so the recognised action keeps a recount from
        counting around it. `hand_in`: a hand starts going into the shelf on this frame; a hand takes or returns
        one product per visit, which bounds what a recount may report. `inspecting`: the action model sees a
        product looked at in a hand.
        """
        want = False
        for s in self.states:
            name = s.zone.name
            if busy or fg.zones.get(name, 0.0) > self.motion_fraction:
                if not s.disturbed:
                    s.since = self.frame
                s.disturbed, s.quiet = True, 0
                s.touched = s.touched or busy
                s.hand_visits += hand_in
                if hand_in:
                    s.held.clear()
                    s.looked_at = False
                s.looked_at = s.looked_at or (inspecting and s.hand_visits > 0)
                if not self._first(s) or busy:
                    s.samples.clear()
                    s.views.clear()
                if name in fg.zone_columns:
                    s.activity += fg.zone_columns[name]
                continue
            s.quiet += 1
            if self._due(s) and (s.quiet - self._wait(s)) % SPACING == 0:
                want = True
        return want

    def _first(self, s: _ZoneState) -> bool:
        """The zone's first count, before any hand was seen at it: it learns the shelf and compares nothing, so it
        need not wait for a long quiet (on a busy or noisy shelf a hand could take a product before there is one):
        its samples are any quiet frames SPACING apart, kept across motion that is no hand at the shelf. Motion can
        only hide a product from a sample, and the first count keeps what most samples show."""
        return s.units is None and not s.hand_visits and not s.touched

    def _wait(self, s: _ZoneState) -> int:
        return SPACING if self._first(s) else self.quiet_frames

    def _due(self, s: _ZoneState) -> bool:
        return s.quiet >= self._wait(s) and (s.units is None or s.disturbed) and len(s.samples) < SAMPLES

    def inside(self, zone: Zone, d: Detection) -> bool:
        """Most of the box lies in the zone: a product held at the shelf's edge is in a hand, not on the shelf."""
        return self._share(zone, d, grown=False) >= MOSTLY_INSIDE

    def in_hand(self, zone: Zone, d: Detection) -> bool:
        """At the zone's edge but not on the shelf: a product in a hand that has just left (or is about to enter)
        the shelf; a product in a cart or a basket further back in the aisle is not."""
        return not self.inside(zone, d) and self._share(zone, d, grown=True) >= MOSTLY_INSIDE

    def _share(self, zone: Zone, d: Detection, grown: bool) -> float:
        sums = self.inside_sums[(zone.name, grown)]
        x1, y1, x2, y2 = pixel_box(d.box, self.frame_size)
        area = max(1, (x2 - x1) * (y2 - y1))
        return float(sums[y2, x2] - sums[y1, x2] - sums[y2, x1] + sums[y1, x1]) / area

    def handled(self, detections: list[Detection]) -> None:
        """A detection made while a hand is at the shelf or a product is being looked at: products in a hand,
        remembered until the next hand visit. A product that left the shelf in a hand and was not put back is
        a pick even where the shelf cannot show it (a product hidden behind a lamp, at the back of a slot)."""
        for s in self.states:
            if s.disturbed and s.hand_visits:
                s.held += [d for d in detections if d.confidence >= self.min_confidence and self.in_hand(s.zone, d)]

    def glimpsed(self, detections: list[Detection], clear: bool = True) -> None:
        """A detection made while no hand is in the shelf, during a disturbance a hand went into: which units are
        not at their place (nothing there at any confidence the detector reports) and which are (seen there on the
        shelf, at least as surely as a recount takes). A doubtful detection at a place says neither: the detector
        half-sees an empty place as often as a full one, and a product held over it is in a hand. Only a later visit
        can bring one back."""
        for s in self.states:
            if not (s.disturbed and s.hand_visits and s.units):
                continue
            found = [d for d in detections if self._share(s.zone, d, grown=False) > 0]
            units = [u.box for u in s.units]
            anything = iou(units, [d.box for d in found]).max(axis=1, initial=0) >= SAME_PLACE
            # On the shelf: a product held over its place, mostly past the shelf's edge, is in a hand, not back.
            on_shelf = [d.box for d in found if d.confidence >= self.min_confidence and self.inside(s.zone, d)]
            sure = iou(units, on_shelf).max(axis=1, initial=0)
            for u, there, doubt in zip(s.units, sure >= SAME_PLACE, anything, strict=True):
                if doubt and not there:
                    continue
                u.away = 0 if there else u.away + 1
                u.clear_runs = 0 if there else u.clear_runs + clear  # a retracting arm can hide a neighbour
                u.back_runs = u.back_runs + 1 if there and u.was_away and s.hand_visits > u.away_after else 0
                if u.away >= AWAY_RUNS and (not u.was_away or u.came_back):  # taken (again: one return is counted)
                    u.was_away, u.away_after, u.came_back = True, s.hand_visits, False
                u.came_back = u.came_back or u.back_runs >= AWAY_RUNS

    def counted(self, frame: int, detections: list[Detection], image: np.ndarray | None = None) -> list[ShelfChange]:
        """A detection made on a frame `observe` asked for (`image`: that frame, BGR); returns the changes it
        settles."""
        changes: list[ShelfChange] = []
        grey = None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for s in self.states:
            if not self._due(s):
                continue
            s.samples.append(_one_per_place([d for d in detections if self.inside(s.zone, d)]))
            if grey is not None:
                s.views.append(grey)
            if len(s.samples) == SAMPLES:
                changes += self._settle(s, frame)
        return changes

    def finish(self, frame: int, samples: list[list[Detection]], images: list[np.ndarray] | None = None,
               ) -> list[ShelfChange]:  # fmt: skip
        """The stream ends before a zone a hand went into was quiet again (a clip's last second): the zone is counted
        from the last few frames, SAMPLES of them SPACING apart, never from one. A hand may still hold a product over
        the shelf, so nothing new there is a put-back; a unit seen away from its place between the hand's visits is
        back only if the hand had left the shelf by the first of those frames, or detections made after a later visit
        showed it back (a hand still in it: taken, and not yet seen put back). `images`: those frames, BGR."""
        # The looks still waiting for labels take the last one, as the stream's last frames do (edge.action).
        for last in range(frame + 1, frame + 1 + self.delay + self.settle):
            self._judge_looks(last, self.previous)
        changes: list[ShelfChange] = []
        if len(samples) < SAMPLES:
            return changes
        # The hand's last label came `delay` frames late: it was about frame last_hand - delay.
        hand_gone = self.last_hand is None or self.last_hand - self.delay < frame - (SAMPLES - 1) * SPACING
        greys = [cv2.cvtColor(i, cv2.COLOR_BGR2GRAY) for i in images or []]
        for s in self.states:
            if s.units is not None and s.disturbed and s.hand_visits:
                s.samples = [_one_per_place([d for d in sample if self.inside(s.zone, d)]) for sample in samples]
                s.views = list(greys)
                changes += self._settle(s, frame, at_rest=False, hand_gone=hand_gone)
        return changes

    def _settle(self, s: _ZoneState, frame: int, at_rest: bool = True, hand_gone: bool = True) -> list[ShelfChange]:
        seen = _places(s.samples)
        front = front_edge(s.zone)
        # The shelf's look now, where every sample came with its frame.
        whole = bool(s.views) and len(s.views) == len(s.samples)
        view = np.mean(np.stack(s.views), axis=0, dtype=np.float32) if whole else None
        changes: list[ShelfChange] = []
        if s.units is None:  # the first count: what most samples agree on
            s.units = [Unit(p.sku, p.box, p.confidence) for p in seen if p.hits * 2 > len(s.samples)]
        else:
            # One product per hand visit: more units gone than that is the detector losing some (the most
            # confident ones are the ones taken), more new ones is the detector seeing double. No recognised hand
            # visit, no change: a shelf that looks different after someone only stood there is the detector's noise.
            visits = s.hand_visits
            units = sorted(s.units, key=lambda u: -u.confidence)
            same = iou([u.box for u in units], [p.box for p in seen]) >= SAME_PLACE  # (units, places)
            sure = np.array([p.hits == len(s.samples) and p.min_confidence >= self.min_confidence for p in seen], bool)
            surely_there = {id(u) for u, row in zip(units, same, strict=True) if (row & sure).any()}
            kept: list[Unit] = []
            back: list[Unit] = []  # seen at their place by this recount
            gone: list[tuple[float, Unit]] = []  # (how alike its place still looks, unit): could have been taken

            def lost(u: Unit) -> None:  # the detector lost it for now; missed at ADOPT_AFTER recounts, it leaves
                u.misses += 1
                if u.misses < ADOPT_AFTER:
                    kept.append(u)

            for u, still_there in zip(units, same.any(axis=1), strict=True):
                if still_there:
                    u.misses = 0
                    kept.append(u)
                    back.append(u)
                    continue
                handled = s.touched and u.confidence >= self.min_confidence and self._near_hand(s, u.box)
                likeness = self._likeness(s, view, u.box) if handled else None
                if handled and (likeness is None or likeness < UNCHANGED):
                    # A place too small or flat to tell ranks after every place seen to change.
                    gone.append((UNCHANGED if likeness is None else likeness, u))
                else:  # not where the hand was, or its place looks the same
                    lost(u)
            # More units gone than visits: the ones taken are those whose places changed most (an emptied place looks
            # nothing like a product), not the ones the detector was surest of: a neighbour half hidden by a product
            # held over the shelf, or by the arm, drops out of the detections too, but its place still half shows it.
            taken = 0
            for _, u in sorted(gone, key=lambda g: g[0]):  # stable: equally changed, the surer unit first
                if taken < visits:
                    taken += 1
                    changes.append(self._change("pick", u.sku, u.box, u.confidence, s, front, frame))
                else:
                    lost(u)
            # Back at its place, but seen away from it while the hand was out between visits: taken and put back,
            # which takes two of the visits. From a clip's last frames only once the hand has left the shelf, or
            # where detections made with the hand out after a later visit showed it back: a hand still in the shelf
            # may be holding the unit over its place or have just let go of it, which no frame tells apart.
            seen_away = [u for u in units if u.was_away and u.confidence >= self.min_confidence]
            in_hand = _one_per_visit([u for u in seen_away if self._near_hand(s, u.box)]) if s.touched else set()
            for u in back:
                if id(u) not in in_hand:
                    continue
                released = hand_gone or u.came_back
                held_since = u.away_after == s.hand_visits and id(u) not in surely_there
                if not at_rest and u.clear_runs >= AWAY_RUNS and (not released or held_since):
                    # Last seen away with the hand clear of the shelf. Away since the hand's last visit, and the
                    # shopper still there: what a clip's last frames show at its place, less than surely, is the held
                    # product or the detector's doubt. A later visit with the hand still in the shelf: the unit at
                    # its place may still be in the hand, and no frame shows the hand let go of it. Taken; a put-back
                    # nobody saw finish is not reported (as a put-back in a file's last second is not).
                    if taken < visits:
                        taken += 1
                        changes.append(self._change("pick", u.sku, u.box, u.confidence, s, front, frame))
                elif released and visits - taken >= 2:
                    taken += 1
                    visits -= 1
                    for kind in ("pick", "putback"):
                        changes.append(self._change(kind, u.sku, u.box, u.confidence, s, front, frame))  # type: ignore[arg-type]
            returned = 0
            for i in sorted(range(len(seen)), key=lambda i: -seen[i].confidence):
                p = seen[i]
                if not at_rest or same[:, i].any():
                    continue
                if not (p.hits == len(s.samples) and p.min_confidence >= self.min_confidence):
                    continue  # not sure: neither a put-back nor a unit yet
                if not s.touched or self._unchanged(s, view, p.box):
                    kept.append(Unit(p.sku, p.box, p.confidence))  # there all along, unseen by earlier counts
                elif returned < visits and self._near_hand(s, p.box):
                    returned += 1
                    changes.append(self._change("putback", p.sku, p.box, p.confidence, s, front, frame))
                    kept.append(Unit(p.sku, p.box, p.confidence))
            for u in kept:
                u.settled()
            s.units = kept
            if s.touched and not changes:
                changes += self._carried_away(s, front, frame)
        s.disturbed, s.touched, s.hand_visits = False, False, 0
        s.hands = []
        s.held.clear()
        s.looked_at = False
        s.activity[:] = 0
        s.samples.clear()
        s.views.clear()
        s.rest = view
        return _merged(changes)

    def _carried_away(self, s: _ZoneState, front: float, frame: int) -> list[ShelfChange]:
        """The shelf shows no change, but a product was seen in a hand after the hand's last visit to the shelf, and
        the action model saw the shopper look at a product then: two witnesses. The detector alone names a product
        in a hand that came back empty often enough (a fist at the shelf's edge) to make picks nobody made."""
        votes = Counter(d.sku for d in s.held)
        if not s.looked_at or not votes or votes.most_common(1)[0][1] < HELD_SIGHTINGS:
            return []
        sku = votes.most_common(1)[0][0]
        mine = [d for d in s.held if d.sku == sku]
        box = tuple(float(v) for v in np.mean([d.box for d in mine], axis=0))
        confidence = float(np.mean([d.confidence for d in mine])) * CARRIED_AWAY_DISCOUNT
        return [self._change("pick", sku, box, confidence, s, front, frame)]  # type: ignore[arg-type]

    def _unchanged(self, s: _ZoneState, view: np.ndarray | None, box: Box) -> bool:
        """The place looks as it did at the last recount: nothing was taken from it or put on it."""
        likeness = self._likeness(s, view, box)
        return likeness is not None and likeness >= UNCHANGED

    def _likeness(self, s: _ZoneState, view: np.ndarray | None, box: Box) -> float | None:
        """How alike the place looks now and at the last recount (None: no pictures, or too small or flat to tell).
        Its look then is found around it now, and its look now around it then, and the worse match counts: a box seen
        in one picture frames, in the other after the camera shook, part of the shelf's edge or of a neighbour, whose
        look did not change, so one direction alone can match the shelf's edge and miss that the product is gone."""
        if view is None or s.rest is None:
            return None
        shift = round(SHAKE * self.frame_size[1])
        both = [place_similarity(s.rest, view, box, shift), place_similarity(view, s.rest, box, shift)]
        said = [v for v in both if v is not None]
        return min(said) if said else None

    def _near_hand(self, s: _ZoneState, box: Box) -> bool:
        peak = int(s.activity.max())
        if peak < ACTIVE_COLUMN:
            return True  # the hand was recognised but hardly anything moved in the zone: no place to hold against
        lo = max(0, int((box[0] - self.near) / self.column_px))
        hi = int((box[2] + self.near) / self.column_px) + 1
        return bool(s.activity[lo:hi].max(initial=0) >= max(ACTIVE_COLUMN, ACTIVE_SHARE * peak))

    @staticmethod
    def _change(kind: Literal["pick", "putback"], sku: str, box: Box,
                confidence: float, s: _ZoneState, front: float, frame: int) -> ShelfChange:  # fmt: skip
        return ShelfChange(
            kind,
            sku,
            1,
            s.zone.name,
            (box[0] + box[2]) / 2,
            front,
            frame,
            float(np.clip(confidence, 0, 1)),
            s.since,
            tuple(s.hands),
        )

    def counts(self) -> dict[str, Counter]:
        return {s.zone.name: Counter(u.sku for u in s.units or []) for s in self.states}


def place_similarity(before: np.ndarray, after: np.ndarray, box: Box, shift: int) -> float | None:
    """How alike a place looks in two grey pictures: the normalised correlation of `after`'s patch in `box` with
    `before` around it, the best over shifts of up to `shift` pixels. None where the patch is too small or flat
    to tell (a correlation of noise)."""
    height, width = after.shape
    x1, y1, x2, y2 = pixel_box(box, (width, height))
    if x2 - x1 < MIN_PATCH or y2 - y1 < MIN_PATCH:
        return None
    patch = after[y1:y2, x1:x2]
    if float(patch.std()) < MIN_CONTRAST:
        return None
    around = before[max(0, y1 - shift) : min(height, y2 + shift), max(0, x1 - shift) : min(width, x2 + shift)]
    return float(cv2.matchTemplate(around, patch, cv2.TM_CCOEFF_NORMED).max())


@dataclass
class _Place:
    sku: str
    box: Box
    confidence: float  # mean over the samples that saw it
    min_confidence: float
    hits: int


def _places(samples: list[list[Detection]]) -> list[_Place]:
    """The product places the samples show: detections of one place across samples joined (any class; the
    class most confident overall names it)."""
    groups: list[list[Detection]] = []
    for sample in samples:
        taken: set[int] = set()
        for d in sorted(sample, key=lambda d: -d.confidence):
            best, best_iou = None, SAME_PLACE
            for i, overlap in enumerate(iou([g[0].box for g in groups], [d.box])[:, 0]):
                if i not in taken and overlap >= best_iou:
                    best, best_iou = i, overlap
            if best is None:
                groups.append([d])
                taken.add(len(groups) - 1)
            else:
                groups[best].append(d)
                taken.add(best)
    places = []
    for g in groups:
        votes: Counter = Counter()
        for d in g:
            votes[d.sku] += d.confidence
        sku = votes.most_common(1)[0][0]
        box = tuple(float(v) for v in np.mean([d.box for d in g], axis=0))
        confs = [d.confidence for d in g if d.sku == sku]
        places.append(_Place(sku, box, float(np.mean(confs)), float(min(confs)), len(g)))  # type: ignore[arg-type]
    return places


def _one_per_place(detections: list[Detection]) -> list[Detection]:
    """Products on a shelf stand side by side, not on top of each other: of boxes that overlap much (a second box
    shifted by half a product, one product named twice), the most confident one stays."""
    kept = suppress_overlaps([d.box for d in detections], [d.confidence for d in detections], SAME_PLACE)
    return [detections[i] for i in kept]


def _one_per_visit(away: list[Unit]) -> set[int]:
    """Of units seen away (surest first), the ids of those that can have been in the hand: a hand takes one product per
    visit, so of units first seen away after the same visit only one was taken, the one the detector is surest of: a
    unit it is less sure of drops out of its detections when an arm or a product held over the shelf passes near."""
    first: dict[int, Unit] = {}
    for u in away:
        first.setdefault(u.away_after, u)
    return {id(u) for u in first.values()}


def _merged(changes: list[ShelfChange]) -> list[ShelfChange]:
    """One event per SKU and kind (two units of one SKU taken at once: quantity 2)."""
    out: dict[tuple[str, str], ShelfChange] = {}
    for c in changes:
        k = (c.kind, c.sku)
        if k in out:
            o = out[k]
            confidence = (o.confidence * o.quantity + c.confidence) / (o.quantity + 1)
            out[k] = ShelfChange(c.kind, c.sku, o.quantity + 1, c.zone, o.x, o.y, o.frame, confidence, o.since, o.hands)
        else:
            out[k] = c
    return list(out.values())


def front_edge(zone: Zone) -> float:
    """A zone's front edge in the picture: its lowest point, where shoppers stand and hands come in."""
    return max(p[1] for p in zone.polygon)


def _extended(last: list[tuple[int, int]], frame: int) -> list[tuple[int, int]]:
    """The last span of hand frames grown by `frame` where it follows on, else that span and a new one."""
    if last and last[0][1] == frame:
        return [(last[0][0], frame + 1)]
    return [*last, (frame, frame + 1)]
