"""The review queue: a store's box clips and disputed alerts, ranked by how much a reviewer's minute is worth.

A clip's worth comes from the events it covers, as central stored them: footage unlike the model's training (3; also
when the clip's name says it shows an unfamiliar stretch), an action the model was unsure of (1, plus up to 2 the
further under the review confidence it is), a pick, put-back or product the box was unsure of (2), and an alert a
manager marked wrong that cites one of them (4). A sure clip (one the box kept at random) is worth 0. A wrong
alert whose box kept no clip is an entry of its own (4), without footage to open. A configurable share of the
queue's places goes to entries drawn at random (the same draw all day): a few sure clips reach the top, so that
confident mistakes surface too.

Each clip opens in the editor at its stretch (`central.web.review_queue`): the unsure frames its name states
(`edge.clips`), in the analysis central makes of it."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from central import db, verdicts
from edge.schema import Strict
from edge.times import as_utc

CHUNK = 500  # ids in one IN (...)
CLIP_NAME = re.compile(r"^clip-(\d{1,16})-(\d{1,9})-(\d{1,9})(-unfamiliar)?\.mp4$")  # edge.clips.NAME
STATES = ("new", "predicted", "in_review", "verified")


class Entry(Strict):
    kind: Literal["clip", "alert"]
    store: str
    box: str
    name: str | None = Field(default=None, description="the clip's file name (a clip)")
    alert_id: str | None = Field(default=None, description="the disputed alert (an alert, or a clip it cites)")
    worth: float
    reasons: list[str]
    classes: list[str] = Field(description="the actions, picks and put-backs it covers")
    state: Literal["new", "predicted", "in_review", "verified"]
    created: datetime
    covers: list[str]
    stretch: tuple[int, int] | None = Field(default=None, description="the unsure frames within the clip, [from, to)")
    analysis: str | None = None
    drawn: bool = Field(default=False, description="placed by the random share, not by its worth")


@dataclass(frozen=True)
class Thresholds:
    review_confidence: float = 0.85
    product_confidence: float = 0.6


def stretch_of(name: str) -> tuple[int, int] | None:
    """The unsure frames [from, to) a box clip's name states (None for another name)."""
    m = CLIP_NAME.match(name)
    return (int(m.group(2)), int(m.group(3))) if m else None


def _worth(events: list[dict], disputed: bool, t: Thresholds, unfamiliar: bool = False) -> tuple[float, list[str]]:
    """`unfamiliar`: the clip's name says it shows the start of an unfamiliar stretch."""
    worth, reasons = 0.0, []
    if unfamiliar or any(e.get("familiar") is False for e in events):
        worth, reasons = worth + 3, [*reasons, "unfamiliar"]
    actions = [e["confidence"] for e in events if e.get("kind") == "action" and e["confidence"] < t.review_confidence]
    if actions:
        worth += 1 + 2 * (t.review_confidence - min(actions)) / max(t.review_confidence, 1e-6)
        reasons.append(f"low action confidence ({min(actions):.2f})")
    products = [e["confidence"] for e in events if e.get("kind") in ("pick", "putback")]
    products += [
        e["sku_confidence"] for e in events if e.get("kind") == "action" and e.get("sku_confidence") is not None
    ]
    if any(c < t.product_confidence for c in products):
        worth += 2
        reasons.append(f"low product confidence ({min(products):.2f})")
    if disputed:
        worth += 4
        reasons.append("disputed alert")
    return round(worth, 4), reasons


def _classes(events: list[dict]) -> list[str]:
    return sorted({e["action"] if e.get("kind") == "action" else e.get("kind", "?") for e in events})


