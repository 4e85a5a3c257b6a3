"""The synthetic store's products: ten SKUs as seen from above, some of them deliberately alike
(two red cans, two yellow cereal boxes) so that a detector has to read shape and print, not only colour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Shape = Literal["box", "can", "bottle", "bag", "jar"]
Pattern = Literal["plain", "stripes", "checker", "dots", "logo", "band"]
BGR = tuple[int, int, int]


@dataclass(frozen=True)
class Sku:
    id: str
    name: str
    shape: Shape
    size: tuple[int, int]  # width, height in pixels at 480 lines
    colour: BGR
    pattern: Pattern
    accent: BGR


CATALOG: tuple[Sku, ...] = (
    Sku("sku00", "Cola can", "can", (30, 30), (36, 36, 205), "band", (245, 245, 245)),
    Sku("sku01", "Cherry soda can", "can", (30, 30), (60, 25, 165), "dots", (240, 240, 240)),
    Sku("sku02", "Still water", "bottle", (34, 34), (235, 205, 160), "plain", (200, 90, 20)),
    Sku("sku03", "Orange juice", "bottle", (38, 38), (30, 140, 245), "plain", (40, 160, 40)),
    Sku("sku04", "Corn flakes", "box", (54, 38), (35, 205, 235), "stripes", (40, 40, 200)),
    Sku("sku05", "Corn flakes light", "box", (54, 38), (70, 215, 225), "checker", (190, 110, 30)),
    Sku("sku06", "Green tea", "box", (34, 26), (70, 150, 50), "logo", (240, 240, 240)),
    Sku("sku07", "Paprika chips", "bag", (48, 42), (150, 45, 125), "stripes", (200, 200, 210)),
    Sku("sku08", "Coffee jar", "jar", (36, 36), (25, 55, 100), "logo", (40, 180, 220)),
    Sku("sku09", "Soap bar", "box", (42, 22), (238, 238, 238), "band", (190, 120, 40)),
)

SKU_INDEX: dict[str, int] = {sku.id: i for i, sku in enumerate(CATALOG)}


@dataclass(frozen=True)
class Sprite:
    """A product's top view: colour image and coverage mask (0-255) of the same size."""

    image: np.ndarray
    mask: np.ndarray


def render_sprite(sku: Sku, scale: float) -> Sprite:
    w = max(6, round(sku.size[0] * scale))
    h = max(6, round(sku.size[1] * scale))
    image = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    c = (w / 2 - 0.5, h / 2 - 0.5)
    r = min(w, h) / 2 - 0.5
    aa = cv2.LINE_AA
    if sku.shape in ("can", "bottle", "jar"):
        _circle(mask, c, r, 255)
        _circle(image, c, r, sku.colour)
    elif sku.shape == "bag":
        pts = np.array(
            [(0.08, 0.12), (0.5, 0.0), (0.92, 0.12), (1.0, 0.55), (0.9, 0.95), (0.5, 1.0), (0.1, 0.95), (0.0, 0.5)]
        ) * (w - 1, h - 1)
        cv2.fillPoly(mask, [_fixed(pts)], 255, aa, shift=4)
        cv2.fillPoly(image, [_fixed(pts)], sku.colour, aa, shift=4)
    else:
        mask[:] = 255
        image[:] = sku.colour
    _pattern(image, sku, w, h, scale)
    if sku.shape == "can":
        _circle(image, c, r * 0.74, (185, 188, 192))  # the metal lid
        _circle(image, (c[0], c[1] - r * 0.3), r * 0.18, (110, 110, 115))  # the ring pull
    elif sku.shape == "bottle":
        _circle(image, c, r * 0.38, sku.accent)  # cap
        _circle(image, (c[0] - r * 0.35, c[1] - r * 0.35), r * 0.15, (250, 250, 250))  # highlight
    elif sku.shape == "jar":
        _circle(image, c, r * 0.86, sku.accent)
        cv2.circle(image, _pt(c), round(r * 0.62 * 16), (20, 20, 20), max(1, round(scale)), aa, shift=4)
    elif sku.shape == "box":
        cv2.rectangle(image, (0, 0), (w - 1, h - 1), (30, 30, 30), max(1, round(scale)))
    elif sku.shape == "bag":
        cv2.line(image, (round(w * 0.2), round(h * 0.1)), (round(w * 0.8), round(h * 0.1)), (220, 220, 220), 2)
    image[mask == 0] = 0
    return Sprite(image, mask)


def _pattern(image: np.ndarray, sku: Sku, w: int, h: int, scale: float) -> None:
    a = sku.accent
    t = max(1, round(2 * scale))
    if sku.pattern == "stripes":
        step = max(4, round(8 * scale))
        for x in range(-h, w + h, step):
            cv2.line(image, (x, 0), (x + h, h), a, t, cv2.LINE_AA)
    elif sku.pattern == "checker":
        step = max(3, round(7 * scale))
        for y in range(0, h, step):
            for x in range((y // step) % 2 * step, w, 2 * step):
                image[y : y + step, x : x + step] = a
    elif sku.pattern == "dots":
        step = max(4, round(7 * scale))
        for y in range(step // 2, h, step):
            for x in range(step // 2, w, step):
                cv2.circle(image, (x, y), max(1, round(1.6 * scale)), a, -1, cv2.LINE_AA)
    elif sku.pattern == "logo":
        _circle(image, (w / 2 - 0.5, h / 2 - 0.5), min(w, h) * 0.3, a)
        _circle(image, (w / 2 - 0.5, h / 2 - 0.5), min(w, h) * 0.14, sku.colour)
    elif sku.pattern == "band":
        band = max(2, round(h * 0.22))
        image[h // 2 - band // 2 : h // 2 - band // 2 + band, :] = a


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts) * 16).astype(np.int32)


def _pt(p: tuple[float, float]) -> tuple[int, int]:
    return round(p[0] * 16), round(p[1] * 16)


def _circle(img: np.ndarray, c: tuple[float, float], r: float, colour: BGR | int) -> None:
    cv2.circle(img, _pt(c), max(1, round(r * 16)), colour, -1, cv2.LINE_AA, shift=4)
