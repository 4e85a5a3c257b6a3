"""Geometry in frame pixels: boxes and polygons.

Boxes (x1, y1, x2, y2), vectorised: every pair of two box sets at once. The detector's own non-maximum suppression
(by IoU, per class) is OpenCV's, as ultralytics does it; the box functions serve the shelf, which compares product
places across recounts and keeps one product per place.

Polygons (shelf zones and their slots): what makes a drawn layout valid, in one place (`layout_problems`), for the
box config's schema and the zone editor alike.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
EPS = 1e-9  # no division by zero for degenerate boxes


def _as_array(boxes: Sequence[Box] | np.ndarray) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def intersections(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """(N, M) areas of intersection of every box of `a` with every box of `b`."""
    a, b = _as_array(a)[:, None, :], _as_array(b)[None, :, :]
    w = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    h = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    return w * h


def pixel_box(box: Box, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box as whole pixel coordinates inside a frame of `frame_size` (width, height): what slices an image."""
    width, height = frame_size
    x1, y1, x2, y2 = (int(np.clip(round(v), 0, lim)) for v, lim in zip(box, (width, height) * 2, strict=True))
    return x1, y1, x2, y2


def areas(boxes: Sequence[Box] | np.ndarray) -> np.ndarray:
    b = _as_array(boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def iou(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """(N, M) intersection over union."""
    inter = intersections(a, b)
    return inter / np.maximum(EPS, areas(a)[:, None] + areas(b)[None, :] - inter)


def overlap_of_smaller(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
    """(N, M) intersection over the smaller box's area: 1 when one box lies inside the other, whatever their sizes."""
    return intersections(a, b) / np.maximum(EPS, np.minimum(areas(a)[:, None], areas(b)[None, :]))


def suppress_overlaps(boxes: Sequence[Box] | np.ndarray, scores: Sequence[float], threshold: float) -> list[int]:
    """Greedy suppression by overlap-of-smaller: indices of the boxes kept, most confident first. A box is dropped
    when it overlaps a kept one by `threshold` or more (a box shifted half a product, one product named twice)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable: ties keep their order
    overlap = overlap_of_smaller(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if all(overlap[i, k] < threshold for k in kept):
            kept.append(i)
    return kept


# -- polygons: shelf zones and slots as an installer draws them ------------------------------------------------------
# One place for what makes a drawn layout valid: the box config's schema (`edge.config`) and the zone editor's API
# (`central.web.zones`) both ask `layout_problems`, so the page refuses exactly what `config validate` would.

Point = tuple[float, float]
AREA_MIN = 1.0  # square pixels: a polygon with less has no inside (all its corners on one line, say)


def polygon_area(polygon: Sequence[Point]) -> float:
    """The polygon's area (shoelace formula), whatever its orientation."""
    n = len(polygon)
    twice = sum(polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1] for i in range(n))
    return abs(twice) / 2


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    """p lies on segment ab (p is known to be collinear with it)."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_touch(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments ab and cd have a point in common (crossing, touching or overlapping)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return ((o1 == 0 and _on_segment(a, b, c)) or (o2 == 0 and _on_segment(a, b, d))
            or (o3 == 0 and _on_segment(c, d, a)) or (o4 == 0 and _on_segment(c, d, b)))  # fmt: skip


def segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments ab and cd cross properly: each passes through the other's inside (touching is not crossing)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    return o1 * o2 < 0 and o3 * o4 < 0


def self_crossing(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """The first two edges (by index, edge i runs from corner i to corner i+1) that cross or touch although they
    are not neighbours, or neighbours that fold back onto each other; None for a simple polygon."""
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            (a, b), (c, d) = edges[i], edges[j]
            if j == i + 1 or (i == 0 and j == n - 1):  # neighbours share a corner: only folding back is wrong
                shared, far1, far2 = (b, a, d) if j == i + 1 else (a, b, c)
                if (
                    _orient(shared, far1, far2) == 0
                    and (far2[0] - shared[0]) * (far1[0] - shared[0]) + (far2[1] - shared[1]) * (far1[1] - shared[1])
                    > 0
                ):
                    return i, j
                continue
            if segments_touch(a, b, c, d):
                return i, j
    return None


def point_inside(polygon: Sequence[Point], p: Point) -> int:
    """1 strictly inside, 0 on the boundary, -1 outside (even-odd rule, exact on integer pixels)."""
    n, inside = len(polygon), False
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if _orient(a, b, p) == 0 and _on_segment(a, b, p):
            return 0
        if (a[1] > p[1]) != (b[1] > p[1]):
            x = a[0] + (p[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if p[0] < x:
                inside = not inside
    return 1 if inside else -1


def _probes(polygon: Sequence[Point]) -> list[Point]:
    """Points that tell whether a polygon reaches into another: its corners and the middles of its edges."""
    n = len(polygon)
    middles = [((polygon[i][0] + polygon[(i + 1) % n][0]) / 2, (polygon[i][1] + polygon[(i + 1) % n][1]) / 2)
               for i in range(n)]  # fmt: skip
    return [*polygon, *middles]


def polygons_overlap(a: Sequence[Point], b: Sequence[Point]) -> bool:
    """Two simple polygons share some inside (sharing an edge or a corner is not overlapping: two shelves side by
    side may have one border). Edges that cross, or a corner or edge middle of one strictly inside the other; two
    polygons whose every corner lies on the other's border are the same polygon."""
    xa, ya = [p[0] for p in a], [p[1] for p in a]
    xb, yb = [p[0] for p in b], [p[1] for p in b]
    if max(xa) <= min(xb) or max(xb) <= min(xa) or max(ya) <= min(yb) or max(yb) <= min(ya):
        return False
    na, nb = len(a), len(b)
    for i in range(na):
        for j in range(nb):
            if segments_cross(a[i], a[(i + 1) % na], b[j], b[(j + 1) % nb]):
                return True
    if any(point_inside(b, p) == 1 for p in _probes(a)) or any(point_inside(a, p) == 1 for p in _probes(b)):
        return True
    return all(point_inside(b, p) == 0 for p in a) and all(point_inside(a, p) == 0 for p in b)


def polygon_within(outer: Sequence[Point], inner: Sequence[Point]) -> bool:
    """`inner` lies inside `outer` (its border may run along outer's)."""
    n, m = len(outer), len(inner)
    if any(point_inside(outer, p) < 0 for p in _probes(inner)):
        return False
    return not any(segments_cross(inner[i], inner[(i + 1) % m], outer[j], outer[(j + 1) % n])
                   for i in range(m) for j in range(n))  # fmt: skip


def polygon_problem(polygon: Sequence[Point], frame_size: tuple[int, int] | None = None) -> str | None:
    """What is wrong with one polygon on its own, in a sentence; None when nothing is."""
    if len(polygon) < 3:
        return "needs at least three corners"
    if frame_size is not None:
        w, h = frame_size
        outside = [i for i, (x, y) in enumerate(polygon) if not (0 <= x <= w and 0 <= y <= h)]
        if outside:
            x, y = polygon[outside[0]]
            return f"corner {outside[0] + 1} ({x:g}, {y:g}) is outside the {w}x{h} picture"
    n = len(polygon)
    for i in range(n):
        if polygon[i] == polygon[(i + 1) % n]:
            return f"corners {i + 1} and {(i + 1) % n + 1} are at the same place"
    if all(_orient(polygon[0], polygon[1], p) == 0 for p in polygon[2:]):
        return "has no area (its corners lie on one line)"
    crossing = self_crossing(polygon)
    if crossing is not None:
        i, j = crossing
        return (f"crosses itself (the edge from corner {i + 1} to {(i + 1) % n + 1} meets the edge from corner "
                f"{j + 1} to {(j + 1) % n + 1})")  # fmt: skip
    if polygon_area(polygon) < AREA_MIN:
        return f"has almost no area ({polygon_area(polygon):g} square pixels)"
    return None


class Shape(Protocol):
    """What `layout_problems` reads of a zone (edge.config.Zone, or what the zone editor sends)."""

    name: str
    polygon: Sequence[Point]


class SlotShape(Protocol):
    sku: str
    polygon: Sequence[Point]


@dataclass(frozen=True)
class LayoutProblem:
    zone: int  # index into the zones
    slot: int | None  # index into that zone's slots, None: the zone itself
    message: str

    def where(self, zones: Sequence[Shape]) -> str:
        zone = f"zone {zones[self.zone].name!r}"
        return zone if self.slot is None else f"{zone} slot {self.slot + 1}"

    def describe(self, zones: Sequence[Shape]) -> str:
        return f"{self.where(zones)}: {self.message}"


def layout_problems(zones: Sequence[Shape], frame_size: tuple[int, int] | None = None,
                    skus: Collection[str] | None = None) -> list[LayoutProblem]:  # fmt: skip
    """Every problem of a drawn layout: each polygon on its own (outside the picture of `frame_size`, crossing
    itself, without area), zones that overlap each other, slots outside their zone or overlapping each other, and
    (with `skus`, the catalogue's) slots whose SKU the catalogue does not have. An overlap is reported on the later
    polygon: the one just drawn."""
    problems: list[LayoutProblem] = []
    good: list[int] = []
    for z, zone in enumerate(zones):
        problem = polygon_problem(list(zone.polygon), frame_size)
        if problem is not None:
            problems.append(LayoutProblem(z, None, problem))
            continue
        other = next((zones[g].name for g in good if polygons_overlap(zones[g].polygon, zone.polygon)), None)
        if other is not None:
            problems.append(LayoutProblem(z, None, f"overlaps zone {other!r}"))
            continue
        good.append(z)
        placed: list[int] = []
        for s, slot in enumerate(getattr(zone, "slots", None) or []):
            problem = polygon_problem(list(slot.polygon), frame_size)
            if problem is None and not polygon_within(zone.polygon, slot.polygon):
                problem = "reaches outside its zone"
            if problem is None:
                twin = next((p for p in placed if polygons_overlap(zone.slots[p].polygon, slot.polygon)), None)
                problem = f"overlaps slot {twin + 1}" if twin is not None else None
            if problem is None and skus is not None and slot.sku not in skus:
                problem = f"SKU {slot.sku!r} is not in the catalogue"
            if problem is not None:
                problems.append(LayoutProblem(z, s, problem))
            else:
                placed.append(s)
    return problems
