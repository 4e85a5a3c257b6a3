"""The store as the overhead camera sees it: a shelf along the top of the image, its front edge at
`shelf_edge`, product slots along it (each a column of units from the front edge backwards), and the
floor below where shoppers stand. Lengths are in output pixels; `unit` is one pixel at 480 lines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synth.catalog import CATALOG


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int

    @property
    def unit(self) -> float:
        return self.height / 480.0

    @property
    def shelf_edge(self) -> float:
        return 0.36 * self.height


@dataclass(frozen=True)
class Slot:
    sku: int  # index into CATALOG
    positions: tuple[tuple[float, float], ...]  # unit centres, front (nearest the edge) first


def make_layout(geom: Geometry, rng: np.random.Generator) -> tuple[Slot, ...]:
    """Every SKU at least once (in a random order), then random repeats while the shelf has room."""
    u = geom.unit
    gap = 7 * u
    order = list(rng.permutation(len(CATALOG)))
    order += list(rng.integers(0, len(CATALOG), size=len(CATALOG)))
    slots: list[Slot] = []
    x = 10 * u
    for sku_index in order:
        w, h = (s * u for s in CATALOG[sku_index].size)
        if x + w > geom.width - 10 * u:
            continue  # a narrower product later in the order may still fit
        cx = x + w / 2
        depth = 3 if CATALOG[sku_index].size[1] <= 34 else 2
        y0 = geom.shelf_edge - 4 * u - h / 2
        positions = tuple((cx, y0 - k * (h + 4 * u)) for k in range(depth))
        slots.append(Slot(int(sku_index), positions))
        x += w + gap
    return tuple(slots)
