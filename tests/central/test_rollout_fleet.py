"""Fleet rollouts through the real processes: a store of three boxes provisioned with `shelfwatch provision`, Mosquitto
run with the files it wrote (TLS, ACLs), `central run` over HTTPS, and three agents on clips kept running as systemd
would (the channel's and the switch's fixtures). One setup, in order: a verdict that does not promote starts nothing;
a bundle that fails the health gate on the canary aborts the rollout and nobody else gets it; a signed bundle reaches
the three boxes canary first, with central restarted while the canary switches and the third box offline until the
others run it, and no event is lost. The schedule itself is tested fast in test_rollout.py."""

from __future__ import annotations

import contextlib
import io
import signal
from pathlib import Path

import onnx
import pytest

from central import db
from central.rollout import summary
from edge.bundle import load_bundle
from export.signing import keygen, sign_bundle
from shelfwatch.cli import main
from tests.central.test_channel import LEFT, RIGHT, STORE, Channel, wait
from tests.central.test_rollout import verdict
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.edge.test_gate import demo_copy, resealed, shuffled_classes
from tests.edge.test_slots import demo_variant
from tests.edge.test_switch import Supervised, err, health, no_event_lost

pytestmark = pytest.mark.long


def looped(clip: Path, times: int) -> Path:
    """The clip played `times` over, as one file: its packets copied with shifted times (no decoding, a fraction of
    a second; rendering that many frames would take minutes)."""
    import av

    out = clip.with_name(f"{clip.stem}-x{times}.mp4")
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        copy = dst.add_stream_from_template(stream)
        packets = [p for p in src.demux(stream) if p.size]
        times_of = [(p.pts, p.dts) for p in packets]
        span = max(pts for pts, _ in times_of) + (times_of[1][0] - times_of[0][0])
        for i in range(times):
            for packet, (pts, dts) in zip(packets, times_of, strict=True):
                packet.stream, packet.pts, packet.dts = copy, pts + i * span, dts + i * span
                dst.mux(packet)
    return out


THIRD = "aisle2"
BOXES = (LEFT, RIGHT, THIRD)


