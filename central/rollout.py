"""Fleet rollouts: central sends a bundle (or a config) to many boxes, a few first, then faster, and stops by itself
when too many fail (AWS IoT Greengrass's rollout and abort rules, for ShelfWatch bundles).

A rollout is rows in central's database (`rollouts`, `rollout_boxes`), so a central that restarts goes on where it
stopped. `shelfwatch central rollout start|abort` only write those rows; the `Rollouts` engine inside `central run`
carries them out, once a second (`tick`):

- each box of the rollout is `pending` (not yet sent; an offline box waits there until it is back), `sent` (its
  `desired` control message names the new bundle: retained at the broker, so a box that drops off finds it when it
  returns), `staged` (it downloaded, checked and staged it), `running` (its heartbeat reports the new bundle running,
  or for a config, it switched to it), `failed` (it refused it, its health gate did, it rolled back after the switch,
  or it said nothing within the timeout), `reverted` (aborted: its `desired` set back to what it was told before) or
  `cancelled` (aborted before its turn);
- the canaries (the first `canary` boxes online) go first; the rest wait until every canary box has finished;
- then the others go at `rate` boxes a minute, one at a time, the rate doubling each time `double_after` more boxes
  have reported the new bundle running;
- when the failed share of the boxes attempted passes `abort_at`, the rollout is aborted: boxes not yet sent are
  cancelled, and every box already sent is told its previous bundle again;
- the rollout is `done` when no box is pending or on its way; `aborting` (asked by `rollout abort`) until central has
  set the boxes back, then `aborted`.

`plan` is the decision alone, a pure function of the boxes' states and the clock (tests run it on a fake clock);
`Rollouts` reads the boxes' reports, applies the plan and records it.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import Field
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from central import db
from central.files import FileStore, pack_bundle
from central.service import Central
from edge.bundle import MANIFEST, load_bundle
from edge.control import Desired, FileRef, control_topic, encode_control
from edge.errors import ShelfWatchError
from edge.schema import Strict
from edge.times import as_utc

TICK_S = 1.0  # how often `central run` looks at its rollouts
REPORT_SLACK_S = 2.0  # a box's report may carry a time this much before central sent it (clocks differ a little)
ACTIVE = ("sent", "staged")  # on their way: the timeout runs
ATTEMPTED = ("sent", "staged", "running", "failed")
RUNNING_STATES = ("running", "aborting")  # rollouts the engine works on


class Params(Strict):
    """How a rollout proceeds (the defaults are Greengrass's spirit at a store chain's scale)."""

    canary: int = Field(default=1, ge=0, description="boxes that go first; the rest wait until they have finished")
    rate: float = Field(default=5.0, gt=0, le=10_000, description="boxes a minute after the canaries")
    double_after: int = Field(default=10, ge=1, description="the rate doubles each time this many more run it")
    abort_at: float = Field(default=0.05, ge=0, le=1, description="abort when the failed share passes this")
    timeout_s: float = Field(default=300.0, gt=0, description="a box that has not reported by then has failed")


# -- the decision: a pure function ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxView:
    key: tuple[str, str]  # (store, box)
    state: str
    online: bool
    canary: bool = False
    sent_at: float | None = None  # seconds on the plan's clock


@dataclass(frozen=True)
class Plan:
    send: list[tuple[tuple[str, str], bool]] = field(default_factory=list)  # (box, as a canary)
    timed_out: list[tuple[str, str]] = field(default_factory=list)
    abort: str | None = None
    done: bool = False
    credit: float = 1.0
    credit_at: float | None = None
    waiting: str | None = None  # why nothing more goes now (for the status)


def rate_now(params: Params, succeeded: int) -> float:
    """Boxes a minute once `succeeded` boxes run the new bundle: the rate doubles every `double_after` of them."""
    return params.rate * 2 ** min(succeeded // params.double_after, 20)


def credit_cap(rate: float) -> float:
    """The most boxes sent at once: one, or five seconds' worth of a fast rate (a central that was away does not
    release a minute's boxes in one go)."""
    return max(1.0, rate * 5 / 60)


