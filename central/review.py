"""Reviewed clips: what a store's staff corrected of what a box saw, kept as training data.

A clip has one of three states. *predicted*: an analysis like any other, in the web pages' work folder, deleted
when `keep_analyses` needs room. *in review*: someone saved a correction; the clip was taken out of the work folder
into central's data directory (`reviews/<store>/<clip>/`: the original video, the annotated one, the events, the
result) with a row in `review_clips`, and it stays until someone deletes it. *verified*: a person said the latest
version is right; `shelfwatch dataset export` writes verified clips out for training.

Labels versions are ShelfWatch labels JSON (`training.labels.LabelFile`) in `label_versions`, never overwritten:
version 0 is the box's prediction (its action segments, and its picks and put-backs as the ledger), each save adds
the next, with its provenance (`review`: which token saved it, when, which version it was edited from, which bundle
predicted the clip). Saving a verified clip again makes a new version and puts the clip back in review.

The checks a version must pass, each refused with its reason (`Invalid`): the file's own (`LabelFile`: classes,
segments inside the video, frame classes that follow the overlap policy, timestamps), its length and rate the
clip's, and every pick and put-back a SKU of the clip's catalogue at a frame of the clip."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import IntegrityError

from central import db
from edge.classes import ACTION_CLASSES
from edge.times import as_utc
from training.labels import (
    Basket,
    LabelFile,
    LedgerEntry,
    ReviewRecord,
    Segment,
    make_labels,
    to_label_file,
)

STATES = ("predicted", "in_review", "verified")
FOLDER = "reviews"
FPS_TOLERANCE = 1e-3


class NotFound(Exception):
    """No such clip (or not one this caller may see)."""


class Invalid(Exception):
    """Labels that do not fit the clip: the message is the reason (HTTP 422)."""


class Conflict(Exception):
    """The clip moved on since the caller read it (HTTP 409)."""


@dataclass(frozen=True)
class Source:
    """An analysis taken into review: its work folder and what the web pages know of it."""

    clip_id: str
    folder: Path  # the analysis's work folder (result.json, annotated.mp4, events.jsonl, ...)
    video: Path  # the original video (inside `folder` for an upload, in clips_dir otherwise)
    name: str
    store: str
    day: date
    bundle: str  # the predicting bundle's id
    catalog: dict[str, str]  # SKU -> name
    fps: float
    frames: int
    width: int
    height: int


@dataclass(frozen=True)
class Clip:
    """A clip in review or verified, as its row says."""

    clip_id: str
    store: str
    name: str
    state: str
    fps: float
    frames: int
    width: int
    height: int
    day: str
    bundle: str
    catalog: dict[str, str]
    folder: Path
    video: Path
    video_sha256: str
    created: datetime
    updated: datetime
    verified: datetime | None
    verified_by: str | None
    verified_version: int | None


@dataclass(frozen=True)
class Version:
    version: int
    token_id: str | None
    saved: datetime
    based_on: int | None


def prediction_labels(
    result: dict, clip_id: str, bundle: str, *, fps: float, frames: int, width: int, height: int
) -> LabelFile:
    """Version 0: the box's action segments, and its picks and put-backs as the ledger (a unit an entry)."""
    segments = [Segment(ACTION_CLASSES.index(s["action"]), s["start"], min(s["end"], frames), s.get("shopper"))
                for s in result["segments"] if s["start"] < min(s["end"], frames)]  # fmt: skip
    ledger = [LedgerEntry(frame=min(c["frame"], frames - 1), shopper=c.get("shopper"), sku=c["sku"],
                          kind="take" if c["kind"] == "pick" else "return")
              for c in result["changes"] for _ in range(c["quantity"])]  # fmt: skip
    base = to_label_file(make_labels(segments, frames, fps))
    review = ReviewRecord(clip=clip_id, version=0, prediction=bundle)
    return finish(base, ledger, result.get("video"), width, height, review)


def finish(labels: LabelFile, ledger: list[LedgerEntry], video: str | None, width: int, height: int,
           review: ReviewRecord) -> LabelFile:  # fmt: skip
    """The labels as central keeps them: the clip's name and picture size, the ledger in frame order, the baskets
    it gives (per shopper, where the shopper is known) and the provenance."""
    ledger = sorted(ledger, key=lambda e: (e.frame, e.kind, e.sku, -1 if e.shopper is None else e.shopper))
    return LabelFile.model_validate(
        {**labels.model_dump(exclude_none=True), "video": video, "width": width, "height": height,
         "review": review.model_dump(), "ledger": [e.model_dump() for e in ledger],
         "baskets": [b.model_dump() for b in baskets(ledger)]}
    )  # fmt: skip


def baskets(ledger: list[LedgerEntry]) -> list[Basket]:
    """Each known shopper's items taken minus put back (SKUs at zero left out)."""
    counts: dict[int, Counter] = {}
    for e in ledger:
        if e.shopper is not None:
            counts.setdefault(e.shopper, Counter())[e.sku] += 1 if e.kind == "take" else -1
    return [Basket(shopper=s, items={k: n for k, n in sorted(c.items()) if n}) for s, c in sorted(counts.items())]


