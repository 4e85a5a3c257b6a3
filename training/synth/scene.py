"""The store as the overhead camera sees it: a shelf along the top of the floor plan, its front edge at
`shelf_edge`, product slots along it (each a column of units from the front edge backwards, or several columns
side by side), and the floor below where shoppers stand. Lengths are in floor-plan pixels; `unit` is one pixel
at 480 lines of store A's camera.

The floor plan is as large as the picture. Store A's camera looks straight down at it, so plan and picture are
one. Another store's camera is tilted and turned (`Store.tilt`, `Store.roll_deg`): the picture shows the
quadrilateral `view` of the plan, and `camera` maps plan pixels to picture pixels (a homography: a plane seen
through a tilted lens), which the renderer warps every frame with and the labels are projected through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.scene import DEMO_SHELF_FRACTION
from training.synth.catalog import CATALOG
from training.synth.presets import STORE_A, Store

Point = tuple[float, float]


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int
    scale: float = 1.0  # the store's camera scale (`Store.camera_scale`, sampled for this video)
    edge_fraction: float = DEMO_SHELF_FRACTION  # of the plan's height: store A's shelf (edge.scene)
    view: tuple[Point, Point, Point, Point] | None = None  # the plan seen: top-left, top-right, bottom-right, -left

    @property
    def unit(self) -> float:
        return self.height / 480.0 * self.scale

    @property
    def shelf_edge(self) -> float:
        return self.edge_fraction * self.height

    @property
    def camera(self) -> np.ndarray | None:
        """Plan pixels -> picture pixels (3x3), or None where plan and picture are one."""
        if self.view is None:
            return None
        picture = np.float32([(0, 0), (self.width, 0), (self.width, self.height), (0, self.height)])
        return cv2.getPerspectiveTransform(np.float32(self.view), picture).astype(np.float64)

    def to_plan(self, x: float, y: float) -> Point:
        """The plan point seen at picture point (x, y)."""
        if self.view is None:
            return x, y
        p = cv2.perspectiveTransform(np.float64([[[x, y]]]), np.linalg.inv(self.camera))[0, 0]
        return float(p[0]), float(p[1])

    def visible_x(self, y: float) -> tuple[float, float]:
        """The stretch of plan row `y` the camera sees (all of it for store A)."""
        if self.view is None:
            return 0.0, float(self.width)
        xs = []
        for (x1, y1), (x2, y2) in zip(self.view, self.view[1:] + self.view[:1], strict=True):
            if min(y1, y2) <= y <= max(y1, y2) and y1 != y2:
                xs.append(x1 + (x2 - x1) * (y - y1) / (y2 - y1))
        if len(xs) < 2:
            return self.width / 2, self.width / 2
        return min(xs), max(xs)

    def visible_y(self) -> tuple[float, float]:
        """The plan rows the camera sees at every x of its middle: from the view's lower top corner to its higher
        bottom corner."""
        if self.view is None:
            return 0.0, float(self.height)
        tl, tr, br, bl = self.view
        return max(tl[1], tr[1]), min(br[1], bl[1])

    def shelf_outline(self) -> list[Point]:
        """The shelf's outline in the picture (the plan's band above `shelf_edge`, cut to the picture): what an
        installer draws as the box's shelf zone."""
        corners = [(0.0, 0.0), (float(self.width), 0.0), (float(self.width), self.shelf_edge), (0.0, self.shelf_edge)]
        if self.view is None:
            return corners
        seen = cv2.perspectiveTransform(np.float64([corners]), self.camera)[0].astype(np.float32)
        picture = np.float32([(0, 0), (self.width, 0), (self.width, self.height), (0, self.height)])
        _, inside = cv2.intersectConvexConvex(seen, picture)
        return [(round(float(x), 1), round(float(y), 1)) for x, y in inside.reshape(-1, 2)]


def make_geometry(width: int, height: int, store: Store, rng: np.random.Generator) -> Geometry:
    """The picture's geometry for one video of `store`: store A's camera draws nothing from `rng` (its videos
    stay what they were before other stores existed)."""
    if store == STORE_A:
        return Geometry(width, height)
    scale = float(rng.uniform(*store.camera_scale))
    tilt = float(rng.uniform(*store.tilt))
    roll = math.radians(float(rng.uniform(*store.roll_deg)))
    if not store.has_camera_model:
        return Geometry(width, height, scale, store.shelf_edge)
    # The picture's preimage on the plan: a trapezoid wider at the top (farther away) by `tilt`, turned by the
    # roll, as large as `zoom` allows while it stays on the plan.
    cx, cy = width / 2, height / 2
    zoom = store.zoom
    while True:
        half_h = zoom * height / 2
        top, bottom = zoom * width / 2, zoom * width / 2 / tilt
        corners = [(-top, -half_h), (top, -half_h), (bottom, half_h), (-bottom, half_h)]
        c, s = math.cos(roll), math.sin(roll)
        view = tuple((cx + x * c - y * s, cy + x * s + y * c) for x, y in corners)
        if all(0 <= x <= width and 0 <= y <= height for x, y in view):
            break
        zoom *= 0.98
    return Geometry(width, height, scale, store.shelf_edge, view)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Slot:
    sku: int  # index into CATALOG
    positions: tuple[tuple[float, float], ...]  # unit centres, front row (nearest the edge) first


def make_layout(geom: Geometry, rng: np.random.Generator, store: Store = STORE_A) -> tuple[Slot, ...]:
    """Every SKU at least once (in a random order), then random repeats while the shelf has room; a product up
    to `store.wide_facing` pixels wide gets `store.facings` units side by side in its slot."""
    u = geom.unit
    gap = store.slot_gap * u
    order = list(rng.permutation(len(CATALOG)))
    order += list(rng.integers(0, len(CATALOG), size=len(CATALOG)))
    slots: list[Slot] = []
    # Only the stretch of shelf the camera sees, front to back, is stocked.
    back, front = 0.5 * geom.shelf_edge, geom.shelf_edge
    left = max(geom.visible_x(back)[0], geom.visible_x(front)[0])
    right = min(geom.visible_x(back)[1], geom.visible_x(front)[1])
    x = left + 10 * u
    for sku_index in order:
        w, h = (s * u for s in CATALOG[sku_index].size)
        facings = store.facings if CATALOG[sku_index].size[0] <= store.wide_facing else 1
        width = facings * w + (facings - 1) * 2 * u
        if x + width > right - 10 * u:
            continue  # a narrower product later in the order may still fit
        depth = store.rows[0] if CATALOG[sku_index].size[1] <= 34 else store.rows[1]
        y0 = geom.shelf_edge - 4 * u - h / 2
        columns = [x + w / 2 + f * (w + 2 * u) for f in range(facings)]
        positions = tuple((cx, y0 - k * (h + 4 * u)) for k in range(depth) for cx in columns)
        slots.append(Slot(int(sku_index), positions))
        x += width + gap
    return tuple(slots)