def plan(params: Params, boxes: list[BoxView], credit: float, credit_at: float | None, now: float) -> Plan:
    """What to do now with a running rollout's boxes (in their order): which boxes to send, which have timed out,
    whether to abort, whether it is done. `credit`/`credit_at`: the rate's allowance as last recorded (credit_at None
    until the canaries have finished)."""
    timed_out = [
        b.key for b in boxes if b.state in ACTIVE and b.sent_at is not None and now - b.sent_at >= params.timeout_s
    ]
    states = {b.key: ("failed" if b.key in timed_out else b.state) for b in boxes}
    attempted = [k for k, s in states.items() if s in ATTEMPTED]
    failed = [k for k, s in states.items() if s == "failed"]
    if attempted and len(failed) / len(attempted) > params.abort_at:
        share = 100 * len(failed) / len(attempted)
        why = (f"{len(failed)} of {len(attempted)} boxes attempted failed ({share:.0f} %), over the "
               f"{100 * params.abort_at:g} % this rollout allows")  # fmt: skip
        return Plan(timed_out=timed_out, abort=why, credit=credit, credit_at=credit_at)
    pending = [b for b in boxes if states[b.key] == "pending"]
    if not pending and not any(states[b.key] in ACTIVE for b in boxes):
        return Plan(timed_out=timed_out, done=True, credit=credit, credit_at=credit_at)
    ready = [b for b in pending if b.online]
    canaries = [b for b in boxes if b.canary]
    send = [(b.key, True) for b in ready[: max(0, params.canary - len(canaries))]]  # the first boxes online
    if send or any(states[b.key] in ACTIVE for b in canaries):
        return Plan(send, timed_out, credit=credit, credit_at=credit_at, waiting="the canaries have not finished")
    if len(canaries) < params.canary:  # none is online to be the next canary
        return Plan([], timed_out, credit=credit, credit_at=credit_at,
                    waiting=f"{len(pending)} box(es) offline: each gets it when it is back")  # fmt: skip
    running = sum(1 for s in states.values() if s == "running")
    rate = rate_now(params, running)
    if credit_at is None:  # the canaries have finished: the first of the rest goes at once
        credit, credit_at = 1.0, now
    else:
        credit = min(credit_cap(rate), credit + rate * max(0.0, now - credit_at) / 60)
        credit_at = now
    for b in ready:
        if credit < 1.0 - 1e-9:  # sums of fractions of a second land a hair under 1
            break
        send.append((b.key, False))
        credit -= 1.0
    waiting = None
    if len(ready) > len(send):
        waiting = f"{rate:g} boxes a minute"
    elif len(pending) > len(send):
        waiting = f"{len(pending) - len(send)} box(es) offline: each gets it when it is back"
    return Plan(send, timed_out, credit=credit, credit_at=credit_at, waiting=waiting)


# -- parsing what people type ---------------------------------------------------------------------------------------


def parse_duration(text: str, flag: str = "--timeout") -> float:
    """`90s`, `5m`, `1h` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", text)
    if not match:
        raise ShelfWatchError(f"{flag} {text!r}: write a duration like 90s, 5m or 1h")
    value = float(match.group(1)) * {"s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]
    if value <= 0:
        raise ShelfWatchError(f"{flag} {text!r}: give a duration above zero")
    return value


def parse_rate(text: str) -> float:
    """`5/min`, `5` (a minute) or `1/s`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(min|m|s|h))?\s*", text)
    if not match:
        raise ShelfWatchError(f"--rate {text!r}: write boxes a minute, like 5/min")
    value = float(match.group(1)) * {None: 1, "min": 1, "m": 1, "s": 60, "h": 1 / 60}[match.group(2)]
    if not 0 < value <= 10_000:
        raise ShelfWatchError(f"--rate {text!r}: give a rate above zero and at most 10000 boxes a minute")
    return value