def check(labels: LabelFile, *, frames: int, fps: float, catalog: dict[str, str]) -> None:
    """Invalid (with the reason) unless the labels fit the clip: its length and rate, its catalogue's SKUs."""
    if labels.frame_count != frames:
        raise Invalid(f"the labels have {labels.frame_count} frames; the clip has {frames}")
    if abs(labels.fps - fps) > FPS_TOLERANCE:
        raise Invalid(f"the labels are at {labels.fps:g} fps; the clip is at {fps:g}")
    for e in labels.ledger:
        what = "pick" if e.kind == "take" else "put-back"
        if e.sku not in catalog:
            known = ", ".join(f"{k} ({v})" for k, v in sorted(catalog.items())) or "none"
            raise Invalid(f"the {what} at frame {e.frame} names SKU {e.sku!r}, which is not in the clip's catalogue "
                          f"({known})")  # fmt: skip
        if e.frame >= frames:
            raise Invalid(f"the {what} of {e.sku} at frame {e.frame} is outside the clip's {frames} frames")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where both are on one file system (instant, no second copy), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class Reviews:
    """Reviewed clips in central's database and data directory."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine, self.data_dir = engine, data_dir
        self.root = data_dir / FOLDER
        self._taking = threading.Lock()  # one clip taken in at a time in this process (the database keeps the rest)

    # -- reading ------------------------------------------------------------------------------------------------

    def clip(self, clip_id: str) -> Clip | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(db.review_clips).where(db.review_clips.c.clip_id == clip_id)).first()
        return self._clip(row) if row is not None else None

    def clips(self, store: str | None = None, state: str | None = None) -> list[Clip]:
        """Clips in review or verified (of one store, in one state), oldest first."""
        c = db.review_clips.c
        query = select(db.review_clips).order_by(c.created, c.clip_id)
        if store is not None:
            query = query.where(c.store == store)
        if state is not None:
            query = query.where(c.state == state)
        with self.engine.connect() as conn:
            return [self._clip(r) for r in conn.execute(query)]

    def versions(self, clip_id: str) -> list[Version]:
        v = db.label_versions.c
        query = select(v.version, v.token_id, v.saved, v.based_on).where(v.clip_id == clip_id).order_by(v.version)
        with self.engine.connect() as conn:
            return [Version(r.version, r.token_id, as_utc(r.saved), r.based_on) for r in conn.execute(query)]

    def labels(self, clip_id: str, version: int | None = None) -> LabelFile:
        """A version's labels (default: the latest)."""
        v = db.label_versions.c
        query = select(v.labels).where(v.clip_id == clip_id)
        query = query.where(v.version == version) if version is not None else query.order_by(v.version.desc())
        with self.engine.connect() as conn:
            data = conn.execute(query.limit(1)).scalar()
        if data is None:
            raise NotFound(f"clip {clip_id} has no labels version {version}")
        return LabelFile.model_validate(data if isinstance(data, dict) else json.loads(data))

    # -- changing -----------------------------------------------------------------------------------------------

    def take(self, source: Source) -> Clip:
        """Keep an analysis as a reviewed clip: its files into the data directory (linked where they can be), a
        row, and its prediction as version 0. Taking a clip already kept changes nothing."""
        with self._taking:
            known = self.clip(source.clip_id)
            if known is not None:
                return known
            store_dir = self.root / source.store
            store_dir.mkdir(parents=True, exist_ok=True)
            target = store_dir / source.clip_id
            partial = store_dir / f".{source.clip_id}.taking"
            shutil.rmtree(partial, ignore_errors=True)  # what a crash in the middle of a take left
            partial.mkdir()
            for f in source.folder.iterdir():
                if f.is_file():
                    link_or_copy(f, partial / f.name)
            video = source.video.name
            if source.video.parent.resolve() != source.folder.resolve():  # a clip analysed where it lay
                video = f"video{source.video.suffix.lower()}"
                link_or_copy(source.video, partial / video)
            shutil.rmtree(target, ignore_errors=True)  # a take whose row never made it
            partial.rename(target)
            result = json.loads((target / "result.json").read_text())
            prediction = prediction_labels(result, source.clip_id, source.bundle, fps=source.fps,
                                           frames=source.frames, width=source.width, height=source.height)  # fmt: skip
            now = db.now()
            row = {"clip_id": source.clip_id, "store": source.store, "name": source.name[:256], "state": "in_review",
                   "fps": source.fps, "frames": source.frames, "width": source.width, "height": source.height,
                   "day": source.day.isoformat(), "bundle": source.bundle[:128], "catalog": source.catalog,
                   "path": str(target.relative_to(self.data_dir)), "video": video,
                   "video_sha256": sha256_of(target / video), "created": now, "updated": now}  # fmt: skip
            try:
                with self.engine.begin() as conn:
                    conn.execute(db.review_clips.insert().values(**row))
                    conn.execute(db.label_versions.insert().values(
                        clip_id=source.clip_id, version=0, labels=_json(prediction), token_id=None, saved=now,
                        based_on=None))  # fmt: skip
            except IntegrityError:  # another central took it in first: theirs stands
                pass
        found = self.clip(source.clip_id)
        assert found is not None
        return found

    def save(self, clip_id: str, labels: LabelFile, token_id: str | None, based_on: int | None = None) -> int:
        """A new version of a kept clip's labels; returns its number. `based_on`: the version the caller edited;
        Conflict if another was saved since. The clip goes (back) into review."""
        clip = self._kept(clip_id)
        check(labels, frames=clip.frames, fps=clip.fps, catalog=clip.catalog)
        with self.engine.begin() as conn:
            latest = self._latest(conn, clip_id)
            if based_on is not None and based_on != latest:
                saved = conn.execute(select(db.label_versions.c.token_id, db.label_versions.c.saved).where(
                    db.label_versions.c.clip_id == clip_id, db.label_versions.c.version == latest)).one()  # fmt: skip
                raise Conflict(f"version {latest} was saved since version {based_on} was opened (by token "
                               f"{saved.token_id}, {as_utc(saved.saved):%Y-%m-%d %H:%M} UTC): reload the clip "
                               "and make the change again")  # fmt: skip
            version, now = latest + 1, db.now()
            review = ReviewRecord(clip=clip_id, version=version, based_on=latest, prediction=clip.bundle,
                                  saved_by=token_id, saved_at=now)  # fmt: skip
            kept = finish(labels, list(labels.ledger), clip.name, clip.width, clip.height, review)
            conn.execute(db.label_versions.insert().values(clip_id=clip_id, version=version, labels=_json(kept),
                                                           token_id=token_id, saved=now, based_on=latest))  # fmt: skip
            conn.execute(update(db.review_clips).where(db.review_clips.c.clip_id == clip_id).values(
                state="in_review", updated=now, verified=None, verified_by=None, verified_version=None))  # fmt: skip
        return version

    def verify(self, clip_id: str, token_id: str | None, version: int | None = None) -> Clip:
        """The latest version is right (`version`, when given, must be the latest: Conflict otherwise). A clip
        with only the prediction gets it as version 1, saved by the verifier: verified as predicted."""
        latest = self._latest_of(clip_id)
        if version is not None and version != latest:
            raise Conflict(f"version {latest} was saved since version {version} was opened: reload the clip")
        if latest == 0:
            latest = self.save(clip_id, self.labels(clip_id, 0), token_id, based_on=0)
        with self.engine.begin() as conn:
            now = db.now()
            if self._latest(conn, clip_id) != latest:
                raise Conflict(f"version {self._latest(conn, clip_id)} was saved since version {latest}: reload the "
                               "clip")  # fmt: skip
            conn.execute(update(db.review_clips).where(db.review_clips.c.clip_id == clip_id).values(
                state="verified", updated=now, verified=now, verified_by=token_id,
                verified_version=latest))  # fmt: skip
        found = self.clip(clip_id)
        assert found is not None
        return found

    def delete(self, clip_id: str) -> None:
        """The clip, its every labels version and its files: gone."""
        clip = self._kept(clip_id)
        with self.engine.begin() as conn:
            conn.execute(delete(db.label_versions).where(db.label_versions.c.clip_id == clip_id))
            conn.execute(delete(db.review_clips).where(db.review_clips.c.clip_id == clip_id))
        shutil.rmtree(clip.folder, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------------------------

    def _kept(self, clip_id: str) -> Clip:
        clip = self.clip(clip_id)
        if clip is None:
            raise NotFound(f"clip {clip_id} is not kept for review")
        return clip

    def _latest_of(self, clip_id: str) -> int:
        with self.engine.connect() as conn:
            return self._latest(conn, clip_id)

    @staticmethod
    def _latest(conn: Any, clip_id: str) -> int:
        latest = conn.execute(select(func.max(db.label_versions.c.version)).where(
            db.label_versions.c.clip_id == clip_id)).scalar()  # fmt: skip
        if latest is None:
            raise NotFound(f"clip {clip_id} is not kept for review")
        return int(latest)

    def _clip(self, row: Row) -> Clip:
        m = row._mapping
        folder = self.data_dir / m["path"]
        return Clip(
            clip_id=m["clip_id"], store=m["store"], name=m["name"], state=m["state"], fps=m["fps"],
            frames=m["frames"], width=m["width"], height=m["height"], day=m["day"], bundle=m["bundle"],
            catalog=dict(m["catalog"] if isinstance(m["catalog"], dict) else json.loads(m["catalog"])),
            folder=folder, video=folder / m["video"], video_sha256=m["video_sha256"],
            created=as_utc(m["created"]), updated=as_utc(m["updated"]),
            verified=as_utc(m["verified"]) if m["verified"] is not None else None,
            verified_by=m["verified_by"], verified_version=m["verified_version"],
        )  # fmt: skip


def _json(labels: LabelFile) -> dict:
    """The labels as the JSON column keeps them (what `LabelFile.model_validate` reads back)."""
    return json.loads(labels.model_dump_json(exclude_none=True))


def utc_day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, timezone.utc).date()
