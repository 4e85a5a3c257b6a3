"""How long central keeps the clips boxes send: `--clip-retention-days` (30) after it arrived, a box clip is deleted,
its file and its row, and so is the analysis made of it for the editor, unless someone took it into review (a saved
correction makes it training data, kept in `reviews/` until deleted explicitly: `central.review`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from central import db

SWEEP_S = 3600.0  # how often central run looks for clips past their retention


def expire_clips(engine: Engine, data_dir: Path, days: float, now: datetime | None = None,
                 forget_analysis: Callable[[str], None] | None = None) -> list[str]:  # fmt: skip
    """Delete the box clips that arrived more than `days` ago; returns their `<store>/<box>/<name>`."""
    cutoff = (now or db.now()) - timedelta(days=days)
    f = db.files.c
    gone = []
    with engine.begin() as conn:
        rows = conn.execute(select(db.files).where(f.kind == "clip", f.direction == "up", f.created < cutoff)).all()
        for r in rows:
            (data_dir / r.path).unlink(missing_ok=True)
            conn.execute(delete(db.files).where(f.store == r.store, f.box == r.box, f.kind == r.kind, f.name == r.name))
            if r.analysis is not None and forget_analysis is not None:
                forget_analysis(r.analysis)
            gone.append(f"{r.store}/{r.box}/{r.name}")
    return gone


def keep_sweeping(sweep: Callable[[], object], stop: threading.Event, every_s: float = SWEEP_S) -> threading.Thread:
    """Run `sweep` now and every `every_s` until `stop` is set (a failed sweep is tried again at the next turn)."""

    def loop() -> None:
        while True:
            try:
                sweep()
            except Exception as exc:  # the database away, say: the next turn tries again
                print(f"central: clip retention: {type(exc).__name__}: {exc}", flush=True)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=loop, name="clip-retention", daemon=True)
    thread.start()
    return thread
