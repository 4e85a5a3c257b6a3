"""What happens in a synthetic video, decided before a pixel is drawn.

Each shopper follows a grammar of the six classes: walk in (no action), maybe inspect the shelf, reach,
hand in shelf, retract (holding a product or empty-handed), maybe inspect the product, then either put
it in the cart (no action) or carry it back (reach, hand in shelf, retract empty), and finally walk out.
A shopper is a sequence of phases; each phase moves the body and hands from one keypose to the next and
carries the action label for its frames, so the labels are exact by construction.

Only one shopper acts at a time (others may walk or wait), which keeps one class per frame as in MERL
Shopping. Item events (take, return, into the cart) are planned with the phases and make the ledger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from edge.classes import Action
from training.synth.catalog import CATALOG
from training.synth.presets import Preset
from training.synth.scene import Geometry, Slot


@dataclass(frozen=True)
class Look:
    shirt: tuple[int, int, int]
    hair: tuple[int, int, int]
    skin: tuple[int, int, int]
    cap: tuple[int, int, int] | None
    long_sleeves: bool
    coat: bool = False  # a padded winter coat: a broader, longer torso
    backpack: tuple[int, int, int] | None = None  # worn on the back, seen behind the shoulders


@dataclass(frozen=True)
class Body:
    """A person's proportions, in pixels."""

    head_r: float
    shoulder_w: float  # half the shoulder width
    upper_arm: float
    forearm: float
    hand_r: float

    @property
    def reach(self) -> float:
        return 0.97 * (self.upper_arm + self.forearm)


@dataclass(frozen=True)
class Keypose:
    body: tuple[float, float]
    angle: float  # facing direction in image coordinates; -pi/2 faces the shelf (up)
    hands: tuple[tuple[float, float], tuple[float, float]]  # left, right
    head_yaw: float = 0.0


@dataclass(frozen=True)
class Phase:
    label: Action
    start: int
    end: int  # exclusive
    a: Keypose
    b: Keypose
    swing: float = 0.0  # arm swing while walking, pixels
    scan: float = 0.0  # head turning along the shelf, radians
    sway: float = 0.0  # body drifting along the shelf, pixels
    wiggle: float = 0.0  # hand searching in the shelf, pixels
    spin: float = 0.0  # product turned in the hand, radians
    period: float = 30.0  # frames per cycle of the modulations above
    offset: float = 0.0  # phase of the modulations


@dataclass(frozen=True)
class ItemEvent:
    frame: int  # the item is in its new place from this frame on
    item: int
    kind: Literal["take", "return", "cart"]
    shopper: int
    hand: int


@dataclass
class Person:
    id: int
    look: Look
    body: Body
    phases: list[Phase] = field(default_factory=list)
    passerby: bool = False
    has_cart: bool = True

    @property
    def start(self) -> int:
        return self.phases[0].start

    @property
    def end(self) -> int:
        return self.phases[-1].end


@dataclass(frozen=True)
class Item:
    id: int
    sku: int
    slot: int
    position: int  # index into the slot's positions


@dataclass
class VideoPlan:
    people: list[Person]
    items: list[Item]
    events: list[ItemEvent]