def parse_share(text: str) -> float:
    """`5%` or `5` (percent)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
    if not match or float(match.group(1)) > 100:
        raise ShelfWatchError(f"--abort-at {text!r}: give a percentage from 0 to 100, like 5%")
    return float(match.group(1)) / 100


def duration_text(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


# -- starting one ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # bundle or config
    target: str  # bundle id or config digest
    source: str
    tar: bytes | None = None  # a bundle, packed as boxes fetch it
    config: dict | None = None


def bundle_target(folder: Path) -> Target:
    """A bundle folder, checked and packed as boxes fetch it (signed or not: each box checks with its own keys)."""
    if not (folder / MANIFEST).is_file():
        raise ShelfWatchError(f"--bundle {folder}: no bundle there (no {MANIFEST})")
    bundle_id, tar = pack_bundle(folder)
    return Target("bundle", bundle_id, str(folder), tar=tar)


def config_target(path: Path) -> Target:
    """A box config as a YAML mapping: every box gets it with its own store and box (what only provisioning sets,
    identity, broker, keys, is never taken from it by the box)."""
    import hashlib

    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ShelfWatchError(f"--config {path}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        raise ShelfWatchError(f"--config {path}: not valid YAML ({' '.join(str(exc).split())[:150]})") from None
    if not isinstance(data, dict):
        raise ShelfWatchError(f"--config {path}: a box config is a YAML mapping")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Target("config", f"config-{digest}", str(path), config=json.loads(json.dumps(data, default=str)))


def check_gate(verdict_file: Path, target: Target) -> dict:
    """`eval compare`'s verdict JSON: its summary when it says promote for this very bundle; else ShelfWatchError
    with one line saying why the rollout does not start."""
    from pydantic import ValidationError

    from edge.schema import describe
    from training.bundle_compare import Verdict

    try:
        verdict = Verdict.model_validate_json(verdict_file.read_bytes())
    except OSError as exc:
        raise ShelfWatchError(f"--gate {verdict_file}: cannot read it ({exc.strerror})") from None
    except ValidationError as exc:
        raise ShelfWatchError(f"--gate {verdict_file}: not an `eval compare` verdict ({describe(exc)})") from None
    if target.kind != "bundle":
        raise ShelfWatchError("--gate judges bundles: a config rollout has no verdict")
    if verdict.new.bundle_id != target.target:
        raise ShelfWatchError(f"--gate {verdict_file}: the verdict is about bundle {verdict.new.bundle_id}, not "
                              f"{target.target}: nothing started")  # fmt: skip
    if verdict.verdict != "promote":
        failed = "; ".join(c.detail for c in verdict.checks if not c.passed)[:200]
        raise ShelfWatchError(f"--gate {verdict_file}: the verdict is {verdict.verdict.replace('_', ' ')}, not "
                              f"promote{': ' + failed if failed else ''}; nothing started")  # fmt: skip
    return {"file": str(verdict_file), "verdict": verdict.verdict, "old": verdict.old.bundle_id,
            "created": verdict.created.isoformat()}  # fmt: skip


def resolve_boxes(conn: Connection, stores: list[str], boxes: list[str]) -> list[tuple[str, str]]:
    """`--boxes STORE/BOX ...` in the order given, or every box central knows of `--stores S ...`, sorted."""
    if boxes:
        out = []
        for item in boxes:
            store, sep, box = item.partition("/")
            if not sep or not store or not box or "/" in box:
                raise ShelfWatchError(f"--boxes {item!r}: write STORE/BOX")
            if (store, box) not in out:
                out.append((store, box))
        return out
    known = [(r["store"], r["box"]) for r in db.box_rows(conn)]
    out = [k for k in known if k[0] in stores]
    missing = [s for s in stores if not any(k[0] == s for k in known)]
    if missing:
        raise ShelfWatchError(f"--stores: central knows no box of {', '.join(missing)} (a box is known once it has "
                              "sent a heartbeat; name boxes with --boxes STORE/BOX)")  # fmt: skip
    return out


def start(central: Central, files: FileStore, target: Target, boxes: list[tuple[str, str]], params: Params,
          gate: dict | None = None) -> int:  # fmt: skip
    """Record a new rollout (the engine in `central run` carries it out); its id. Refused while one of its boxes is
    in another rollout that is still running."""
    if not boxes:
        raise ShelfWatchError("no boxes to roll out to")
    now = db.now()
    file_name = file_sha = None
    if target.tar is not None:
        file_name = f"bundle-{target.target[:32]}.tar"
        try:
            file_sha = files.keep(target.tar)
        except OSError as exc:
            raise ShelfWatchError(f"{files.root}: cannot keep the bundle there ({exc.strerror or exc})") from None
    with central.engine.begin() as conn:
        r, b = db.rollouts.c, db.rollout_boxes.c
        busy = conn.execute(select(b.store, b.box, r.rollout_id).join(db.rollouts, r.rollout_id == b.rollout_id).where(
            r.state.in_(RUNNING_STATES), b.state.in_(("pending", *ACTIVE)))).all()  # fmt: skip
        taken = {(s, x): i for s, x, i in busy}
        clash = [f"{s}/{x} (rollout {taken[(s, x)]})" for s, x in boxes if (s, x) in taken]
        if clash:
            raise ShelfWatchError(f"already in a running rollout: {', '.join(clash[:5])}; abort it first, or wait")
        rollout_id = conn.execute(db.rollouts.insert().values(
            kind=target.kind, target=target.target, source=target.source[:1000], file_name=file_name,
            file_sha256=file_sha, config=target.config, params=params.model_dump(), gate=gate, state="running",
            credit=1.0, credit_at=None, created=now, updated=now)).inserted_primary_key[0]  # fmt: skip
        conn.execute(db.rollout_boxes.insert(), [
            {"rollout_id": rollout_id, "store": s, "box": x, "position": i, "canary": False, "state": "pending"}
            for i, (s, x) in enumerate(boxes)])  # fmt: skip
    return int(rollout_id)


def request_abort(central: Central, rollout_id: int, why: str) -> str:
    """Ask the engine to abort a running rollout (it sets the boxes back at its next tick); its state before."""
    with central.engine.begin() as conn:
        row = conn.execute(select(db.rollouts).where(db.rollouts.c.rollout_id == rollout_id)).first()
        if row is None:
            raise ShelfWatchError(f"no rollout {rollout_id} (see `shelfwatch central rollout status`)")
        if row.state != "running":
            raise ShelfWatchError(f"rollout {rollout_id} is {row.state}: only a running rollout can be aborted")
        conn.execute(update(db.rollouts).where(db.rollouts.c.rollout_id == rollout_id).values(
            state="aborting", reason=why[:500], updated=db.now()))  # fmt: skip
    return row.state


# -- carrying them out ----------------------------------------------------------------------------------------------


def _seconds(ts: datetime | None) -> float | None:
    return as_utc(ts).timestamp() if ts is not None else None


class Rollouts:
    """The engine `central run` ticks: reads the boxes' reports, applies `plan`, sends `desired` messages."""

    def __init__(self, central: Central, files: FileStore, bundles_dir: Path | None = None,
                 clock: Callable[[], datetime] = db.now, log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.central, self.files, self.bundles_dir, self.clock = central, files, bundles_dir, clock
        self.log = log or (lambda message: None)
        self.waiting: dict[int, str | None] = {}  # why each rollout sends nothing now (not kept: recomputed each tick)
        self._resumed = False

    def tick(self) -> None:
        if not self._resumed:
            self.resume()
        with self.central.engine.connect() as conn:
            ids = [r.rollout_id for r in conn.execute(select(db.rollouts.c.rollout_id).where(
                db.rollouts.c.state.in_(RUNNING_STATES)).order_by(db.rollouts.c.rollout_id))]  # fmt: skip
        for rollout_id in ids:
            self.step(rollout_id)

    def resume(self) -> None:
        """At the first tick (central started): publish again the `desired` of every box a running rollout has sent
        and not heard back from. Central may have stopped between recording one and publishing it; a box that had it
        already knows it by its content and does nothing twice."""
        r, b, c = db.rollouts.c, db.rollout_boxes.c, db.controls.c
        with self.central.engine.connect() as conn:
            rows = conn.execute(select(c.store, c.box, c.payload).join(db.rollout_boxes, (b.store == c.store) & (
                b.box == c.box)).join(db.rollouts, r.rollout_id == b.rollout_id).where(
                r.state.in_(RUNNING_STATES), b.state.in_(ACTIVE), c.name == "desired")).all()  # fmt: skip
        for store, box, payload in rows:
            message = Desired.model_validate(payload)
            self.central.publish(control_topic(store, box, "desired"), encode_control(message))
        self._resumed = True

    def step(self, rollout_id: int) -> None:
        now = self.clock()
        sends: list[tuple[tuple[str, str], Desired]] = []
        published: list[tuple[str, bytes]] = []
        with self.central.engine.begin() as conn:
            query = select(db.rollouts).where(db.rollouts.c.rollout_id == rollout_id)
            rollout = conn.execute(query.with_for_update()).first()  # one central at a time works on it
            if rollout is None or rollout.state not in RUNNING_STATES:
                return
            params = Params.model_validate(rollout.params)
            rows = self._boxes(conn, rollout_id)
            online = self._online(conn)
            for row in rows:  # what the boxes reported since
                if row["state"] in (*ACTIVE, "running"):
                    state, reason = self._observe(conn, rollout, row)
                    if state != row["state"]:
                        self._set(conn, rollout_id, row, state, reason, now)
            if rollout.state == "aborting":
                sends = self._abort(conn, rollout, rows, rollout.reason or "aborted by hand", now)
            else:
                views = [BoxView((r["store"], r["box"]), r["state"], (r["store"], r["box"]) in online, r["canary"],
                                 _seconds(r["sent_at"])) for r in rows]  # fmt: skip
                decided = plan(params, views, rollout.credit, _seconds(rollout.credit_at), now.timestamp())
                self.waiting[rollout_id] = decided.waiting
                by_key = {(r["store"], r["box"]): r for r in rows}
                for key in decided.timed_out:
                    self._set(conn, rollout_id, by_key[key], "failed",
                              f"no report within {duration_text(params.timeout_s)} of being sent it", now)  # fmt: skip
                if decided.abort:
                    self.log(f"rollout {rollout_id} aborted: {decided.abort}")
                    sends = self._abort(conn, rollout, self._boxes(conn, rollout_id), decided.abort, now)
                else:
                    for key, canary in decided.send:
                        row = by_key[key]
                        message = self._message(conn, rollout, key, now)
                        previous = self._desired(conn, key)
                        status = self._status(conn, key)
                        conn.execute(update(db.rollout_boxes).where(*self._is(rollout_id, row)).values(
                            state="sent", canary=canary, sent_at=now, reason=None, previous=previous,
                            previous_bundle=status.get("bundle_id")))  # fmt: skip
                        sends.append((key, message))
                    state = "done" if decided.done else "running"
                    credit_at = datetime.fromtimestamp(decided.credit_at, now.tzinfo) if decided.credit_at else None
                    conn.execute(update(db.rollouts).where(db.rollouts.c.rollout_id == rollout_id).values(
                        state=state, credit=decided.credit, credit_at=credit_at, updated=now))  # fmt: skip
                    if decided.done:
                        self.log(f"rollout {rollout_id} done")
            for (store, box), message in sends:  # kept with the rollout's rows, in one transaction
                published.append(self.central.record_control(conn, store, box, message))
        for ((store, box), _), (topic, payload) in zip(sends, published, strict=True):  # once that is committed
            self.central.publish(topic, payload)
            self.log(f"rollout {rollout_id}: {store}/{box} sent it")

    # -- reading -------------------------------------------------------------------------------------------------

    @staticmethod
    def _boxes(conn: Connection, rollout_id: int) -> list[dict]:
        b = db.rollout_boxes.c
        rows = conn.execute(select(db.rollout_boxes).where(b.rollout_id == rollout_id).order_by(b.position))
        return [dict(r._mapping) for r in rows]

    @staticmethod
    def _is(rollout_id: int, row: dict) -> tuple:
        b = db.rollout_boxes.c
        return (b.rollout_id == rollout_id, b.store == row["store"], b.box == row["box"])

    @staticmethod
    def _online(conn: Connection) -> set[tuple[str, str]]:
        return {(r.store, r.box) for r in conn.execute(select(db.boxes.c.store, db.boxes.c.box).where(
            db.boxes.c.online.is_(True)))}  # fmt: skip

    @staticmethod
    def _status(conn: Connection, key: tuple[str, str]) -> dict:
        status = conn.execute(select(db.boxes.c.status).where(db.boxes.c.store == key[0],
                                                              db.boxes.c.box == key[1])).scalar()  # fmt: skip
        return status if isinstance(status, dict) else {}

    @staticmethod
    def _desired(conn: Connection, key: tuple[str, str]) -> dict | None:
        c = db.controls.c
        payload = conn.execute(select(c.payload).where(c.store == key[0], c.box == key[1],
                                                       c.name == "desired")).scalar()  # fmt: skip
        return payload if isinstance(payload, dict) else None

    def _observe(self, conn: Connection, rollout, row: dict) -> tuple[str, str | None]:
        """A sent box's state from what it reported since it was sent: its control events and its heartbeat."""
        key, state = (row["store"], row["box"]), row["state"]
        status = self._status(conn, key)
        target = rollout.target
        since = as_utc(row["sent_at"]) - timedelta(seconds=REPORT_SLACK_S)
        e = db.events.c
        reports = conn.execute(select(e.payload).where(e.store == key[0], e.box == key[1], e.kind == "control",
                                                       e.ts >= since).order_by(e.ts, e.seq)).all()  # fmt: skip
        for (payload,) in reports:
            event = payload if isinstance(payload, dict) else json.loads(payload)
            if event.get("name") != "desired":
                continue
            detail = event.get("detail") or ""
            if event.get("state") == "refused" and not _names_another(detail, target) and (
                    state != "running" or target[:64] in detail):  # fmt: skip
                # A box that ran it and went back (3 crashes in its trial) says so the same way: `abandoned`.
                return "failed", f"refused: {detail}"[:500]
            if state in ACTIVE and event.get("state") == "staged":
                state = "staged"
            if rollout.kind == "config" and event.get("state") == "done" and "switched to" in detail:
                state = "running"
        if rollout.kind == "bundle" and status.get("bundle_id") == target and status.get("state") == "running":
            return "running", None  # its heartbeat reports it running (Greengrass's RUNNING)
        return state, None if state == "running" else row["reason"]

    # -- writing -------------------------------------------------------------------------------------------------

    def _set(self, conn: Connection, rollout_id: int, row: dict, state: str, reason: str | None, now: datetime) -> None:
        done = now if state in ("running", "failed", "reverted", "cancelled") else None
        conn.execute(update(db.rollout_boxes).where(*self._is(rollout_id, row)).values(
            state=state, reason=reason, done_at=done))  # fmt: skip
        row.update(state=state, reason=reason, done_at=done)
        if state == "failed":
            self.log(f"rollout {rollout_id}: {row['store']}/{row['box']} failed: {reason}")

    def _message(self, conn: Connection, rollout, key: tuple[str, str], now: datetime) -> Desired:
        """The box's new `desired`: this rollout's bundle (or config), and what its previous one said of the other."""
        previous = self._desired(conn, key)
        kept = Desired.model_validate(previous) if previous else Desired(issued=now)
        if rollout.kind == "bundle":
            ref = self.files.address_kept(key[0], key[1], "bundle", rollout.file_name, rollout.file_sha256, conn)
            return kept.model_copy(update={"issued": now, "bundle": ref, "bundle_id": rollout.target[:64]})
        content = json.dumps(rollout.config | {"store": key[0], "box": key[1]}, indent=1).encode()
        ref = self.files.address(key[0], key[1], "config", f"{rollout.target}.yaml", content, conn)  # JSON is YAML
        return kept.model_copy(update={"issued": now, "config": ref})

    def _abort(self, conn: Connection, rollout, rows: list[dict], why: str,
               now: datetime) -> list[tuple[tuple[str, str], Desired]]:  # fmt: skip
        """Cancel the boxes not yet sent; tell every box already sent what it was told before (its previous bundle)."""
        sends = []
        for row in rows:
            key = (row["store"], row["box"])
            if row["state"] == "pending":
                self._set(conn, rollout.rollout_id, row, "cancelled", "the rollout was aborted before its turn", now)
            elif row["state"] in (*ATTEMPTED,):
                message, what = self._previous(conn, rollout, row, now)
                if message is not None:
                    sends.append((key, message))
                if row["state"] != "failed":
                    self._set(conn, rollout.rollout_id, row, "reverted" if message is not None else row["state"],
                              what, now)  # fmt: skip
        conn.execute(update(db.rollouts).where(db.rollouts.c.rollout_id == rollout.rollout_id).values(
            state="aborted", reason=why[:500], updated=now))  # fmt: skip
        return sends

    def _previous(self, conn: Connection, rollout, row: dict, now: datetime) -> tuple[Desired | None, str]:
        """The `desired` message that sets the box back, and what it says (or None and why it cannot)."""
        previous = row["previous"]
        if previous:
            message = Desired.model_validate(previous).model_copy(update={"issued": now})
            return message, f"set back to {message.bundle_id or 'its previous desired state'}"
        bundle_id = row["previous_bundle"]
        if rollout.kind != "bundle" or not bundle_id:
            return None, "nothing to set back to: the box had never been sent anything (it keeps what it runs)"
        ref = self._find_bundle(conn, row["store"], row["box"], bundle_id)
        if ref is None:
            return None, (f"cannot set back: bundle {bundle_id} (what it ran before) is neither in central's bundles "
                          "folder nor in an earlier rollout")  # fmt: skip
        return Desired(issued=now, bundle=ref, bundle_id=bundle_id[:64]), f"set back to {bundle_id}"

    def _find_bundle(self, conn: Connection, store: str, box: str, bundle_id: str) -> FileRef | None:
        r = db.rollouts.c
        earlier = conn.execute(select(r.file_name, r.file_sha256).where(
            r.kind == "bundle", r.target == bundle_id, r.file_sha256.is_not(None))).first()  # fmt: skip
        if earlier is not None and self.files.has_blob(earlier.file_sha256):
            return self.files.address_kept(store, box, "bundle", earlier.file_name, earlier.file_sha256, conn)
        for folder in _bundle_folders(self.bundles_dir):
            with contextlib.suppress(ShelfWatchError, OSError, ValueError):
                if load_bundle(folder).bundle_id == bundle_id:
                    found_id, tar = pack_bundle(folder)
                    return self.files.address(store, box, "bundle", f"bundle-{found_id[:32]}.tar", tar, conn)
        return None


_HEX_ID = re.compile(r"\b[0-9a-f]{16,64}\b")


def _names_another(detail: str, target: str) -> bool:
    """Whether a box's refusal names some other bundle or file than `target` (by its id or digest): the refusal of an
    earlier rollout's bundle, reported late or again, is not this rollout's failure."""
    named = _HEX_ID.findall(detail)
    return bool(named) and not any(target.startswith(n) or n.startswith(target[:16]) for n in named)


def _bundle_folders(root: Path | None) -> Iterable[Path]:
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / MANIFEST).is_file())