class Fleet:
    def __init__(self, tmp: Path) -> None:
        chain = keygen(tmp / "keys" / "chain")
        provisioned = demo_copy(tmp / "provisioned")
        sign_bundle(provisioned, chain.private)
        self.provisioned = load_bundle(provisioned).bundle_id
        self.c = Channel(tmp, bundle=provisioned, keys=(chain.public,), extra_boxes=(THIRD,))
        bundles = self.c.bundles
        bundles.mkdir(parents=True, exist_ok=True)
        self.bad = resealed(demo_copy(bundles / "bad"), {"action_step.onnx": shuffled_classes(
            onnx.load(DEMO_BUNDLE / "action_step.onnx"))})  # fmt: skip
        self.good = demo_variant(bundles / "good", "2026-12-06T04:00:00+00:00")
        for folder in (self.bad, self.good):
            sign_bundle(folder, chain.private)
        self.video = looped(sample(tmp, 300, seed=41), 30)  # five minutes: no agent reaches its clip's end
        self.agents = {box: Supervised(self.c, box, self.video) for box in BOXES}

    def rollout(self, *args: object) -> tuple[int, str, str]:
        """`shelfwatch central rollout ...` (in this process, as the command runs it): exit code, stdout, stderr."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in ("central", "rollout", *args, "--db", self.c.db)])
        return code, out.getvalue(), err.getvalue()

    def start(self, *args: object) -> int:
        code, out, err = self.rollout("start", *args, "--data-dir", self.c.data)
        assert code == 0, err
        return int(out.split(":")[0].removeprefix("rollout "))

    def summary(self, rollout_id: int) -> dict:
        engine = db.connect(self.c.db)
        try:
            with engine.connect() as conn:
                return summary(conn, rollout_id)[0]
        finally:
            engine.dispose()

    def known(self) -> set[str]:
        """The boxes of the store central has heard a heartbeat from (`--stores` rolls out to those)."""
        engine = db.connect(self.c.db)
        try:
            with engine.connect() as conn:
                return {r["box"] for r in db.box_rows(conn) if r["store"] == STORE}
        finally:
            engine.dispose()

    def box(self, rollout_id: int, box: str) -> dict:
        return next(b for b in self.summary(rollout_id)["boxes"] if b["box"] == box)

    def diagnose(self) -> str:
        central = (self.c.tmp / "central.out").read_text()[-1500:] + (self.c.tmp / "central.err").read_text()[-1500:]
        return central + "".join(f"\n--- {box}\n{err(self.c, box)[-1500:]}" for box in BOXES)

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop(signal.SIGKILL)
        self.c.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        assert wait(lambda: all(health(f.c, box).get("bundle_id") == f.provisioned for box in BOXES), 180), f.diagnose()
        assert wait(lambda: f.known() >= set(BOXES), 120), f.diagnose()  # central too has heard each box
        yield f
    finally:
        f.close()


def test_a_verdict_that_does_not_promote_starts_nothing(fleet):
    target = load_bundle(fleet.good).bundle_id
    code, _, err = fleet.rollout("start", "--bundle", fleet.good, "--stores", STORE, "--data-dir", fleet.c.data,
                                 "--gate", verdict(fleet.c.tmp, target, "refuse"))  # fmt: skip
    assert code == 2 and "the verdict is refuse, not promote" in err
    assert fleet.rollout("status")[1].strip() == "no rollouts yet"


def test_a_bundle_failing_the_health_gate_on_the_canary_aborts_and_nobody_else_gets_it(fleet):
    bad = load_bundle(fleet.bad).bundle_id
    rollout_id = fleet.start("--bundle", fleet.bad, "--stores", STORE, "--canary", "1", "--rate", "60/min")
    assert wait(lambda: fleet.summary(rollout_id)["state"] == "aborted", 240), fleet.diagnose()
    item = fleet.summary(rollout_id)
    canary, *rest = item["boxes"]
    assert (canary["box"], canary["canary"], canary["state"]) == (LEFT, True, "failed")  # the first, sorted
    assert f"bundle {bad} refused by the health gate: reference clip" in canary["reason"]
    assert [b["state"] for b in rest] == ["cancelled", "cancelled"] and item["reason"].startswith("1 of 1 boxes")
    for box in (RIGHT, THIRD):  # nobody else was told of it, nor fetched it
        status, files = fleet.c.request("GET", f"/boxes/{STORE}/{box}/files", fleet.c.staff)
        assert status == 200 and not [f for f in files if bad[:32] in f["name"]]
        assert bad not in err(fleet.c, box)
    assert health(fleet.c, LEFT)["bundle_id"] == fleet.provisioned  # the canary runs on what it ran
    shown = fleet.rollout("status", rollout_id)[1]
    assert f"rollout {rollout_id}: bundle {bad}" in shown and "aborted (1 of 1 boxes attempted failed" in shown


def test_a_signed_bundle_reaches_canary_then_rest_across_a_central_restart_and_an_offline_box_on_return(fleet):
    c, target = fleet.c, load_bundle(fleet.good).bundle_id
    assert fleet.agents[THIRD].stop() == 0  # away during the rollout
    assert wait(lambda: health(c, THIRD).get("state") == "stopped", 30)
    boxes = [f"{STORE}/{box}" for box in BOXES]
    rollout_id = fleet.start("--bundle", fleet.good, "--boxes", *boxes, "--rate", "60/min", "--timeout", "5m")
    assert wait(lambda: fleet.box(rollout_id, LEFT)["state"] in ("sent", "staged"), 30), fleet.diagnose()
    assert fleet.box(rollout_id, RIGHT)["state"] == "pending"  # it waits for the canary
    assert c.central.stop() == 0  # central restarted while the canary has it
    c.central = c.start_central()
    assert wait(lambda: fleet.box(rollout_id, RIGHT)["state"] != "pending", 300), fleet.diagnose()
    left, right = fleet.box(rollout_id, LEFT), fleet.box(rollout_id, RIGHT)
    why = (left["reason"], right["reason"], fleet.diagnose())
    assert left["state"] == "running" and left["canary"] and left["done_at"] <= right["sent_at"], why
    item = fleet.summary(rollout_id)
    assert item["state"] == "running" and fleet.box(rollout_id, THIRD)["state"] == "pending"
    assert health(c, THIRD)["bundle_id"] == fleet.provisioned  # it was away while the others got it
    fleet.agents[THIRD] = Supervised(c, THIRD, fleet.video)  # back
    assert wait(lambda: fleet.summary(rollout_id)["state"] == "done", 300), fleet.diagnose()
    assert [b["state"] for b in fleet.summary(rollout_id)["boxes"]] == ["running"] * 3
    for box in BOXES:
        assert health(c, box)["bundle_id"] == target and health(c, box)["bundle_key"]
        assert fleet.agents[box].stop() == 0
        assert no_event_lost(c, box) > 0
    shown = fleet.rollout("status")[1]
    assert f"rollout {rollout_id}: bundle {target}" in shown and "3 of 3 running it, 0 failed" in shown
