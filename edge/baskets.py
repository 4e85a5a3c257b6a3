"""Each shopper's basket: picks minus put-backs per SKU (anti-theft item counts)."""

from __future__ import annotations

from collections import Counter


class Baskets:
    def __init__(self) -> None:
        self.items: dict[int, Counter] = {}

    def owner_of_putback(self, sku: str, nearest: int | None) -> int | None:
        """A put-back goes to the nearest shopper, unless only someone else has that SKU to put back."""
        if nearest is not None and self.items.get(nearest, Counter())[sku] > 0:
            return nearest
        holders = [s for s, c in self.items.items() if c[sku] > 0]
        return holders[0] if len(holders) == 1 else nearest

    def apply(self, shopper: int, kind: str, sku: str, quantity: int) -> dict[str, int]:
        basket = self.items.setdefault(shopper, Counter())
        if kind == "pick":
            basket[sku] += quantity
        else:
            basket[sku] -= quantity
        return self.snapshot(shopper)

    def snapshot(self, shopper: int) -> dict[str, int]:
        return {k: v for k, v in sorted(self.items.get(shopper, Counter()).items()) if v}

    def leave(self, shopper: int) -> dict[str, int] | None:
        """The shopper left: their final basket, or None if they never touched anything."""
        if shopper not in self.items:
            return None
        final = self.snapshot(shopper)
        del self.items[shopper]
        return final