def entries(engine: Engine, stores: set[str] | None, t: Thresholds) -> list[Entry]:
    """Every entry of the stores given (None: all), by worth (highest first, then newest)."""
    out: list[Entry] = []
    with engine.connect() as conn:
        known = sorted({s for (s,) in conn.execute(select(db.files.c.store).distinct())}
                       | {s for (s,) in conn.execute(select(db.alerts.c.store).distinct())})  # fmt: skip
        for store in known:
            if stores is not None and store not in stores:
                continue
            wrong = {r.alert_id: r for r in conn.execute(select(db.alerts).where(
                db.alerts.c.store == store, db.alerts.c.verdict == "wrong"))}  # fmt: skip
            cited = {alert_id: set(verdicts.evidence_ids(conn, a)) for alert_id, a in wrong.items()}
            with_clip: set[str] = set()
            clips = verdicts.box_clips(conn, store)
            covered = _events(conn, [i for c in clips for i in verdicts.covers_of(c)])
            states = _states(conn, [c.analysis for c in clips if c.analysis is not None])
            for clip in clips:
                covers = verdicts.covers_of(clip)
                events = [covered[i] for i in covers if i in covered]
                disputes = [a for a, ids in cited.items() if ids & set(covers) and wrong[a].box == clip.box]
                with_clip.update(disputes)
                worth, reasons = _worth(events, bool(disputes), t, clip.name.endswith("-unfamiliar.mp4"))
                state = "new" if clip.analysis is None else states.get(clip.analysis, "predicted")
                out.append(Entry(kind="clip", store=store, box=clip.box, name=clip.name,
                                 alert_id=disputes[0] if disputes else None, worth=worth, reasons=reasons,
                                 classes=_classes(events), state=state, created=as_utc(clip.created), covers=covers,
                                 stretch=stretch_of(clip.name), analysis=clip.analysis))  # fmt: skip
            for alert_id, a in wrong.items():
                if alert_id not in with_clip:
                    out.append(Entry(kind="alert", store=store, box=a.box, alert_id=alert_id, worth=4.0,
                                     reasons=["disputed alert", "no clip kept"], classes=["pick"], state="new",
                                     created=as_utc(a.verdict_at or a.created), covers=[]))  # fmt: skip
    out.sort(key=lambda e: (-e.worth, -e.created.timestamp()))
    return out


def _events(conn: Connection, ids: list[str]) -> dict[str, dict]:
    """The stored payloads of these events, by id (a few hundred ids a query)."""
    out: dict[str, dict] = {}
    unique = sorted(set(ids))
    for n in range(0, len(unique), CHUNK):
        query = select(db.events.c.event_id, db.events.c.payload).where(db.events.c.event_id.in_(unique[n : n + CHUNK]))
        out.update({i: p if isinstance(p, dict) else json.loads(p) for i, p in conn.execute(query)})
    return out


def _states(conn: Connection, analyses: list[str]) -> dict[str, str]:
    """The review state of the analyses taken into review (the others are `predicted`)."""
    out: dict[str, str] = {}
    unique = sorted(set(analyses))
    for n in range(0, len(unique), CHUNK):
        c = db.review_clips.c
        out.update(dict(conn.execute(select(c.clip_id, c.state).where(c.clip_id.in_(unique[n : n + CHUNK]))).all()))
    return out


def with_random_share(ranked: list[Entry], share: float, seed: str) -> list[Entry]:
    """Every 1/share-th place from the top goes to an entry drawn at random from those ranked below it (the same
    draw for the same `seed`: a day's queue does not reshuffle on every reload)."""
    n = len(ranked)
    draws = round(share * n)
    if draws <= 0 or n < 2:
        return ranked
    rng = random.Random(seed)
    rest, out = list(ranked), []
    step = max(1, round(1 / share))
    while rest:
        if (len(out) + 1) % step == 0 and draws > 0 and len(rest) > 1:
            pick = rest.pop(rng.randrange(1, len(rest)))
            out.append(pick.model_copy(update={"drawn": True}))
            draws -= 1
        else:
            out.append(rest.pop(0))
    return out


def queue(engine: Engine, stores: set[str] | None, t: Thresholds, share: float,
          box: str | None = None, classes: str | None = None, state: str | None = None,
          today: date | None = None) -> list[Entry]:  # fmt: skip
    """The queue as the page shows it: ranked, the random share placed, then filtered by box, class and state."""
    ranked = with_random_share(entries(engine, stores, t), share, str(today or date.today()))
    return [e for e in ranked if (box is None or e.box == box) and (classes is None or classes in e.classes)
            and (state is None or e.state == state)]  # fmt: skip
