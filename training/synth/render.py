"""Draws a planned video frame by frame and reports, for each frame, exactly what it drew.

A frame goes: the shelf image (floor, shelf, products still on it; redrawn only when an item moves) ->
a promotion spinner -> each person in view (cart and its items, then the person, then what they hold),
drawn into the frame and into a coverage mask -> a ceiling lamp -> the camera (its tilt and roll where the
store has them, `scene.Geometry.camera`; shake), blur, lighting, noise. Everything is drawn on the floor plan;
the annotation is made from the same geometry and goes through the same camera, so it matches the pixels.
What the store looks like (floor, shelf, lights, shoppers' clothes, carts) is the preset's `Store`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from training.labels import FrameRecord, ProductBox, ShopperPose
from training.synth.catalog import CATALOG, Sprite, render_sprite
from training.synth.presets import Preset, Store
from training.synth.scene import Geometry, Slot
from training.synth.script import Body, Person, Phase, VideoPlan, shoulder, unit_vectors

AA = cv2.LINE_AA
CART_SCALE = 0.7


def min_jerk(p: float) -> float:
    """Human point-to-point movements follow a minimum-jerk profile: slow start, fast middle, slow end."""
    return p * p * p * (10 - 15 * p + 6 * p * p)


@dataclass(frozen=True)
class Pose:
    body: np.ndarray
    angle: float
    hands: np.ndarray  # (2, 2), already within arm's reach
    elbows: np.ndarray  # (2, 2)
    head_yaw: float
    spin: float  # rotation of a held product, radians


def pose_at(person: Person, phase: Phase, t: int) -> Pose:
    n = max(1, phase.end - phase.start)
    e = min_jerk((t - phase.start) / n)
    a, b = phase.a, phase.b
    body = np.asarray(a.body) + (np.asarray(b.body) - np.asarray(a.body)) * e
    angle = a.angle + (b.angle - a.angle) * e
    hands = np.asarray(a.hands) + (np.asarray(b.hands) - np.asarray(a.hands)) * e
    yaw = a.head_yaw + (b.head_yaw - a.head_yaw) * e
    w = math.tau * (t - phase.start) / max(1.0, phase.period) + phase.offset
    f, r = unit_vectors(angle)
    if phase.swing:
        hands = hands + np.outer([1.0, -1.0], f * phase.swing * math.sin(w))
    if phase.scan:
        yaw += phase.scan * math.sin(w)
    if phase.sway:
        shift = r * phase.sway * math.sin(0.5 * w)
        body, hands = body + shift, hands + shift
    if phase.wiggle:
        # Only the hand in the shelf searches: the one farthest from the body.
        far = int(np.argmax(np.linalg.norm(hands - body, axis=1)))
        hands[far] += phase.wiggle * np.array([math.sin(1.3 * w), math.cos(w)])
    spin = phase.spin * math.sin(w)
    elbows = np.zeros((2, 2))
    for i in range(2):
        hands[i], elbows[i] = _arm(shoulder(tuple(body), angle, person.body, i), hands[i], person.body, i, r)
    return Pose(body, angle, hands, elbows, yaw, spin)


def _arm(sh: np.ndarray, hand: np.ndarray, dims: Body, i: int, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clamp the hand to the arm's reach and place the elbow, as the overhead camera sees the arm.

    Seen from above, a hanging arm is foreshortened to a short stub and a reaching arm is nearly
    straight, so the elbow lies close to the shoulder-hand line with a slight outward bend.
    """
    d = hand - sh
    dist = float(np.linalg.norm(d))
    length = dims.upper_arm + dims.forearm
    if dist > length * 0.999:
        hand = sh + d * (length * 0.999 / dist)
        d, dist = hand - sh, length * 0.999
    outward = right * (-1.0 if i == 0 else 1.0)
    perp = np.array([-d[1], d[0]]) / dist if dist > 1e-6 else outward
    if float(perp @ outward) < 0:
        perp = -perp
    bulge = 0.18 * dims.upper_arm * math.sin(math.pi * min(1.0, dist / length))
    elbow = sh + d * (dims.upper_arm / length) + perp * bulge
    return hand, elbow


