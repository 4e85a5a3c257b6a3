"""Fleet rollouts, fast: the schedule as a pure function on a fake clock (canaries first, a rate that doubles, the
timeout and the abort rule), then the engine on central's database (both backends) with boxes that report as real
boxes do (heartbeats naming the bundle they run, `control` events), a fake clock and the control messages caught where
the broker would get them; and the command line's refusals. The real processes: test_rollout_fleet.py."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from central import db
from central.files import FileStore
from central.rollout import (
    BoxView,
    Params,
    Plan,
    Rollouts,
    _names_another,
    bundle_target,
    config_target,
    plan,
    request_abort,
    start,
    summary,
)
from edge.control import Desired, FileRef, decode_control
from edge.events import ControlEvent, StatusEvent, encode, topic
from shelfwatch.cli import main
from tests.central.conftest import api
from tests.edge.test_slots import demo_variant

S = "s1"
BOXES = [(S, "b1"), (S, "b2"), (S, "b3")]


def simulate(params: Params, n: int, fail: set[int] = frozenset(), seconds: int = 600, online=lambda i, t: True):
    """Run `plan` once a second for `seconds` over n boxes that report running (or failed, those in `fail`) 3 s after
    being sent: when each box was sent, and the last plan."""
    states = ["pending"] * n
    canary = [False] * n
    sent: dict[int, float] = {}
    credit, credit_at, last = 1.0, None, Plan()
    for t in range(seconds):
        for i, at in sent.items():
            if states[i] == "sent" and t - at >= 3:
                states[i] = "failed" if i in fail else "running"
        views = [BoxView((S, f"b{i}"), states[i], online(i, t), canary[i], sent.get(i)) for i in range(n)]
        last = plan(params, views, credit, credit_at, float(t))
        credit, credit_at = last.credit, last.credit_at
        for key in last.timed_out:
            states[int(key[1][1:])] = "failed"
        if last.abort or last.done:
            break
        for key, as_canary in last.send:
            i = int(key[1][1:])
            states[i], canary[i], sent[i] = "sent", as_canary, float(t)
    return sent, states, last


def test_canaries_go_first_then_the_rate_doubles_every_k_boxes_running():
    sent, states, last = simulate(Params(canary=2, rate=6, double_after=4), 14)
    assert last.done and states == ["running"] * 14
    assert sent[0] == sent[1] == 0  # both canaries at once
    assert sent[2] == 3  # the rest waits until both canaries run: then the first at once
    gaps = [sent[i + 1] - sent[i] for i in range(2, 13)]
    # 6/min is one box every 10 s until 4 run (two canaries and two more), then 12/min, 24/min, 48/min
    assert gaps[0] == 10 and sum(gaps[:3]) > 2 * sum(gaps[-3:]) and max(gaps[-3:]) <= 3, gaps
    assert min(gaps) >= 1  # never a burst: the credit is spent as it comes


def test_a_failing_canary_aborts_before_anybody_else_gets_it():
    sent, states, last = simulate(Params(canary=1), 5, fail={0})
    assert last.abort == "1 of 1 boxes attempted failed (100 %), over the 5 % this rollout allows"
    assert list(sent) == [0] and states[1:] == ["pending"] * 4


def test_a_box_silent_past_the_timeout_has_failed_and_the_share_decides():
    params = Params(canary=1, rate=60, abort_at=0.5, timeout_s=30)
    views = [BoxView((S, "b0"), "running", True, True, 0.0), BoxView((S, "b1"), "sent", True, False, 10.0),
             BoxView((S, "b2"), "sent", True, False, 20.0), BoxView((S, "b3"), "pending", True)]  # fmt: skip
    assert plan(params, views, 0.0, 20.0, 39.0).timed_out == []
    at_40 = plan(params, views, 0.0, 20.0, 40.0)
    assert at_40.timed_out == [(S, "b1")] and at_40.abort is None  # 1 of 3 failed: not over half
    at_50 = plan(params, views, 0.0, 20.0, 50.0)
    assert at_50.timed_out == [(S, "b1"), (S, "b2")]
    assert at_50.abort == "2 of 3 boxes attempted failed (67 %), over the 50 % this rollout allows"


def test_an_offline_box_waits_for_its_turn_and_the_rollout_is_not_done_without_it():
    sent, states, last = simulate(Params(canary=1, rate=60), 3, online=lambda i, t: i != 1 or t >= 100, seconds=200)
    assert last.done and states == ["running"] * 3
    assert sent[0] == 0 and sent[2] < 10 and sent[1] == 100  # the box that was away got it when it came back
    _, _, waiting = simulate(Params(canary=1, rate=60), 3, online=lambda i, t: i != 1, seconds=50)
    assert not waiting.done and waiting.waiting == "1 box(es) offline: each gets it when it is back"


# -- the engine on central's database --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 6, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


class Fleet:
    """Boxes that report to central as real ones do (their heartbeat, their control events), sequenced."""

    def __init__(self, central, clock: Clock) -> None:
        self.central, self.clock, self.seq = central, clock, {}
        self.published: list[tuple[str, Desired]] = []
        central.on_control(lambda t, payload: self.published.append((t.split("/")[3], decode_control(payload))))

    def _next(self, box: str) -> int:
        self.seq[box] = self.seq.get(box, 0) + 1
        return self.seq[box]

    def status(self, box: str, bundle_id: str, state: str = "running", **fields) -> None:
        event = StatusEvent(event_id=uuid.uuid4().hex, seq=self._next(box), ts=self.clock(), store=S, box=box,
                            state=state, bundle_id=bundle_id, **fields)  # fmt: skip
        assert self.central.event(topic(S, box, "status"), encode(event)) == "status"

    def control(self, box: str, state: str, detail: str) -> None:
        event = ControlEvent(event_id=uuid.uuid4().hex, seq=self._next(box), ts=self.clock(), store=S, box=box,
                             name="desired", state=state, detail=detail)  # fmt: skip
        assert self.central.event(topic(S, box, "control"), encode(event)) == "stored"

    def sent_to(self) -> list[str]:
        return [box for box, _ in self.published]


@pytest.fixture(scope="module")
def new_bundle(tmp_path_factory) -> Path:
    return demo_variant(tmp_path_factory.mktemp("bundles") / "new", "2026-12-06T05:00:00+00:00")


def engine(central, tmp_path: Path, clock: Clock) -> Rollouts:
    return Rollouts(central, FileStore(central.engine, tmp_path / "data"), clock=clock)


def states(central, rollout_id: int) -> dict[str, str]:
    with central.engine.connect() as conn:
        return {b["box"]: b["state"] for b in summary(conn, rollout_id)[0]["boxes"]}


def test_the_engine_sends_canary_then_rest_resumes_after_a_restart_and_an_offline_box_gets_it_on_return(
    central, tmp_path, new_bundle
):
    clock = Clock()
    fleet = Fleet(central, clock)
    for box in ("b1", "b2"):
        fleet.status(box, "old")
    fleet.status("b3", "old", state="stopped")  # away when the rollout starts
    target = bundle_target(new_bundle)
    files = FileStore(central.engine, tmp_path / "data")
    rollout_id = start(central, files, target, BOXES, Params(canary=1, rate=6, double_after=1, timeout_s=120))
    rollouts = engine(central, tmp_path, clock)
    rollouts.tick()
    assert fleet.sent_to() == ["b1"]
    message = fleet.published[0][1]
    assert message.bundle_id == target.target and message.bundle.name == f"bundle-{target.target[:32]}.tar"
    assert files.path(S, "b1", "bundle", message.bundle.name).read_bytes() == target.tar  # served to that box
    clock.advance(20)
    fleet.control("b1", "staged", f"bundle {target.target} staged in slot A")
    rollouts.tick()
    assert fleet.sent_to() == ["b1"] and states(central, rollout_id)["b1"] == "staged"  # the canary is not done
    fleet.status("b1", target.target)
    clock.advance(1)
    rollouts = engine(central, tmp_path, clock)  # central restarted: the engine has only the database
    rollouts.tick()
    # It published the canary's message again, the very same (the box knows it by its content: nothing twice), in
    # case it had stopped between recording and publishing it; then it went on.
    assert fleet.sent_to() == ["b1", "b1", "b2"] and fleet.published[1] == fleet.published[0]
    del fleet.published[1]
    assert states(central, rollout_id)["b1"] == "running"
    clock.advance(1)
    rollouts.tick()
    assert fleet.sent_to() == ["b1", "b2"] and rollouts.waiting[rollout_id].endswith("gets it when it is back")
    fleet.status("b2", target.target)
    clock.advance(60)
    rollouts.tick()
    assert states(central, rollout_id) == {"b1": "running", "b2": "running", "b3": "pending"}
    fleet.status("b3", "old")  # back
    rollouts.tick()
    assert fleet.sent_to() == ["b1", "b2", "b3"]
    clock.advance(200)  # longer than the timeout: it still counts from when b3 was sent
    fleet.status("b3", target.target)
    rollouts.tick()
    with central.engine.connect() as conn:
        (item,) = summary(conn, rollout_id)
    assert item["state"] == "done" and item["counts"]["running"] == 3 and item["rate_now"] == 6 * 2**3
    assert [b["canary"] for b in item["boxes"]] == [True, False, False]


def test_a_refusal_past_the_share_aborts_cancels_the_rest_and_sets_switched_boxes_back(central, tmp_path, new_bundle):
    clock = Clock()
    fleet = Fleet(central, clock)
    old = FileRef(name="bundle-old.tar", size=10, sha256="a" * 64)
    for box in ("b1", "b2", "b3"):
        central.send_control(S, box, Desired(issued=clock(), bundle=old, bundle_id="old"))  # what they were told
        fleet.status(box, "old")
    fleet.published.clear()
    target = bundle_target(new_bundle)
    rollout_id = start(central, FileStore(central.engine, tmp_path / "data"), target, BOXES,
                       Params(canary=1, abort_at=0.4))  # fmt: skip
    rollouts = engine(central, tmp_path, clock)
    rollouts.tick()
    fleet.status("b1", target.target)
    clock.advance(2)
    rollouts.tick()
    assert fleet.sent_to() == ["b1", "b2"]
    clock.advance(2)
    fleet.control("b2", "refused", f"desired: bundle {target.target} refused by the health gate: reference clip")
    rollouts.tick()
    with central.engine.connect() as conn:
        (item,) = summary(conn, rollout_id)
    assert item["state"] == "aborted" and item["reason"].startswith("1 of 2 boxes attempted failed (50 %)")
    boxes = {b["box"]: b for b in item["boxes"]}
    assert boxes["b2"]["state"] == "failed" and "refused by the health gate" in boxes["b2"]["reason"]
    assert boxes["b3"]["state"] == "cancelled" and boxes["b1"]["state"] == "reverted"
    assert "b3" not in fleet.sent_to()  # nobody else got it
    back = {box: m for box, m in fleet.published[2:]}
    assert back["b1"].bundle_id == "old" and back["b1"].bundle == old  # set back to what it was told before
    assert back["b2"].bundle_id == "old"  # its retained message no longer names the refused bundle
    with central.engine.connect() as conn:
        c = db.controls.c
        retained = {r.box: r.payload["bundle_id"] for r in conn.execute(select(c.box, c.payload))}
    assert retained == {"b1": "old", "b2": "old", "b3": "old"}


def test_a_box_that_switched_and_went_back_has_failed(central, tmp_path, new_bundle):
    clock = Clock()
    fleet = Fleet(central, clock)
    for box in ("b1", "b2"):
        fleet.status(box, "old")
    target = bundle_target(new_bundle)
    rollout_id = start(central, FileStore(central.engine, tmp_path / "data"), target, BOXES[:2],
                       Params(canary=1, abort_at=1.0))  # fmt: skip
    rollouts = engine(central, tmp_path, clock)
    rollouts.tick()
    clock.advance(5)
    fleet.status("b1", target.target)
    rollouts.tick()
    clock.advance(5)
    fleet.control("b1", "refused", "desired: config: zone 'top' reaches (700, 0)")  # not about this bundle
    rollouts.tick()
    assert states(central, rollout_id)["b1"] == "running"
    clock.advance(60)
    fleet.control("b1", "refused", f"bundle {target.target} abandoned, back to old: the agent stopped unexpectedly 3 "
                  "times within 0.4 minutes of switching to it")  # fmt: skip
    fleet.status("b1", "old", switch="rolled_back", switch_bundle=target.target)
    rollouts.tick()
    with central.engine.connect() as conn:
        (item,) = summary(conn, rollout_id)
    b1 = item["boxes"][0]
    assert b1["state"] == "failed" and "abandoned, back to old: the agent stopped unexpectedly 3 times" in b1["reason"]
    assert item["state"] == "running" and item["counts"]["failed"] == 1  # under its (here: any) abort share


def test_abort_by_hand_and_a_silent_canary(central, tmp_path, new_bundle):
    clock = Clock()
    fleet = Fleet(central, clock)
    for box in ("b1", "b2", "b3"):
        fleet.status(box, "old")
    data = FileStore(central.engine, tmp_path / "data")
    target = bundle_target(new_bundle)
    silent = start(central, data, target, BOXES[:2], Params(timeout_s=60))
    with pytest.raises(Exception, match=r"already in a running rollout: s1/b2 \(rollout 1\)"):
        start(central, data, target, BOXES[1:], Params())
    by_hand = start(central, data, target, BOXES[2:], Params())
    rollouts = engine(central, tmp_path, clock)
    rollouts.tick()
    assert sorted(fleet.sent_to()) == ["b1", "b3"]
    request_abort(central, by_hand, "wrong bundle")
    clock.advance(60)
    rollouts.tick()
    with central.engine.connect() as conn:
        first, second = summary(conn, silent)[0], summary(conn, by_hand)[0]
    assert first["state"] == "aborted" and first["boxes"][0]["reason"] == "no report within 1m of being sent it"
    assert [b["state"] for b in first["boxes"]] == ["failed", "cancelled"]
    assert second["state"] == "aborted" and second["reason"] == "wrong bundle"
    # b3 had been told nothing before and ran the provisioned bundle, which central does not have: it says so.
    assert second["boxes"][0]["reason"].startswith("cannot set back: bundle old (what it ran before) is neither")
    with pytest.raises(Exception, match="rollout 2 is aborted: only a running rollout can be aborted"):
        request_abort(central, by_hand, "again")


def test_a_config_rolls_out_the_same_way_each_box_getting_its_own(central, tmp_path):
    clock = Clock()
    fleet = Fleet(central, clock)
    for box in ("b1", "b2"):
        fleet.status(box, "old")
    old = FileRef(name="bundle-old.tar", size=10, sha256="a" * 64)
    central.send_control(S, "b2", Desired(issued=clock(), bundle=old, bundle_id="old"))  # b2 runs a sent bundle
    fleet.published.clear()
    (tmp_path / "thresholds.yaml").write_text("store: any\nbox: any\ncamera: {source: '0'}\nbundle: x\n"
                                              "thresholds: {action_confidence: 0.6}\n")  # fmt: skip
    target = config_target(tmp_path / "thresholds.yaml")
    files = FileStore(central.engine, tmp_path / "data")
    rollout_id = start(central, files, target, BOXES[:2], Params(canary=1))
    rollouts = engine(central, tmp_path, clock)
    rollouts.tick()
    ((box, message),) = fleet.published
    assert box == "b1" and message.bundle is None and message.config.name == f"{target.target}.yaml"
    sent = json.loads(files.path(S, "b1", "config", message.config.name).read_bytes())  # JSON is YAML
    assert (sent["store"], sent["box"], sent["thresholds"]) == (S, "b1", {"action_confidence": 0.6})
    clock.advance(5)
    fleet.control("b1", "done", "switched to bundle old (slot A) in 2.5 s, about 75 frames not analysed")
    rollouts.tick()
    assert fleet.sent_to() == ["b1", "b2"] and states(central, rollout_id)["b1"] == "running"
    kept = fleet.published[1][1]
    assert kept.bundle == old and kept.bundle_id == "old" and kept.config.name == message.config.name  # bundle kept
    assert json.loads(files.path(S, "b2", "config", kept.config.name).read_bytes())["box"] == "b2"


def test_the_api_shows_rollouts_to_a_store_only_with_its_boxes(central, tmp_path, new_bundle):
    files = FileStore(central.engine, tmp_path / "data")
    target = bundle_target(new_bundle)
    chain = start(central, files, target, [(S, "b1"), ("s2", "x1")], Params())
    other = start(central, files, target, [("s2", "x2")], Params())
    staff, admin = api(central, S), api(central, None)
    (seen,) = staff.get("/rollouts").json()
    assert (seen["rollout_id"], seen["total"], [b["box"] for b in seen["boxes"]]) == (chain, 1, ["b1"])
    assert seen["params"] == Params().model_dump() and seen["counts"]["pending"] == 1
    assert staff.get(f"/rollouts/{other}").status_code == 404  # it reaches no box of s1
    assert [r["rollout_id"] for r in admin.get("/rollouts").json()] == [other, chain]
    assert admin.get(f"/rollouts/{chain}").json()["total"] == 2
    assert staff.get("/rollouts?limit=0").status_code == 422


# -- the command line ------------------------------------------------------------------------------------------------


def verdict(tmp_path: Path, bundle_id: str, said: str) -> Path:
    path = tmp_path / f"verdict-{said}.json"
    ref = {"path": "x", "bundle_id": bundle_id}
    path.write_text(json.dumps({
        "format": "shelfwatch-verdict", "version": 1, "created": "2026-12-06T00:00:00Z", "verdict": said,
        "old": ref | {"bundle_id": "old"}, "new": ref,
        "rules": {"margin_points": 2, "tolerance_points": 1, "min_clips": 5},
        "checks": [{"rule": "gain", "passed": said == "promote", "detail": "frame accuracy -12.0 points on store-b"}],
        "folders": [], "negatives": None, "fps_ratio": 1.0}))  # fmt: skip
    return path


def cli(capsys, *args: object) -> tuple[int, str, str]:
    """`shelfwatch ...` in this process (as the command runs it): exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_command_line_refuses_a_verdict_that_does_not_promote_and_bad_arguments(tmp_path, new_bundle, capsys):
    url = f"sqlite:///{tmp_path / 'central.db'}"
    bundle_id = bundle_target(new_bundle).target
    common = ["central", "rollout", "start", "--bundle", new_bundle, "--boxes", f"{S}/b1", "--db", url,
              "--data-dir", tmp_path / "data"]  # fmt: skip
    code, _, err = cli(capsys, *common, "--gate", verdict(tmp_path, bundle_id, "refuse"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the verdict is refuse, not promote: frame accuracy -12.0 points on store-b; nothing started" in err
    code, _, err = cli(capsys, *common, "--gate", verdict(tmp_path, "another", "promote"))
    assert code == 2 and f"the verdict is about bundle another, not {bundle_id}" in err
    for flag, value, said in [
        ("--rate", "fast", "write boxes a minute"),
        ("--abort-at", "150%", "from 0 to 100"),
        ("--timeout", "soon", "like 90s, 5m or 1h"),
        ("--canary", "-1", "give at least 0"),
    ]:
        code, _, err = cli(capsys, *common, flag, value)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert cli(capsys, "central", "rollout", "status", "--db", url)[1].strip() == "no rollouts yet"  # none started
    code, out, err = cli(capsys, *common, "--gate", verdict(tmp_path, bundle_id, "promote"), "--rate", "2/min")
    assert code == 0, err
    shown = cli(capsys, "central", "rollout", "status", "1", "--db", url)[1]
    assert f"rollout 1: bundle {bundle_id}" in shown and "then 2/min" in shown and "s1/b1" in shown
    assert json.loads(cli(capsys, "central", "rollout", "status", "--json", "--db", url)[1])[0]["gate"][
        "verdict"] == "promote"  # fmt: skip
    code, out, _ = cli(capsys, "central", "rollout", "abort", "1", "--db", url)
    assert code == 0 and "aborting" in out
    code, _, err = cli(capsys, "central", "rollout", "abort", "1", "--db", url)
    assert code == 2 and "rollout 1 is aborting: only a running rollout can be aborted" in err


def test_a_refusal_counts_against_the_bundle_it_names_and_one_naming_none_against_the_rollouts():
    """What the fleet showed: the canary's late refusal of an earlier rollout's bundle had failed the next rollout."""
    target = "d25da62392d694b3"
    assert _names_another("desired: bundle 3dbead78ed7529f7 refused by the health gate: reference clip", target)
    assert not _names_another(f"desired: bundle {target} refused by the health gate: reference clip", target)
    assert not _names_another(f"bundle-{target}0123456789abcdef.tar: the download does not match", target)
    assert not _names_another("desired: central refused it (404: no such file)", target)  # names none: counts