# -- what people read -----------------------------------------------------------------------------------------------


class BoxInRollout(Strict):
    store: str
    box: str
    state: str = Field(description="pending, sent, staged, running, failed, reverted or cancelled")
    canary: bool
    sent_at: str | None
    done_at: str | None
    reason: str | None = Field(description="why it failed, was set back or cancelled (the box's own words)")
    previous_bundle: str | None = Field(description="the bundle it reported running when it was sent this one")


class RolloutView(Strict):
    """A rollout as `rollout status --json`, `GET /rollouts` and the dashboard give it."""

    rollout_id: int
    kind: str = Field(description="bundle or config")
    target: str = Field(description="the bundle id, or config-<digest>")
    source: str
    state: str = Field(description="running, aborting, aborted or done")
    reason: str | None
    params: Params
    gate: dict | None
    created: str
    updated: str
    counts: dict[str, int] = Field(description="boxes per state")
    total: int
    rate_now: float = Field(description="boxes a minute, after its doublings so far")
    boxes: list[BoxInRollout]


def visible(items: list[dict], stores: set[str] | None) -> list[dict]:
    """Rollouts as `stores` may see them (None: every store): only their boxes, counted again; a rollout that
    reaches none of them is left out."""
    out = []
    for item in items:
        mine = [b for b in item["boxes"] if stores is None or b["store"] in stores]
        if mine:
            counts = {k: sum(1 for b in mine if b["state"] == k) for k in item["counts"]}
            out.append(item | {"boxes": mine, "counts": counts, "total": len(mine)})
    return out