def unit_vectors(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Forward and to-the-right vectors of a person facing `angle`."""
    f = np.array([math.cos(angle), math.sin(angle)])
    return f, np.array([-f[1], f[0]])


SIDES = (-1.0, 1.0)  # left hand, right hand along the right vector


def rest_hands(body: tuple[float, float], angle: float, dims: Body) -> tuple[tuple[float, float], ...]:
    f, r = unit_vectors(angle)
    c = np.asarray(body)
    return tuple(tuple(c + s * r * dims.shoulder_w * 1.15 + f * dims.shoulder_w * 0.12) for s in SIDES)


def shoulder(body: tuple[float, float], angle: float, dims: Body, hand: int) -> np.ndarray:
    _, r = unit_vectors(angle)
    return np.asarray(body) + SIDES[hand] * r * dims.shoulder_w * 0.85


def random_look(rng: np.random.Generator, palette: str = "a") -> Look:
    """How a person is dressed. Store A's shoppers wear shirts in ten colours, a quarter of them a cap; store B's
    (`palette="b"`) come in from the cold: coats in other colours, most with a woollen hat, some with a
    backpack."""
    if palette == "b":
        return _winter_look(rng)
    shirts = [
        (40, 40, 160),
        (150, 80, 30),
        (60, 120, 60),
        (30, 30, 30),
        (200, 200, 200),
        (40, 120, 200),
        (130, 60, 130),
        (90, 90, 90),
        (20, 60, 110),
        (170, 160, 60),
    ]
    hairs = [(20, 20, 25), (30, 50, 80), (60, 90, 140), (140, 150, 160), (40, 40, 40), (80, 120, 170)]
    skins = [(150, 180, 225), (110, 145, 195), (80, 110, 160), (60, 80, 120), (170, 195, 235)]
    jitter = rng.integers(-15, 16, size=3)
    shirt = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(shirts[rng.integers(len(shirts))], jitter, strict=True))
    cap = None
    if rng.random() < 0.25:
        cap = tuple(int(v) for v in rng.integers(30, 230, size=3))
    return Look(
        shirt=shirt,  # type: ignore[arg-type]
        hair=hairs[rng.integers(len(hairs))],
        skin=skins[rng.integers(len(skins))],
        cap=cap,  # type: ignore[arg-type]
        long_sleeves=bool(rng.random() < 0.5),
    )


def _winter_look(rng: np.random.Generator) -> Look:
    coats = [
        (35, 30, 25),
        (30, 45, 95),
        (95, 85, 40),
        (50, 50, 140),
        (120, 160, 190),
        (25, 25, 70),
        (140, 110, 90),
        (60, 140, 210),
        (100, 40, 40),
        (75, 95, 85),
    ]
    hairs = [(35, 75, 145), (20, 20, 25), (110, 150, 190), (45, 45, 50), (60, 110, 200)]
    skins = [(150, 180, 225), (110, 145, 195), (80, 110, 160), (60, 80, 120), (170, 195, 235)]
    jitter = rng.integers(-20, 21, size=3)
    coat = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(coats[rng.integers(len(coats))], jitter, strict=True))
    hat = tuple(int(v) for v in rng.integers(20, 240, size=3)) if rng.random() < 0.6 else None
    backpack = tuple(int(v) for v in rng.integers(20, 200, size=3)) if rng.random() < 0.35 else None
    return Look(
        shirt=coat,  # type: ignore[arg-type]
        hair=hairs[rng.integers(len(hairs))],
        skin=skins[rng.integers(len(skins))],
        cap=hat,  # type: ignore[arg-type]
        long_sleeves=True,
        coat=True,
        backpack=backpack,  # type: ignore[arg-type]
    )


def random_body(rng: np.random.Generator, unit: float) -> Body:
    s = rng.uniform(0.9, 1.1) * unit
    return Body(
        head_r=19 * s,
        shoulder_w=40 * s,
        upper_arm=rng.uniform(58, 64) * s,
        forearm=rng.uniform(56, 62) * s,
        hand_r=7.5 * s,
    )


class _ShopperPlanner:
    """Appends phases for one person, keeping the current keypose and the time."""

    def __init__(self, person: Person, t: int, pose: Keypose, rng: np.random.Generator, fps: float, tempo: float):
        self.person, self.t, self.pose, self.rng = person, t, pose, rng
        self.fps, self.tempo = fps, tempo

    def frames(self, lo: float, hi: float) -> int:
        """A duration drawn in [lo, hi] seconds, scaled by this shopper's tempo; at least 3 frames."""
        return max(3, round(self.rng.uniform(lo, hi) * self.tempo * self.fps))

    def go(self, label: Action, n: int, to: Keypose | None = None, **mods: float) -> Phase:
        target = to if to is not None else self.pose
        # Turn the short way round, so that a shopper never spins on the spot.
        turn = math.remainder(target.angle - self.pose.angle, math.tau)
        target = replace(target, angle=self.pose.angle + turn)
        phase = Phase(label, self.t, self.t + n, self.pose, target, offset=float(self.rng.uniform(0, math.tau)), **mods)
        self.person.phases.append(phase)
        self.t += n
        self.pose = target
        return phase


def _standing(body: tuple[float, float], angle: float, dims: Body, yaw: float = 0.0) -> Keypose:
    return Keypose(body, angle, rest_hands(body, angle, dims), yaw)  # type: ignore[arg-type]


def _with_hand(pose: Keypose, hand: int, point: np.ndarray | tuple[float, float]) -> Keypose:
    hands = list(pose.hands)
    hands[hand] = (float(point[0]), float(point[1]))
    return replace(pose, hands=tuple(hands))  # type: ignore[arg-type]


def plan_video(
    geom: Geometry, slots: tuple[Slot, ...], preset: Preset, rng: np.random.Generator, frame_count: int, fps: float
) -> VideoPlan:
    items = [
        Item(len_i, s.sku, si, k)
        for len_i, (si, s, k) in enumerate((si, s, k) for si, s in enumerate(slots) for k in range(len(s.positions)))
    ]
    # Where each item is while planning: occupant[(slot, position)] = item id, or None once taken.
    occupant: dict[tuple[int, int], int | None] = {(it.slot, it.position): it.id for it in items}
    events: list[ItemEvent] = []
    people: list[Person] = []
    u = geom.unit
    t = 0
    if rng.random() < preset.empty_gap_prob:
        t = int(rng.integers(round(0.5 * fps), round(3 * fps)))
    free_from = 0  # the first frame at which the next shopper may act
    previous_x: float | None = None
    while t < frame_count:
        person = Person(len(people) + 1, random_look(rng, preset.store.shoppers), random_body(rng, u))
        people.append(person)
        last_action_end, stand_x = _plan_shopper(
            person, t, free_from, previous_x, geom, slots, items, occupant, events, preset, rng, fps
        )
        free_from = last_action_end
        previous_x = stand_x
        if rng.random() < preset.overlap_prob:
            # The next shopper is already walking in while this one finishes.
            t = max(t + 1, last_action_end - int(rng.integers(round(0.5 * fps), round(2 * fps))))
        else:
            t = person.end
            if rng.random() < preset.empty_gap_prob:
                t += int(rng.integers(round(1 * fps), round(5 * fps)))
    _plan_passersby(people, geom, preset, rng, frame_count, fps)
    events.sort(key=lambda e: (e.frame, e.item))
    return VideoPlan(people, items, events)


def _plan_shopper(
    person: Person,
    t0: int,
    free_from: int,
    avoid_x: float | None,
    geom: Geometry,
    slots: tuple[Slot, ...],
    items: list[Item],
    occupant: dict[tuple[int, int], int | None],
    events: list[ItemEvent],
    preset: Preset,
    rng: np.random.Generator,
    fps: float,
) -> tuple[int, float]:
    """Plan one shopper's visit from t0; returns the end of their last action and where they stood."""
    u = geom.unit
    dims = person.body
    tempo = float(rng.uniform(*preset.tempo))
    body_y = geom.shelf_edge + float(rng.uniform(38, 50)) * u
    margin = dims.shoulder_w + 12 * u
    # Shoppers act where the camera sees them; they walk in and out across the edges of its view.
    left, right = geom.visible_x(body_y)
    middle = (left + right) / 2
    stand_x = float(rng.uniform(left + margin, right - margin))
    if avoid_x is not None and abs(stand_x - avoid_x) < 0.3 * geom.width:
        # Keep clear of the shopper who is still there.
        stand_x = float(
            np.clip(avoid_x + (0.35 if avoid_x < middle else -0.35) * geom.width, left + margin, right - margin)
        )
    # Most shoppers come in from the nearer side of the view.
    nearer_left = stand_x < middle
    from_left = nearer_left if rng.random() < 0.75 else not nearer_left
    start_x = left - 1.5 * dims.shoulder_w if from_left else right + 1.5 * dims.shoulder_w
    walk_speed = float(rng.uniform(4.0, 6.5)) * u * 30.0 / fps  # pixels per frame
    p = _ShopperPlanner(person, t0, _standing((start_x, body_y), 0.0 if from_left else math.pi, dims), rng, fps, tempo)
    swing = 7 * u

    def walk_to(x: float, angle: float) -> None:
        n = max(3, round(abs(x - p.pose.body[0]) / walk_speed))
        p.go(Action.NO_ACTION, n, _standing((x, body_y), angle, dims), swing=swing, period=0.9 * fps)

    walk_to(stand_x, p.pose.angle)
    p.go(Action.NO_ACTION, p.frames(0.25, 0.5), _standing(p.pose.body, -math.pi / 2, dims))  # face the shelf
    if p.t < free_from:  # wait for the shopper before to finish
        p.go(Action.NO_ACTION, free_from - p.t + p.frames(0.1, 0.5))
    last_action_end = p.t
    for _ in range(int(rng.integers(2, 6))):
        target = _choose_target(p.pose.body[0], body_y, dims, slots, occupant, rng, geom)
        if target is None:
            break
        slot_i, pos_i, hand = target
        side = SIDES[hand]
        unit_xy = np.asarray(slots[slot_i].positions[pos_i])
        want_x = float(np.clip(unit_xy[0] - side * dims.shoulder_w * 0.8, left + margin, right - margin))
        if abs(want_x - p.pose.body[0]) > 4 * u:
            walk_to(want_x, -math.pi / 2)
            p.go(Action.NO_ACTION, p.frames(0.1, 0.4))
        if rng.random() < 0.6:
            p.go(
                Action.INSPECT_SHELF,
                p.frames(1.0, 4.0),
                scan=float(rng.uniform(0.5, 0.9)),
                sway=float(rng.uniform(3, 9)) * u,
                period=float(rng.uniform(1.2, 2.4)) * fps,
            )
            p.go(Action.NO_ACTION, p.frames(0.1, 0.5))
        stand = p.pose
        take = occupant[(slot_i, pos_i)] is not None and rng.random() >= preset.no_take_prob
        item_id = occupant[(slot_i, pos_i)]
        _reach_and_grasp(p, stand, hand, unit_xy, slots[slot_i].sku, dims, u)
        if take and item_id is not None:
            occupant[(slot_i, pos_i)] = None
            events.append(ItemEvent(p.t, item_id, "take", person.id, hand))
            held = _hold_pose(stand, hand, dims)
            p.go(Action.RETRACT_FROM_SHELF, p.frames(0.3, 0.7), held)
            if rng.random() < 0.75:
                p.go(
                    Action.INSPECT_PRODUCT,
                    p.frames(1.0, 3.5),
                    _inspect_pose(stand, hand, dims, slots[slot_i].sku, u),
                    spin=float(rng.uniform(0.6, 1.4)),
                    period=float(rng.uniform(1.0, 2.0)) * fps,
                )
            if rng.random() < preset.putback_prob:
                p.go(Action.NO_ACTION, p.frames(0.1, 0.4), held)
                _reach_and_grasp(p, stand, hand, unit_xy, slots[slot_i].sku, dims, u, release=(item_id, events))
                occupant[(slot_i, pos_i)] = item_id
                p.go(Action.RETRACT_FROM_SHELF, p.frames(0.3, 0.7), stand)
            else:
                f, r = unit_vectors(stand.angle)
                cart_point = (
                    np.asarray(stand.body) - f * dims.shoulder_w * 1.1 + r * SIDES[hand] * dims.shoulder_w * 0.6
                )
                p.go(Action.NO_ACTION, p.frames(0.4, 0.8), _with_hand(stand, hand, cart_point))
                events.append(ItemEvent(p.t, item_id, "cart", person.id, hand))
                p.go(Action.NO_ACTION, p.frames(0.3, 0.6), stand)
        else:
            p.go(Action.RETRACT_FROM_SHELF, p.frames(0.3, 0.7), stand)
        last_action_end = p.t
        p.go(Action.NO_ACTION, p.frames(0.2, 1.5))
    exit_x = left - 1.5 * dims.shoulder_w if p.pose.body[0] < middle else right + 1.5 * dims.shoulder_w
    exit_angle = math.pi if exit_x < p.pose.body[0] else 0.0
    p.go(Action.NO_ACTION, p.frames(0.25, 0.5), _standing(p.pose.body, exit_angle, dims))
    walk_to(exit_x, exit_angle)
    return last_action_end, stand_x


def _reach_and_grasp(
    p: _ShopperPlanner,
    stand: Keypose,
    hand: int,
    unit_xy: np.ndarray,
    sku: int,
    dims: Body,
    u: float,
    release: tuple[int, list[ItemEvent]] | None = None,
) -> None:
    """Reach to the unit's place, then search in the shelf; with `release`, leave that item there."""
    lean = float(p.rng.uniform(8, 18)) * u
    f, _ = unit_vectors(stand.angle)
    body = tuple(np.asarray(stand.body) + f * lean)
    sh = shoulder(body, stand.angle, dims, hand)  # type: ignore[arg-type]
    direction = (unit_xy - sh) / max(1e-6, float(np.linalg.norm(unit_xy - sh)))
    extent = max(CATALOG[sku].size) * u
    # The hand grips the near side of the product so that the product sits where it stood on the shelf.
    grip = unit_xy - direction * 0.45 * extent
    other = 1 - hand
    reached = replace(
        stand,
        body=body,
        hands=tuple((float(grip[0]), float(grip[1])) if i == hand else stand.hands[other] for i in range(2)),
    )  # type: ignore[arg-type]
    p.go(Action.REACH_TO_SHELF, p.frames(0.3, 0.7), reached)
    n = p.frames(0.25, 1.2)
    if release is not None:
        item_id, events = release
        events.append(ItemEvent(p.t + max(1, n // 2), item_id, "return", p.person.id, hand))
    p.go(
        Action.HAND_IN_SHELF,
        n,
        reached,
        wiggle=float(p.rng.uniform(1.5, 4.0)) * u,
        period=float(p.rng.uniform(0.4, 0.8)) * p.fps,
    )


def _hold_pose(stand: Keypose, hand: int, dims: Body) -> Keypose:
    f, r = unit_vectors(stand.angle)
    point = np.asarray(stand.body) + f * 0.3 * dims.reach + r * SIDES[hand] * 0.55 * dims.shoulder_w
    return _with_hand(stand, hand, point)


def _inspect_pose(stand: Keypose, hand: int, dims: Body, sku: int, u: float) -> Keypose:
    """The product in front of the chest, held by one hand and steadied by the other."""
    f, r = unit_vectors(stand.angle)
    extent = max(CATALOG[sku].size) * u
    held = np.asarray(stand.body) + f * 0.24 * dims.reach + r * SIDES[hand] * 0.15 * dims.shoulder_w
    centre = held + f * 0.45 * extent
    other = centre + r * SIDES[1 - hand] * (0.5 * extent + 3 * u)
    pose = _with_hand(stand, hand, held)
    return replace(_with_hand(pose, 1 - hand, other), head_yaw=0.0)


def _choose_target(
    x: float,
    body_y: float,
    dims: Body,
    slots: tuple[Slot, ...],
    occupant: dict[tuple[int, int], int | None],
    rng: np.random.Generator,
    geom: Geometry,
) -> tuple[int, int, int] | None:
    """A slot within a few steps, its front-most unit still there and within arm's reach."""
    candidates = []
    for si, slot in enumerate(slots):
        present = [k for k in range(len(slot.positions)) if occupant[(si, k)] is not None]
        k = present[0] if present else 0  # an empty slot can still be reached into
        ux, uy = slot.positions[k]
        # The shopper leans in by up to 8 px (at 480 lines) and stands beside the slot.
        depth = body_y - 8 * geom.unit - uy
        if math.hypot(0.2 * dims.shoulder_w, depth) > dims.reach * 0.95:
            continue
        weight = math.exp(-abs(ux - x) / (0.35 * geom.width)) * (1.0 if present else 0.05)
        candidates.append((si, k, weight))
    if not candidates:
        return None
    w = np.array([c[2] for c in candidates])
    si, k, _ = candidates[int(rng.choice(len(candidates), p=w / w.sum()))]
    hand = 1 if rng.random() < 0.6 else 0  # more right-handed shoppers
    return si, k, hand


def _plan_passersby(
    people: list[Person], geom: Geometry, preset: Preset, rng: np.random.Generator, frame_count: int, fps: float
) -> None:
    """People crossing the aisle at the bottom of the view: motion that is no shopper's action."""
    expected = preset.passersby_per_min * frame_count / (60 * fps)
    u = geom.unit
    for _ in range(int(rng.poisson(expected))):
        person = Person(
            len(people) + 1, random_look(rng, preset.store.shoppers), random_body(rng, u), passerby=True, has_cart=False
        )
        top, bottom = geom.visible_y()
        y = top + float(rng.uniform(0.86, 0.97)) * (bottom - top)
        left, right = geom.visible_x(y)
        from_left = bool(rng.random() < 0.5)
        x0, x1 = (left - 60 * u, right + 60 * u) if from_left else (right + 60 * u, left - 60 * u)
        angle = 0.0 if from_left else math.pi
        speed = float(rng.uniform(2.5, 4.5)) * u * 30.0 / fps
        n = max(3, round(abs(x1 - x0) / speed))
        t = int(rng.integers(0, max(1, frame_count - n // 2)))
        a = _standing((x0, y), angle, person.body)
        b = _standing((x1, y), angle, person.body)
        person.phases.append(
            Phase(
                Action.NO_ACTION, t, t + n, a, b, swing=8 * u, period=0.8 * fps, offset=float(rng.uniform(0, math.tau))
            )
        )
        people.append(person)