class _Pen:
    """Draws on the frame and, with the same strokes, on the coverage mask of things above the shelf."""

    def __init__(self, img: np.ndarray, mask: np.ndarray) -> None:
        self.img, self.mask = img, mask

    def line(self, a: np.ndarray, b: np.ndarray, colour: tuple[int, int, int], thickness: float) -> None:
        t = max(1, round(thickness))
        for canvas, c in ((self.img, colour), (self.mask, 255)):
            cv2.line(canvas, _fx(a), _fx(b), c, t, AA, shift=4)

    def circle(self, c: np.ndarray, r: float, colour: tuple[int, int, int]) -> None:
        for canvas, col in ((self.img, colour), (self.mask, 255)):
            cv2.circle(canvas, _fx(c), max(1, round(r * 16)), col, -1, AA, shift=4)

    def ellipse(self, c: np.ndarray, axes: tuple[float, float], angle: float, colour: tuple[int, int, int]) -> None:
        ax = (max(1, round(axes[0] * 16)), max(1, round(axes[1] * 16)))
        for canvas, col in ((self.img, colour), (self.mask, 255)):
            cv2.ellipse(canvas, _fx(c), ax, math.degrees(angle), 0, 360, col, -1, AA, shift=4)


def _fx(p: np.ndarray | tuple[float, float]) -> tuple[int, int]:
    return round(float(p[0]) * 16), round(float(p[1]) * 16)