def summary(conn: Connection, rollout_id: int | None = None, limit: int = 5) -> list[dict]:
    """Rollouts (the newest first, or the one asked for) with their boxes: what `rollout status` prints and the
    dashboard shows."""
    r = db.rollouts.c
    query = select(db.rollouts).order_by(r.rollout_id.desc())
    query = query.where(r.rollout_id == rollout_id) if rollout_id is not None else query.limit(limit)
    out = []
    for row in conn.execute(query):
        boxes = Rollouts._boxes(conn, row.rollout_id)
        counts = {s: sum(1 for b in boxes if b["state"] == s) for s in
                  ("pending", "sent", "staged", "running", "failed", "reverted", "cancelled")}  # fmt: skip
        params = Params.model_validate(row.params)
        out.append({
            "rollout_id": row.rollout_id, "kind": row.kind, "target": row.target, "source": row.source,
            "state": row.state, "reason": row.reason, "params": params.model_dump(), "gate": row.gate,
            "created": as_utc(row.created).isoformat(), "updated": as_utc(row.updated).isoformat(),
            "counts": counts, "total": len(boxes),
            "rate_now": rate_now(params, counts["running"]),
            "boxes": [{"store": b["store"], "box": b["box"], "state": b["state"], "canary": b["canary"],
                       "sent_at": as_utc(b["sent_at"]).isoformat() if b["sent_at"] else None,
                       "done_at": as_utc(b["done_at"]).isoformat() if b["done_at"] else None,
                       "reason": b["reason"], "previous_bundle": b["previous_bundle"]} for b in boxes],
        })  # fmt: skip
    return out


