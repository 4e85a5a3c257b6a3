"""An analysis's result, made from the events the agent emitted (the same events a box publishes): segments
for the timeline, picks and put-backs, each shopper's basket, per-class counts and time, and the downloads
(events as CSV, segments in our JSON label format and in MERL Shopping's .mat), and where the footage was unlike
the model's training (the bundle's familiarity guard: the page's banner and the timeline's shaded stretches)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from pydantic import Field

from central import spreadsheet
from edge.classes import ACTION_CLASSES
from edge.events import ActionEvent, BasketEvent, PickEvent, decode
from edge.schema import Strict


class TimelineSegment(Strict):
    action: str
    start: int  # frames, end exclusive
    end: int
    shopper: int | None = None
    confidence: float
    familiar: bool | None = None  # None: the bundle has no familiarity guard


class ShelfChange(Strict):
    kind: str  # pick or putback
    sku: str
    name: str
    frame: int
    quantity: int
    shopper: int | None = None
    confidence: float
    familiar: bool | None = None


class Stretch(Strict):
    start: int  # frames, end exclusive
    end: int


class FamiliarityResult(Strict):
    """What the familiarity guard found (absent from an analysis when the bundle has none)."""

    analysed_frames: int
    unfamiliar_frames: int
    share: float = Field(ge=0, le=1, description="of the analysed frames, unlike the model's training")
    stretches: list[Stretch] = Field(description="unfamiliar stretches, nearby ones (within a second) joined")


class ClassTotal(Strict):
    action: str
    count: int
    seconds: float


class Analysis(Strict):
    """What the result page shows (embedded in it as JSON for the timeline)."""

    video: str
    fps: float
    frames: int
    width: int
    height: int
    seconds: float = Field(description="the video's length")
    took_s: float = Field(description="the analysis's wall time")
    agent_fps: float
    classes: list[str]
    segments: list[TimelineSegment]
    changes: list[ShelfChange]
    baskets: dict[str, dict[str, int]]  # shopper -> SKU name -> units
    shoppers: list[int]
    per_class: list[ClassTotal]
    events: int
    notes: list[str] = Field(default_factory=list)
    familiarity: FamiliarityResult | None = None


def read_events(path: Path) -> list:
    """The JSONL the agent wrote, validated against the event schema (statuses left out)."""
    if not path.exists():
        return []
    events = [decode(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e.kind != "status"]


def build_analysis(
    events: list, *, video: str, fps: float, frames: int, width: int, height: int, took_s: float,
    names: dict[str, str], notes: list[str], familiarity: FamiliarityResult | None = None,
) -> Analysis:  # fmt: skip
    segments = [TimelineSegment(action=e.action, start=e.start, end=e.end, shopper=e.shopper,
                                confidence=round(e.confidence, 3), familiar=e.familiar)
                for e in events if isinstance(e, ActionEvent)]  # fmt: skip
    changes = [ShelfChange(kind=e.kind, sku=e.sku, name=names.get(e.sku, e.sku), frame=e.frame, quantity=e.quantity,
                           shopper=e.shopper, confidence=round(e.confidence, 3), familiar=e.familiar)
               for e in events if isinstance(e, PickEvent)]  # fmt: skip
    baskets: dict[str, dict[str, int]] = {}
    for e in events:  # the last word on each shopper's basket
        if isinstance(e, BasketEvent):
            baskets[str(e.shopper)] = {names.get(k, k): n for k, n in e.items.items() if n}
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for s in segments:
        totals[s.action][0] += 1
        totals[s.action][1] += (s.end - s.start) / fps
    shoppers = sorted({s.shopper for s in segments if s.shopper is not None} | {c.shopper for c in changes
                      if c.shopper is not None} | {int(k) for k in baskets})  # fmt: skip
    return Analysis(
        video=video, fps=fps, frames=frames, width=width, height=height, seconds=round(frames / fps, 3),
        took_s=round(took_s, 2), agent_fps=round(frames / took_s, 1) if took_s else 0.0,
        classes=list(ACTION_CLASSES[1:]),
        segments=segments, changes=changes, baskets=baskets, shoppers=shoppers,
        per_class=[ClassTotal(action=a, count=int(totals[a][0]), seconds=round(totals[a][1], 2))
                   for a in ACTION_CLASSES[1:]],
        events=len(events), notes=notes, familiarity=familiarity,
    )  # fmt: skip


def familiarity_result(analysed: int, unfamiliar: int, spans: list[tuple[int, int]], fps: float) -> FamiliarityResult:
    """The guard's verdict for the page: stretches less than a second apart are shown as one."""
    joined: list[list[int]] = []
    for a, b in sorted(spans):
        if joined and a - joined[-1][1] <= fps:
            joined[-1][1] = max(joined[-1][1], b)
        else:
            joined.append([a, b])
    return FamiliarityResult(analysed_frames=analysed, unfamiliar_frames=unfamiliar,
                             share=round(unfamiliar / analysed, 4) if analysed else 0.0,
                             stretches=[Stretch(start=a, end=b) for a, b in joined])  # fmt: skip


CSV_COLUMNS = ("seq", "kind", "ts", "event_id", "store", "box", "action", "start", "end", "shopper", "sku",
               "quantity", "frame", "zone", "confidence", "familiar", "items", "reason")  # fmt: skip


def events_csv(jsonl: Path) -> str:
    """Every event (statuses too) as one CSV row; a basket's items as JSON in one cell; no cell a spreadsheet would
    run as a formula (`central.spreadsheet`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for line in jsonl.read_text().splitlines() if jsonl.exists() else []:
        if line.strip():
            row = json.loads(line)
            if "items" in row:
                row["items"] = json.dumps(row["items"], sort_keys=True)
            writer.writerow({k: spreadsheet.cell(v) for k, v in row.items()})
    return out.getvalue()


def write_label_files(analysis: Analysis, json_path: Path, mat_path: Path) -> None:
    """The action segments in our label format and in MERL Shopping's (training's own writers)."""
    from training.labels import Segment, make_labels, to_label_file, write_label_file
    from training.merl import write_merl_labels

    segments = [Segment(ACTION_CLASSES.index(s.action), s.start, min(s.end, analysis.frames), s.shopper)
                for s in analysis.segments if s.start < min(s.end, analysis.frames)]  # fmt: skip
    labels = make_labels(segments, analysis.frames, analysis.fps)
    write_label_file(to_label_file(labels, video=analysis.video), json_path)
    write_merl_labels(labels, mat_path)