class Renderer:
    def __init__(
        self,
        geom: Geometry,
        slots: tuple[Slot, ...],
        plan: VideoPlan,
        preset: Preset,
        rng: np.random.Generator,
        frame_count: int,
        fps: float,
    ) -> None:
        self.geom, self.slots, self.plan, self.fps = geom, slots, plan, fps
        self.frame_count = frame_count
        self.store = preset.store
        self.camera = geom.camera
        u = geom.unit
        self.sprites = [render_sprite(s, u) for s in CATALOG]
        self.cart_sprites = [render_sprite(s, u * CART_SCALE) for s in CATALOG]
        self.place: dict[int, tuple] = {it.id: ("shelf",) for it in plan.items}
        self.cart_items: dict[int, list[int]] = {}
        self._base = _floor_and_shelf(geom, slots, rng, preset.store)
        self._shelf_image: np.ndarray | None = None
        self._event_i = 0
        self._people = [p for p in plan.people if p.phases]
        self._starts = {id(p): [ph.start for ph in p.phases] for p in self._people}
        # Camera and scene effects, fixed per video.
        self.noise_sigma = float(rng.uniform(*preset.noise_sigma))
        self.blur_sigma = float(rng.uniform(*preset.blur_sigma))
        self.noise_bank = [
            rng.normal(0.0, self.noise_sigma, size=(geom.height, geom.width, 3)).astype(np.int16) for _ in range(6)
        ]
        self.noise_pick = rng.integers(0, len(self.noise_bank), size=frame_count)
        self.shake = _shake(rng, frame_count, preset.shake_px * u)
        self.motion_blur = rng.random(frame_count) < preset.motion_blur_prob
        period = rng.uniform(8, 20) * fps
        phase0 = rng.uniform(0, math.tau)
        t = np.arange(frame_count)
        self.gain = 1.0 + preset.light_drift * np.sin(math.tau * t / period + phase0)
        self.tint = (1.0 + rng.uniform(-preset.tint, preset.tint, size=3)) * np.asarray(preset.store.light_colour)
        self.occluder = _occluder(rng, geom) if rng.random() < preset.occluder_prob else None
        self.spinner = (
            (
                np.array(geom.to_plan(rng.choice([0.1, 0.9]) * geom.width, 0.9 * geom.height)),
                28 * u,
                float(rng.uniform(0.05, 0.2)) * rng.choice([-1, 1]),
            )
            if rng.random() < preset.spinner_prob
            else None
        )

    # -- per frame ------------------------------------------------------------------------------
    def frames(self) -> Iterator[tuple[np.ndarray, FrameRecord]]:
        for t in range(self.frame_count):
            yield self.render(t)

    def render(self, t: int) -> tuple[np.ndarray, FrameRecord]:
        self._apply_events(t)
        if self._shelf_image is None:
            self._shelf_image = self._draw_shelf()
        frame = self._shelf_image.copy()
        mask = np.zeros(frame.shape[:2], np.uint8)
        if self.spinner is not None:
            _draw_spinner(frame, *self.spinner, t)
        shoppers: list[ShopperPose] = []
        products: list[ProductBox] = []
        for person in self._people:
            phase = self._phase(person, t)
            if phase is None:
                continue
            pose = pose_at(person, phase, t)
            if person.has_cart:
                products += self._draw_cart(frame, person, pose)
            _draw_person(_Pen(frame, mask), person, pose)
            products += self._draw_held(frame, person, pose)
            seen = pose.body if self.camera is None else _project(self.camera, pose.body)
            if (
                0 <= seen[1] < self.geom.height
                and -person.body.shoulder_w < seen[0] < self.geom.width + person.body.shoulder_w
            ):
                head = pose.body + unit_vectors(pose.angle)[0] * 0.1 * person.body.shoulder_w
                shoppers.append(
                    ShopperPose(
                        id=person.id,
                        head=_pt(head),
                        hands=(_pt(pose.hands[0]), _pt(pose.hands[1])),
                        passerby=person.passerby,
                    )
                )
        cover = mask
        if self.occluder is not None:
            cover = _draw_occluder(frame, mask, self.occluder)
        products = self._shelf_boxes() + products
        products = [_with_visibility(p, cover) for p in products]
        frame, shift = self._camera(frame, t)
        if self.camera is None:
            record = FrameRecord(
                shoppers=[_shift_pose(s, shift) for s in shoppers],
                products=[b for b in (_shift_box(p, shift, self.geom) for p in products) if b is not None],
            )
        else:
            m = _translation(shift) @ self.camera
            record = FrameRecord(
                shoppers=[_project_pose(s, m) for s in shoppers],
                products=[b for b in (_project_box(p, m, self.geom) for p in products) if b is not None],
            )
        return frame, record

    def _phase(self, person: Person, t: int) -> Phase | None:
        if not person.phases[0].start <= t < person.phases[-1].end:
            return None
        i = bisect.bisect_right(self._starts[id(person)], t) - 1
        return person.phases[i]

    def _apply_events(self, t: int) -> None:
        events = self.plan.events
        while self._event_i < len(events) and events[self._event_i].frame <= t:
            ev = events[self._event_i]
            self._event_i += 1
            if ev.kind == "take":
                self.place[ev.item] = ("hand", ev.shopper, ev.hand)
            elif ev.kind == "return":
                self.place[ev.item] = ("shelf",)
            else:
                self.place[ev.item] = ("cart", ev.shopper)
                self.cart_items.setdefault(ev.shopper, []).append(ev.item)
            if ev.kind in ("take", "return"):
                self._shelf_image = None

    # -- drawing ----------------------------------------------------------------------------------
    def _draw_shelf(self) -> np.ndarray:
        img = self._base.copy()
        for it in self.plan.items:
            if self.place[it.id][0] == "shelf":
                x, y = self.slots[it.slot].positions[it.position]
                _paste(img, self.sprites[it.sku], np.array([x, y]), 0.0)
        return img

    def _shelf_boxes(self) -> list[ProductBox]:
        boxes = []
        for it in self.plan.items:
            if self.place[it.id][0] == "shelf":
                sp = self.sprites[it.sku]
                x, y = self.slots[it.slot].positions[it.position]
                h, w = sp.mask.shape
                x1, y1 = round(x - w / 2), round(y - h / 2)
                boxes.append(
                    ProductBox(sku=CATALOG[it.sku].id, box=(x1, y1, x1 + w, y1 + h), place="shelf", visible=1.0)
                )
        return boxes

    def _draw_held(self, frame: np.ndarray, person: Person, pose: Pose) -> list[ProductBox]:
        boxes = []
        for it in self.plan.items:
            place = self.place[it.id]
            if place[0] != "hand" or place[1] != person.id:
                continue
            hand = place[2]
            fore = pose.hands[hand] - pose.elbows[hand]
            fore = fore / max(1e-6, float(np.linalg.norm(fore)))
            extent = max(self.sprites[it.sku].mask.shape)
            centre = pose.hands[hand] + fore * 0.45 * extent
            rotation = pose.angle + math.pi / 2 + pose.spin
            box = _paste(frame, self.sprites[it.sku], centre, rotation)
            # The fingers stay on top of what they hold.
            cv2.circle(
                frame, _fx(pose.hands[hand]), round(person.body.hand_r * 0.7 * 16), person.look.skin, -1, AA, shift=4
            )
            if box is not None:
                boxes.append(
                    ProductBox(sku=CATALOG[it.sku].id, box=box, place="hand", shopper=person.id, hand=hand, visible=1.0)
                )
        return boxes

    def _draw_cart(self, frame: np.ndarray, person: Person, pose: Pose) -> list[ProductBox]:
        f, r = unit_vectors(pose.angle)
        sw = person.body.shoulder_w
        depth, width = 1.15 * sw, 1.5 * sw
        centre = pose.body - f * (0.95 * sw + depth / 2)
        corners = np.array(
            [centre + sx * r * width / 2 + sy * f * depth / 2 for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        )
        if self.store.cart == "trolley":
            _draw_trolley(frame, centre, corners, self.geom.unit)
        else:
            cv2.fillPoly(frame, [np.round(corners * 16).astype(np.int32)], (120, 120, 125), AA, shift=4)
            inner = centre + (corners - centre) * 0.88
            cv2.fillPoly(frame, [np.round(inner * 16).astype(np.int32)], (75, 75, 80), AA, shift=4)
            for k in range(1, 4):  # the wire grid
                a = inner[0] + (inner[1] - inner[0]) * k / 4
                b = inner[3] + (inner[2] - inner[3]) * k / 4
                cv2.line(frame, _fx(a), _fx(b), (140, 140, 145), 1, AA, shift=4)
            # The handle is the cart's edge nearest the shopper.
            cv2.line(
                frame, _fx(corners[0]), _fx(corners[1]), (30, 30, 30), max(1, round(3 * self.geom.unit)), AA, shift=4
            )
        boxes = []
        for k, item_id in enumerate(self.cart_items.get(person.id, [])):
            it = self.plan.items[item_id]
            col, row = k % 3, (k // 3) % 2
            spot = centre + r * (col - 1) * width * 0.28 + f * (row - 0.5) * depth * 0.4
            box = _paste(frame, self.cart_sprites[it.sku], spot, pose.angle + math.pi / 2 + 0.4 * k)
            if box is not None:
                boxes.append(ProductBox(sku=CATALOG[it.sku].id, box=box, place="cart", shopper=person.id, visible=1.0))
        return boxes

    def _camera(self, frame: np.ndarray, t: int) -> tuple[np.ndarray, tuple[float, float]]:
        dx, dy = (float(v) for v in self.shake[t])
        if self.camera is not None:
            m = _translation((dx, dy)) @ self.camera
            frame = cv2.warpPerspective(
                frame, m, (self.geom.width, self.geom.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        elif dx or dy:
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            frame = cv2.warpAffine(frame, m, (self.geom.width, self.geom.height), borderMode=cv2.BORDER_REFLECT)
        if self.motion_blur[t] and t > 0:
            v = self.shake[t] - self.shake[t - 1]
            length = int(min(9, 1 + 2 * round(float(np.hypot(*v)))))
            if length > 1:
                k = np.zeros((length, length), np.float32)
                cv2.line(k, (0, length // 2), (length - 1, length // 2), 1.0, 1)
                rot = cv2.getRotationMatrix2D(
                    ((length - 1) / 2, (length - 1) / 2), math.degrees(math.atan2(v[1], v[0])), 1.0
                )
                k = cv2.warpAffine(k, rot, (length, length))
                frame = cv2.filter2D(frame, -1, k / max(1e-6, k.sum()))
        if self.blur_sigma > 0.05:
            frame = cv2.GaussianBlur(frame, (0, 0), self.blur_sigma)
        lut = np.clip(np.arange(256)[:, None] * (self.gain[t] * self.tint)[None, :], 0, 255).astype(np.uint8)
        frame = cv2.LUT(frame, lut.reshape(1, 256, 3))
        noise = self.noise_bank[self.noise_pick[t]]
        frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        return frame, (dx, dy)


# -- helpers -----------------------------------------------------------------------------------------
def _pt(p: np.ndarray) -> tuple[float, float]:
    return round(float(p[0]), 1), round(float(p[1]), 1)


def _paste(frame: np.ndarray, sprite: Sprite, centre: np.ndarray, rotation: float) -> tuple[int, int, int, int] | None:
    """Alpha-blend a sprite rotated by `rotation` (radians) at `centre`; returns the drawn box, clipped."""
    img, mask = sprite.image, sprite.mask
    if abs(math.remainder(rotation, math.tau)) > 1e-3:
        h, w = mask.shape
        side = math.ceil(math.hypot(w, h)) + 2
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -math.degrees(rotation), 1.0)
        m[:, 2] += ((side - w) / 2, (side - h) / 2)
        img = cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(mask, m, (side, side), flags=cv2.INTER_LINEAR)
    h, w = mask.shape
    x1, y1 = round(float(centre[0]) - w / 2), round(float(centre[1]) - h / 2)
    fx1, fy1 = max(0, x1), max(0, y1)
    fx2, fy2 = min(frame.shape[1], x1 + w), min(frame.shape[0], y1 + h)
    if fx2 <= fx1 or fy2 <= fy1:
        return None
    sm = mask[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]
    si = img[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]
    roi = frame[fy1:fy2, fx1:fx2]
    alpha = sm.astype(np.float32)[..., None] / 255.0
    roi[:] = (si * alpha + roi * (1.0 - alpha)).astype(np.uint8)
    ys, xs = np.nonzero(sm > 127)
    if xs.size == 0:
        return None
    return fx1 + int(xs.min()), fy1 + int(ys.min()), fx1 + int(xs.max()) + 1, fy1 + int(ys.max()) + 1


def _draw_person(pen: _Pen, person: Person, pose: Pose) -> None:
    look, dims = person.look, person.body
    f, _ = unit_vectors(pose.angle)
    arm_colour = look.shirt if look.long_sleeves else look.skin
    if look.coat:  # padded: broader, and reaching further down the back
        pen.ellipse(pose.body - f * 0.12 * dims.shoulder_w, (dims.shoulder_w * 1.18, dims.shoulder_w * 0.62),
                    pose.angle + math.pi / 2, look.shirt)  # fmt: skip
    else:
        pen.ellipse(pose.body, (dims.shoulder_w * 1.05, dims.shoulder_w * 0.45), pose.angle + math.pi / 2, look.shirt)
    if look.backpack is not None:
        pen.ellipse(pose.body - f * 0.55 * dims.shoulder_w, (dims.shoulder_w * 0.62, dims.shoulder_w * 0.34),
                    pose.angle + math.pi / 2, look.backpack)  # fmt: skip
    for i in range(2):
        sh = shoulder(tuple(pose.body), pose.angle, dims, i)
        pen.line(sh, pose.elbows[i], look.shirt, dims.head_r * 0.75)
        pen.line(pose.elbows[i], pose.hands[i], arm_colour, dims.head_r * 0.55)
        pen.circle(pose.hands[i], dims.hand_r, look.skin)
    head = pose.body + f * 0.1 * dims.shoulder_w
    pen.circle(head, dims.head_r, look.hair)
    gaze = pose.angle + pose.head_yaw
    face = head + np.array([math.cos(gaze), math.sin(gaze)]) * dims.head_r * 0.62
    pen.ellipse(face, (dims.head_r * 0.42, dims.head_r * 0.28), gaze + math.pi / 2, look.skin)
    if look.cap is not None and look.coat:  # a woollen hat with a bobble
        pen.circle(head - np.array([math.cos(gaze), math.sin(gaze)]) * dims.head_r * 0.2, dims.head_r * 0.95, look.cap)
        pen.circle(head, dims.head_r * 0.32, tuple(min(255, c + 70) for c in look.cap))
    elif look.cap is not None:
        pen.circle(head - np.array([math.cos(gaze), math.sin(gaze)]) * dims.head_r * 0.1, dims.head_r * 0.85, look.cap)
        brim = head + np.array([math.cos(gaze), math.sin(gaze)]) * dims.head_r * 0.85
        pen.ellipse(brim, (dims.head_r * 0.6, dims.head_r * 0.3), gaze + math.pi / 2, look.cap)


def _floor_and_shelf(geom: Geometry, slots: tuple[Slot, ...], rng: np.random.Generator, store: Store) -> np.ndarray:
    h, w, u = geom.height, geom.width, geom.unit
    img = np.empty((h, w, 3), np.uint8)
    if store.floor == "planks":
        _planks(img, rng, u)
    else:
        floor = np.array(rng.integers(150, 200, size=3), dtype=np.float64)
        tile = max(8, round(rng.uniform(36, 56) * u))
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                img[ty : ty + tile, tx : tx + tile] = np.clip(floor + rng.normal(0, 4, size=3), 0, 255)
        for k in range(0, max(h, w), tile):
            cv2.line(img, (k, 0), (k, h), tuple(int(c) for c in floor * 0.8), 1)
            cv2.line(img, (0, k), (w, k), tuple(int(c) for c in floor * 0.8), 1)
    edge = round(geom.shelf_edge)
    if store.shelf == "dark":
        # Black powder-coated steel with a perforated back panel, a yellow price rail with black tags.
        surface = tuple(int(v) for v in rng.integers(48, 72, size=3))
        back, divider, rail_colour, tag = (150, 95, 40), (90, 90, 95), (30, 200, 235), (25, 25, 25)
    else:
        surface = tuple(int(v) for v in rng.integers(185, 225, size=3))
        back, divider, rail_colour, tag = (70, 70, 75), (150, 150, 155), (60, 60, 65), (235, 235, 235)
    img[:edge] = surface
    if store.shelf == "dark":
        for y in range(round(4 * u), edge, max(3, round(9 * u))):  # the perforation of the shelf's floor
            for x in range(round(4 * u), w, max(3, round(9 * u))):
                img[y, x] = (30, 30, 32)
    img[: max(2, round(6 * u))] = back  # the shelf's back panel
    for s in slots:  # slot dividers and price tags on the front rail
        half = CATALOG[s.sku].size[0] * u / 2 + 3.5 * u
        xs = [x for x, _ in s.positions]
        for bx in (min(xs) - half, max(xs) + half):
            cv2.line(img, (round(bx), 0), (round(bx), edge), divider, 1)
    rail = max(2, round(7 * u))
    img[edge - rail // 2 : edge + rail // 2 + 1] = rail_colour
    for s in slots:
        x = (s.positions[0][0] + max(p[0] for p in s.positions)) / 2
        cv2.rectangle(img, (round(x - 7 * u), edge - rail // 2), (round(x + 7 * u), edge + rail // 2), tag, -1)
    yy, xx = np.mgrid[0:h, 0:w]
    if store.lights == "strips":
        # Fluorescent tubes across the aisle: bright bands, darker between them and towards the sides.
        period = rng.uniform(0.3, 0.45) * h
        offset = rng.uniform(0, period)
        light = 0.8 + 0.2 * np.cos(math.tau * (yy - offset) / period) ** 2 - 0.25 * ((xx - w / 2) / w) ** 2
    else:
        # Lights over the aisle: brighter in the middle than at the corners.
        light = 1.0 - 0.25 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    return np.clip(img * light[..., None], 0, 255).astype(np.uint8)


def _planks(img: np.ndarray, rng: np.random.Generator, u: float) -> None:
    """A wooden floor: boards along the aisle, each its own shade of oak, with grain and dark joints."""
    h, w = img.shape[:2]
    base = np.array([55, 100, 150], np.float64) + rng.normal(0, 8, size=3)
    y = 0
    while y < h:
        board = max(6, round(rng.uniform(20, 28) * u))
        x = -round(rng.uniform(0, 200) * u)
        while x < w:
            length = max(20, round(rng.uniform(140, 280) * u))
            shade = np.clip(base * rng.uniform(0.8, 1.15) + rng.normal(0, 5, size=3), 0, 255)
            x1, x2 = max(0, x), min(w, x + length)
            if x2 > x1:
                img[y : y + board, x1:x2] = shade
                for _ in range(3):  # grain
                    gy = y + int(rng.integers(1, max(2, board - 1)))
                    cv2.line(
                        img, (x1, gy), (x2, gy + int(rng.integers(-1, 2))), tuple(float(c) * 0.85 for c in shade), 1
                    )
                cv2.line(img, (x1, y), (x1, y + board), tuple(float(c) * 0.55 for c in base), 1)
            x += length
        cv2.line(img, (0, y), (w, y), tuple(float(c) * 0.55 for c in base), 1)
        y += board


def _draw_trolley(frame: np.ndarray, centre: np.ndarray, corners: np.ndarray, u: float) -> None:
    """Store B's shopping trolley: a red plastic basket on wheels, solid sides, a long grey handle."""
    cv2.fillPoly(frame, [np.round(corners * 16).astype(np.int32)], (40, 40, 190), AA, shift=4)
    inner = centre + (corners - centre) * 0.8
    cv2.fillPoly(frame, [np.round(inner * 16).astype(np.int32)], (30, 30, 140), AA, shift=4)
    handle = corners[:2] + (corners[:2] - corners[2:][::-1]) * 0.12
    cv2.line(frame, _fx(handle[0]), _fx(handle[1]), (170, 170, 175), max(1, round(4 * u)), AA, shift=4)


def _translation(shift: tuple[float, float]) -> np.ndarray:
    return np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]], [0.0, 0.0, 1.0]])


def _project(m: np.ndarray, p: np.ndarray | tuple[float, float]) -> np.ndarray:
    x, y, z = m @ np.array([float(p[0]), float(p[1]), 1.0])
    return np.array([x / z, y / z])


def _project_pose(s: ShopperPose, m: np.ndarray) -> ShopperPose:
    move = lambda p: _pt(_project(m, p))  # noqa: E731
    return s.model_copy(update={"head": move(s.head), "hands": (move(s.hands[0]), move(s.hands[1]))})


def _project_box(p: ProductBox, m: np.ndarray, geom: Geometry) -> ProductBox | None:
    """The picture's box around the plan box seen through the camera, cut to the picture."""
    x1, y1, x2, y2 = p.box
    seen = np.array([_project(m, c) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))])
    box = (
        max(0, round(float(seen[:, 0].min()))),
        max(0, round(float(seen[:, 1].min()))),
        min(geom.width, round(float(seen[:, 0].max()))),
        min(geom.height, round(float(seen[:, 1].max()))),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return p.model_copy(update={"box": box})


def _shake(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    if amplitude <= 0:
        return np.zeros((n, 2))
    out = np.zeros((n, 2))
    v = np.zeros(2)
    for i in range(n):
        v = 0.85 * v + 0.15 * rng.normal(0, amplitude, size=2) * 2.5
        out[i] = v
    return np.round(out, 2)


@dataclass(frozen=True)
class _Lamp:
    """A ceiling lamp between camera and shelf: fixed, so its coverage is rasterised once per video."""

    alpha: np.ndarray  # float32 coverage (0-0.9) inside `box`, with a trailing axis for colour
    cover: np.ndarray  # uint8 coverage inside `box`, for product visibility
    rim: np.ndarray  # bool: the bright rim's pixels inside `box`
    box: tuple[int, int, int, int]  # x1, y1, x2, y2


def _occluder(rng: np.random.Generator, geom: Geometry) -> _Lamp:
    u = geom.unit
    centre = np.array(geom.to_plan(rng.uniform(0.1, 0.9) * geom.width, rng.uniform(0.05, 0.45) * geom.height))
    axes = (round(float(rng.uniform(25, 55)) * u * 16), round(float(rng.uniform(12, 25)) * u * 16))
    angle = math.degrees(float(rng.uniform(-0.5, 0.5)))
    lamp = np.zeros((geom.height, geom.width), np.uint8)
    cv2.ellipse(lamp, _fx(centre), axes, angle, 0, 360, 255, -1, AA, shift=4)
    rim = np.zeros_like(lamp)
    cv2.ellipse(rim, _fx(centre), axes, angle, 0, 360, 255, 1, AA, shift=4)
    x, y, w, h = cv2.boundingRect(np.maximum(lamp, rim))
    sl = np.s_[y : y + h, x : x + w]
    alpha = lamp[sl].astype(np.float32)[..., None] / 255.0 * 0.9
    return _Lamp(alpha, lamp[sl].copy(), rim[sl] > 127, (x, y, x + w, y + h))


def _draw_occluder(frame: np.ndarray, mask: np.ndarray, lamp: _Lamp) -> np.ndarray:
    """Dark, nearly opaque, with a bright rim; returns the coverage of people and lamp together."""
    x1, y1, x2, y2 = lamp.box
    roi = frame[y1:y2, x1:x2]
    roi[:] = (roi * (1 - lamp.alpha) + np.array([45, 45, 50], np.float32) * lamp.alpha).astype(np.uint8)
    roi[lamp.rim] = (200, 210, 215)
    cover = mask.copy()
    np.maximum(cover[y1:y2, x1:x2], lamp.cover, out=cover[y1:y2, x1:x2])
    return cover


def _draw_spinner(frame: np.ndarray, centre: np.ndarray, radius: float, speed: float, t: int) -> None:
    colours = [(40, 40, 220), (240, 240, 240), (30, 170, 240), (240, 240, 240)]
    for k, colour in enumerate(colours):
        start = math.degrees(speed * t) + 90 * k
        cv2.ellipse(
            frame, _fx(centre), (round(radius * 16), round(radius * 16)), 0, start, start + 90, colour, -1, AA, shift=4
        )


def _with_visibility(p: ProductBox, cover: np.ndarray) -> ProductBox:
    if p.place == "hand":
        return p  # drawn last, over the person holding it
    x1, y1, x2, y2 = (int(v) for v in p.box)
    region = cover[y1:y2, x1:x2]
    if region.size == 0:
        return p
    visible = round(1.0 - float(region.mean()) / 255.0, 2)
    return p.model_copy(update={"visible": visible})


def _shift_pose(s: ShopperPose, shift: tuple[float, float]) -> ShopperPose:
    dx, dy = shift
    if not (dx or dy):
        return s
    move = lambda p: (round(p[0] + dx, 1), round(p[1] + dy, 1))  # noqa: E731
    return s.model_copy(update={"head": move(s.head), "hands": (move(s.hands[0]), move(s.hands[1]))})


def _shift_box(p: ProductBox, shift: tuple[float, float], geom: Geometry) -> ProductBox | None:
    dx, dy = shift
    x1, y1, x2, y2 = p.box
    box = (
        max(0, round(x1 + dx)),
        max(0, round(y1 + dy)),
        min(geom.width, round(x2 + dx)),
        min(geom.height, round(y2 + dy)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return p.model_copy(update={"box": box})