def describe_rollout(item: dict) -> str:
    """One rollout as a person reads it."""
    p, c = item["params"], item["counts"]
    head = (f"rollout {item['rollout_id']}: {item['kind']} {item['target']} ({item['source']}): {item['state']}"
            + (f" ({item['reason']})" if item["reason"] else ""))  # fmt: skip
    progress = (f"  {c['running']} of {item['total']} running it, {c['failed']} failed, {c['sent'] + c['staged']} on "
                f"their way, {c['pending']} pending" + (f", {c['reverted']} set back" if c["reverted"] else "")
                + (f", {c['cancelled']} cancelled" if c["cancelled"] else ""))  # fmt: skip
    rules = (f"  canary {p['canary']}, then {p['rate']:g}/min (now {item['rate_now']:g}/min) doubling after every "
             f"{p['double_after']} running, abort above {100 * p['abort_at']:g} % failed, timeout "
             f"{duration_text(p['timeout_s'])}")  # fmt: skip
    lines = [head, progress, rules]
    for b in item["boxes"]:
        when = b["done_at"] or b["sent_at"] or ""
        line = f"  {b['store'] + '/' + b['box']:<32} {b['state']:<9} {'canary' if b['canary'] else '':<6} {when[:19]}"
        lines.append(line.rstrip() + (f"  {b['reason']}" if b["reason"] else ""))
    return "\n".join(lines)
