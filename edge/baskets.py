"""Each shopper's basket: picks minus put-backs per SKU (anti-theft item counts)."""

from __future__ import annotations

from collections import Counter


class Baskets:
    def __init__(self) -> None:
        self.items: dict[int, Counter] = {}

    def owner_of_putback(self, sku: str, nearest: int | None, present: set[int] | None = None) -> int | None:
        """Whose put-back it is: the nearest shopper's if they hold that SKU, else the one shopper who holds it (the
        one still in view, where several do). None: nobody was seen taking it, so it is nobody's to put back."""
        if nearest is not None and self.items.get(nearest, Counter())[sku] > 0:
            return nearest
        holders = [s for s, c in self.items.items() if c[sku] > 0]
        if len(holders) > 1 and present is not None:
            holders = [s for s in holders if s in present]
        return holders[0] if len(holders) == 1 else None

    def apply(self, shopper: int, kind: str, sku: str, quantity: int) -> dict[str, int]:
        basket = self.items.setdefault(shopper, Counter())
        if kind == "pick":
            basket[sku] += quantity
        else:  # never below zero: what a shopper returns, they were seen taking (see owner_of_putback)
            basket[sku] = max(0, basket[sku] - quantity)
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
