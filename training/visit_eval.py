"""Shoppers' visits against a generated video's ledger: per SKU, the units the box's visit events say were picked
and put back against the ledger's takes and returns (`bench/visits.py`, tests/edge/test_visits_truth.py).

The videos are fixed up front, never chosen by their results: the held-out seed 1000, indices 0, 1, 2, ... of each
preset. A (video, SKU) pair is exact when the visits' units picked and units put back of that SKU both equal the
ledger's; the pairs are every SKU the ledger, the visits or the box's pick and put-back events name. The box's own
pick and put-back events are scored the same way beside them: visits are made of them and must agree with them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import comb, sqrt

from edge.classes import ACTION_CLASSES, Action
from training.labels import LabelFile, LedgerEntry
from training.synth.generate import VideoSpec

SEED = 1000  # the held-out seed: never trained or tuned on
TUNING_SEED = 2000  # videos to look at while changing the box (bench/visits.py --seed 2000): not the reported ones
PRESETS = ("standard", "hard")


def video_specs(per_preset: int, frames: int = 900, width: int = 640, height: int = 480, first: int = 0,
                seed: int = SEED) -> list[VideoSpec]:  # fmt: skip
    """The videos scored: indices first..first+per_preset-1 of each preset, fixed before anything is run. Another
    `seed` gives videos to tune on (TUNING_SEED), never the ones reported."""
    return [VideoSpec(seed=seed, index=i, frames=frames, width=width, height=height, preset=p)
            for p in PRESETS for i in range(first, first + per_preset)]  # fmt: skip


@dataclass
class VisitScore:
    name: str
    skus: frozenset[str]  # the SKUs in play in this video: its pairs
    exact_skus: frozenset[str]  # of them, those whose visits' (picked, put back) equal the ledger's
    events_exact: int  # of them, the pick and put-back events' equal the ledger's
    agree: bool  # the visits' units equal the box's own sure (not unfamiliar) pick and put-back events', SKU for SKU
    visits: int  # visit events
    left_out: int  # products left out of visit events
    wrong: list[str]  # the pairs the visits got wrong, for a person reading the output
    # Pairs with a take or return whose hand visit the clip's end cuts (`cut_by_the_end`): no frame shows how it ended.
    cut_skus: frozenset[str] = frozenset()

    @property
    def pairs(self) -> int:
        return len(self.skus)

    @property
    def visits_exact(self) -> int:
        return len(self.exact_skus)

    @property
    def cut(self) -> int:
        return len(self.cut_skus)

    @property
    def cut_exact(self) -> int:
        return len(self.cut_skus & self.exact_skus)


def units(entries: list[tuple[str, str, int]]) -> dict[str, tuple[int, int]]:
    """(picked, put back) per SKU from (kind, sku, quantity) entries, kind 'pick' or 'putback'."""
    picked, back = Counter(), Counter()
    for kind, sku, n in entries:
        (picked if kind == "pick" else back)[sku] += n
    return {sku: (picked[sku], back[sku]) for sku in set(picked) | set(back) if picked[sku] or back[sku]}


def cut_by_the_end(labels: LabelFile) -> frozenset[str]:
    """The SKUs with a take or return whose hand visit the clip's end cuts: the shopper's arm had not come out of the
    shelf by the last frame (their first retract after it runs to the end, or there is none). The ledger dates a take
    when the product leaves its place and a return halfway through the hand's stay in the shelf, under the hand: until
    the arm comes out, no frame shows whether the product stays in the hand or on the shelf. Decided by the labels
    alone, the same for any box."""
    retract = ACTION_CLASSES[Action.RETRACT_FROM_SHELF]
    cut = set()
    for e in labels.ledger:
        ends = [s.end for s in labels.segments if s.label == retract and s.shopper == e.shopper and s.end > e.frame]
        if not ends or min(ends) >= labels.frame_count:
            cut.add(e.sku)
    return frozenset(cut)


def score(name: str, events: list[dict], ledger: list[LedgerEntry], cut: frozenset[str] = frozenset()) -> VisitScore:
    """One video: its box's events (as the JSONL log has them) against its ledger. `cut`: the SKUs whose take or
    return the clip's end cuts (`cut_by_the_end`), whose pairs are also counted apart."""
    truth = units([("pick" if e.kind == "take" else "putback", e.sku, 1) for e in ledger])
    visit_events = [e for e in events if e["kind"] == "visit"]
    visits = units([(kind, p["sku"], p[field]) for e in visit_events for p in e["products"]
                    for kind, field in (("pick", "picked"), ("putback", "put_back"))])  # fmt: skip
    # A pick or put-back from footage unlike the model's training (familiar false) is no sure fact: it makes no visit
    # and is in no basket (edge/report.py), so visits are compared with the box's sure events.
    shelf = units([(e["kind"], e["sku"], e["quantity"]) for e in events
                   if e["kind"] in ("pick", "putback") and e.get("familiar") is not False])  # fmt: skip
    zero = (0, 0)
    pairs = sorted(set(truth) | set(visits) | set(shelf))
    exact = {s for s in pairs if truth.get(s, zero) == visits.get(s, zero)}
    wrong = [f"{s}: ledger {truth.get(s, zero)}, visits {visits.get(s, zero)}" for s in pairs if s not in exact]
    return VisitScore(
        name=name, skus=frozenset(pairs), exact_skus=frozenset(exact),
        events_exact=sum(truth.get(s, zero) == shelf.get(s, zero) for s in pairs), agree=visits == shelf,
        visits=len(visit_events), left_out=sum(e.get("products_left_out", 0) for e in visit_events), wrong=wrong,
        cut_skus=cut & frozenset(pairs),
    )  # fmt: skip


@dataclass(frozen=True)
class Paired:
    """Two boxes' visits scored on the same videos, pair by pair (`bench/visits.py --against`)."""

    pairs: int  # (video, SKU) pairs either box or the ledger names
    exact: tuple[int, int]  # of them, exact with the first box, with the second
    only: tuple[int, int]  # exact with the first box and not the second, and the other way round
    p_value: float  # two-sided sign test on `only`: how often chance alone splits the flipped pairs this unevenly


def paired(first: list[VisitScore], second: list[VisitScore]) -> Paired:
    """The same videos (in the same order) scored for two boxes. A SKU one box names and the other does not is a pair
    for both: where neither the ledger nor a box's events name it, that box has it exact (nothing, as the ledger)."""
    if [s.name for s in first] != [s.name for s in second]:
        raise ValueError("paired scores need the same videos in the same order")
    pairs = only_first = only_second = exact_first = exact_second = 0
    for a, b in zip(first, second, strict=True):
        for sku in a.skus | b.skus:
            in_a = sku in a.exact_skus or sku not in a.skus
            in_b = sku in b.exact_skus or sku not in b.skus
            pairs += 1
            exact_first, exact_second = exact_first + in_a, exact_second + in_b
            only_first, only_second = only_first + (in_a and not in_b), only_second + (in_b and not in_a)
    return Paired(pairs, (exact_first, exact_second), (only_first, only_second), sign_test(only_first, only_second))


def sign_test(a: int, b: int) -> float:
    """Two-sided exact sign test (McNemar's exact test on the discordant pairs): the chance of a split at least as
    uneven as a:b when either side is as likely."""
    n = a + b
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(a, b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def wilson(right: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a share right/total: where the share of a box this good lies on
    other videos like these. Pairs of one video are not independent, so the true spread is wider still."""
    if total == 0:
        return 0.0, 1.0
    share = right / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)
