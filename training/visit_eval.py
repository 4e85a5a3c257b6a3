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

from training.labels import LedgerEntry
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
    pairs: int  # SKUs in play in this video
    visits_exact: int  # of them, the visits' (picked, put back) equal the ledger's
    events_exact: int  # of them, the pick and put-back events' equal the ledger's
    agree: bool  # the visits' units equal the box's own sure (not unfamiliar) pick and put-back events', SKU for SKU
    visits: int  # visit events
    left_out: int  # products left out of visit events
    wrong: list[str]  # the pairs the visits got wrong, for a person reading the output
    at_end: int = 0  # pairs with a take or return in the clip's last second (the clip may end before it shows it)
    at_end_exact: int = 0  # of them, exact


def units(entries: list[tuple[str, str, int]]) -> dict[str, tuple[int, int]]:
    """(picked, put back) per SKU from (kind, sku, quantity) entries, kind 'pick' or 'putback'."""
    picked, back = Counter(), Counter()
    for kind, sku, n in entries:
        (picked if kind == "pick" else back)[sku] += n
    return {sku: (picked[sku], back[sku]) for sku in set(picked) | set(back) if picked[sku] or back[sku]}


def score(name: str, events: list[dict], ledger: list[LedgerEntry], last_second: int | None = None) -> VisitScore:
    """One video: its box's events (as the JSONL log has them) against its ledger. `last_second`: the first frame of
    the clip's last second; pairs with a ledger entry from there on are also counted apart (`at_end`), since the
    ledger dates a take when the product leaves its place, and the clip may end with it still over the shelf."""
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
    at_end = {e.sku for e in ledger if last_second is not None and e.frame >= last_second}
    return VisitScore(
        name=name, pairs=len(pairs), visits_exact=len(exact),
        events_exact=sum(truth.get(s, zero) == shelf.get(s, zero) for s in pairs), agree=visits == shelf,
        visits=len(visit_events), left_out=sum(e.get("products_left_out", 0) for e in visit_events), wrong=wrong,
        at_end=len(at_end), at_end_exact=len(at_end & exact),
    )  # fmt: skip
