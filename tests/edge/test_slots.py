"""The box's two slots as a state machine on disk, without a broker or a running agent: staging a bundle (a tar as
central packs it) safely and checked with the box's keys, staging a config, switching, counting crashes after a
switch and going back by itself, a full disk, a new provisioning."""

from __future__ import annotations

import errno
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from central.files import pack_bundle
from edge.bundle import CHECKPOINT, MANIFEST, load_bundle, seal
from edge.config import BoxConfig, Camera, Zone
from edge.events import MAX_PAYLOAD_BYTES, StatusEvent, encode
from edge.signing import load_trusted_keys
from edge.slots import CRASHES, PROVISIONED, TRIAL_S, NoRoom, Slots, StageRefused
from export.signing import keygen, sign_bundle
from tests.edge.test_agent_delivery import DEMO_BUNDLE

PICTURE = (640, 480)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def demo_variant(folder: Path, created: str = "2026-12-06T00:00:00+00:00") -> Path:
    """The demo bundle exported again (another `created`): another bundle id, the same graphs."""
    shutil.copytree(DEMO_BUNDLE, folder)
    data = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps(seal(data | {"created": created})))
    return folder


def packed(folder: Path) -> Path:
    """The bundle as central sends it: one tar (central/files.py pack_bundle)."""
    _, tar = pack_bundle(folder)
    path = folder.with_suffix(".tar")
    path.write_bytes(tar)
    return path


def given(tmp_path: Path, keys: list[Path] | None = None) -> BoxConfig:
    shelf = Zone(name="shelf", polygon=[(0, 0), (640, 0), (640, 172)])
    return BoxConfig(store="store-1", box="box-a", camera=Camera(source="camera.mp4"), bundle=DEMO_BUNDLE,
                     bundle_keys=keys or [], zones=[shelf])  # fmt: skip


def new_slots(tmp_path: Path, clock: Clock | None = None, config_digest: str = "c0") -> Slots:
    return Slots(
        tmp_path / "state" / "slots", load_bundle(DEMO_BUNDLE).bundle_id, config_digest, clock=clock or Clock()
    )


def stage(slots: Slots, tmp_path: Path, tar: Path | None, config: Path | None = None, keys=()) -> object:
    return slots.stage(tar, config, list(keys), given(tmp_path), tmp_path, lambda camera: PICTURE)


@pytest.fixture
def chain(tmp_path):
    return keygen(tmp_path / "keys" / "chain")


def test_a_signed_bundle_is_staged_switched_to_and_its_cost_recorded(tmp_path, chain):
    clock = Clock()
    slots = new_slots(tmp_path, clock)
    assert slots.active == PROVISIONED and slots.effective(given(tmp_path)) == given(tmp_path)
    bundle = demo_variant(tmp_path / "new")
    sign_bundle(bundle, chain.private)
    staged = stage(slots, tmp_path, packed(bundle), keys=load_trusted_keys([chain.public]))
    assert staged.slot == "A" and staged.bundle_id == load_bundle(bundle).bundle_id
    assert staged.bundle.signed_by.key_id == chain.key_id
    assert slots.status() == {"staged_bundle": staged.bundle_id}
    assert sorted(p.name for p in (slots.folder("A") / "bundle").iterdir()) == sorted(
        [MANIFEST, "signature.json", *load_bundle(bundle).files]
    )
    slots.switch("A", last_frame=clock.now)
    clock.now += 2.5
    assert slots.start() is None  # the restart the switch made: no crash
    config = slots.effective(given(tmp_path))
    assert config.bundle == slots.folder("A") / "bundle" and load_bundle(config.bundle).bundle_id == staged.bundle_id
    switched = slots.switched(fps=30)
    assert (switched.seconds, switched.frames) == (2.5, 75)
    assert slots.switched(fps=30) is None  # recorded once
    assert slots.status() == {"fallback_bundle": load_bundle(DEMO_BUNDLE).bundle_id, "switch": "trial",
                              "switch_bundle": staged.bundle_id, "switch_s": 2.5, "switch_frames": 75}  # fmt: skip
    clock.now += TRIAL_S + 1
    assert slots.status()["switch"] == "done"
    # The next bundle goes into the other slot, and the one running becomes its fallback.
    second = stage(slots, tmp_path, packed(demo_variant(tmp_path / "second", "2026-12-07T00:00:00+00:00")))
    assert second.slot == "B"
    slots.switch("B", last_frame=clock.now)
    slots.start()
    assert slots.status()["fallback_bundle"] == staged.bundle_id


def test_a_bundle_the_keys_refuse_is_never_staged(tmp_path, chain):
    slots = new_slots(tmp_path)
    keys = load_trusted_keys([chain.public])
    unsigned = packed(demo_variant(tmp_path / "unsigned"))
    with pytest.raises(StageRefused, match="unsigned"):
        stage(slots, tmp_path, unsigned, keys=keys)
    other = keygen(tmp_path / "keys" / "other")
    foreign = demo_variant(tmp_path / "foreign", "2026-12-08T00:00:00+00:00")
    sign_bundle(foreign, other.private)
    with pytest.raises(StageRefused, match="signed by unknown key"):
        stage(slots, tmp_path, packed(foreign), keys=keys)
    assert slots.status() == {} and not (slots.folder("A")).exists() and not list(slots.root.glob(".staging-*"))
    sign_bundle(foreign, chain.private)  # positive control: signed by the box's key, it is staged
    assert stage(slots, tmp_path, packed(foreign), keys=keys).slot == "A"


def tar_of(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path = tmp_path / f"crafted-{len(list(tmp_path.glob('crafted-*')))}.tar"
    path.write_bytes(out.getvalue())
    return path


def test_a_tar_with_links_paths_repeats_or_unlisted_files_is_refused_and_writes_nothing_outside_the_slot(tmp_path):
    slots = new_slots(tmp_path)
    bundle = demo_variant(tmp_path / "new")
    # What pack_bundle sends: the manifest and the files it lists (not checkpoint.pt, which stays with training).
    listed = [MANIFEST, *sorted(json.loads((bundle / MANIFEST).read_text())["files"])]
    files = [(tarfile.TarInfo(name), (bundle / name).read_bytes()) for name in listed]

    def link(name: str, kind: bytes, target: str) -> tuple[tarfile.TarInfo, bytes]:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        return info, b""

    cases = [
        ([*files, link("evil", tarfile.SYMTYPE, "/etc/passwd")], "'evil', which is not a plain file"),
        ([*files, link("hard", tarfile.LNKTYPE, MANIFEST)], "'hard', which is not a plain file"),
        ([*files, (tarfile.TarInfo("../escape"), b"x")], "'../escape': not a plain file name"),
        ([*files, (tarfile.TarInfo("sub/x.onnx"), b"x")], "'sub/x.onnx': not a plain file name"),
        ([*files, (tarfile.TarInfo("/abs.onnx"), b"x")], "'/abs.onnx': not a plain file name"),
        ([*files, files[0]], "twice"),
        ([*files, (tarfile.TarInfo("extra.onnx"), b"x")], "its manifest does not list: extra.onnx"),
        ([*files, (tarfile.TarInfo(CHECKPOINT), (bundle / CHECKPOINT).read_bytes())], "does not list: checkpoint.pt"),
        ([f for f in files if f[0].name != "detector.onnx"], "detector.onnx is missing"),
    ]
    for members, message in cases:
        with pytest.raises(StageRefused, match=message):
            stage(slots, tmp_path, tar_of(tmp_path, members))
    (tmp_path / "not-a.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StageRefused, match="not a tar"):
        stage(slots, tmp_path, tmp_path / "not-a.tar")
    assert not (tmp_path / "escape").exists() and not (slots.root / "escape").exists()
    assert sorted(p.name for p in slots.root.iterdir()) == ["state.json"] and slots.status() == {}
    assert stage(slots, tmp_path, tar_of(tmp_path, files)).slot == "A"  # positive control: the same files, plainly


def test_a_full_disk_leaves_no_broken_slot_and_the_running_one_untouched(tmp_path, monkeypatch):
    slots = new_slots(tmp_path)
    first = stage(slots, tmp_path, packed(demo_variant(tmp_path / "first")))
    slots.switch(first.slot, None)
    slots.start()
    running = sorted((p.name, p.stat().st_size) for p in (slots.folder("A") / "bundle").iterdir())
    tar = packed(demo_variant(tmp_path / "second", "2026-12-07T00:00:00+00:00"))

    class Usage:
        free = 10_000_000

    monkeypatch.setattr("edge.slots.shutil.disk_usage", lambda path: Usage)
    with pytest.raises(NoRoom, match="MB free; staging needs"):
        stage(slots, tmp_path, tar)
    monkeypatch.undo()

    def disk_full(source, out, length=0):
        out.write(source.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("edge.slots.shutil.copyfileobj", disk_full)
    with pytest.raises(NoRoom, match="disk is full while staging slot B"):
        stage(slots, tmp_path, tar)
    monkeypatch.undo()
    assert not slots.folder("B").exists() and not list(slots.root.glob(".staging-*"))
    assert sorted((p.name, p.stat().st_size) for p in (slots.folder("A") / "bundle").iterdir()) == running
    assert slots.active == "A" and load_bundle(slots.effective(given(tmp_path)).bundle)  # still runs, verified
    assert stage(slots, tmp_path, tar).slot == "B"  # room again: it stages


def test_three_crashes_within_ten_minutes_of_a_switch_go_back_by_themselves(tmp_path):
    clock = Clock()
    slots = new_slots(tmp_path, clock)
    staged = stage(slots, tmp_path, packed(demo_variant(tmp_path / "new")))
    slots.switch(staged.slot, clock.now)
    assert slots.start() is None  # the restart after the switch
    for _ in range(CRASHES - 1):  # a run that never reaches `ended` has crashed; the supervisor starts it again
        clock.now += 60
        assert slots.start() is None and slots.active == "A"
    clock.now += 60
    back = slots.start()
    assert (
        back is not None and back.abandoned == staged.bundle_id and back.back_to == load_bundle(DEMO_BUNDLE).bundle_id
    )
    assert "stopped unexpectedly 3 times within 3.0 minutes" in back.why
    assert slots.active == PROVISIONED and slots.effective(given(tmp_path)).bundle == DEMO_BUNDLE
    status = slots.status()
    assert status["switch"] == "rolled_back" and status["switch_bundle"] == staged.bundle_id
    assert status["problem"].startswith(f"bundle {staged.bundle_id} rolled back: the agent stopped unexpectedly")


def test_clean_restarts_and_crashes_spread_beyond_ten_minutes_do_not_go_back(tmp_path):
    clock = Clock()
    slots = new_slots(tmp_path, clock)
    staged = stage(slots, tmp_path, packed(demo_variant(tmp_path / "new")))
    slots.switch(staged.slot, clock.now)
    slots.start()
    for _ in range(CRASHES + 2):  # stopped and started by systemd, cleanly: no crash
        slots.ended()
        clock.now += 10
        assert slots.start() is None
    for _ in range(CRASHES - 1):  # two crashes within the trial...
        clock.now += 200
        assert slots.start() is None
    clock.now += TRIAL_S  # ...and the third after it
    assert slots.start() is None and slots.active == "A" and slots.status()["switch"] == "done"


def test_a_slot_refused_at_start_goes_back_to_its_fallback(tmp_path):
    slots = new_slots(tmp_path)
    first = stage(slots, tmp_path, packed(demo_variant(tmp_path / "first")))
    slots.switch(first.slot, None)
    slots.start()
    second = stage(slots, tmp_path, packed(demo_variant(tmp_path / "second", "2026-12-07T00:00:00+00:00")))
    slots.switch(second.slot, None)
    slots.start()
    back = slots.abandon("refused at start: detector.onnx does not match its sha256")
    assert (back.abandoned, back.back_to) == (second.bundle_id, first.bundle_id) and slots.active == "A"


def test_a_new_provisioning_or_an_unreadable_state_runs_what_was_provisioned(tmp_path):
    slots = new_slots(tmp_path)
    staged = stage(slots, tmp_path, packed(demo_variant(tmp_path / "new")))
    slots.switch(staged.slot, None)
    assert new_slots(tmp_path).active == "A"  # the same provisioning: the slot runs
    assert new_slots(tmp_path, config_digest="c1").active == PROVISIONED  # the installer provisioned it again
    slots = new_slots(tmp_path)
    (slots.root / "state.json").write_text("{not json")
    assert new_slots(tmp_path).active == PROVISIONED


def write_config(tmp_path: Path, **changes) -> Path:
    data = {"store": "store-1", "box": "box-a", "camera": {"source": "camera.mp4"}, "bundle": "elsewhere",
            "zones": [{"name": "top", "polygon": [[0, 0], [640, 0], [640, 90]]}],
            "mqtt": {"host": "evil.example.com"}, "bundle_keys": [], **changes}  # fmt: skip
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def test_a_config_is_staged_only_for_this_box_and_within_the_cameras_picture(tmp_path, chain):
    slots = new_slots(tmp_path)
    cases = [
        (write_config(tmp_path, box="box-b"), "it is for store-1/box-b; this box is store-1/box-a"),
        (write_config(tmp_path, zones=[{"name": "top", "polygon": [[0, 0], [700, 0], [640, 90]]}]),
         "zone 'top' reaches \\(700, 0\\), outside the camera's 640x480 picture"),
        (write_config(tmp_path, thresholds={"action_confidence": 2}), "thresholds.action_confidence"),
        (write_config(tmp_path, extra_key=1), "extra_key"),
    ]  # fmt: skip
    (tmp_path / "bad.yaml").write_text("store: [")
    cases.append((tmp_path / "bad.yaml", "not valid YAML"))
    for path, message in cases:
        with pytest.raises(StageRefused, match=message):
            stage(slots, tmp_path, None, path)
    staged = stage(slots, tmp_path, None, write_config(tmp_path))
    assert staged.bundle is None and staged.bundle_id == load_bundle(DEMO_BUNDLE).bundle_id
    slots.switch(staged.slot, None)
    slots.start()
    keys = [chain.public]
    config = slots.effective(given(tmp_path, keys))
    # The zones are central's; the box's identity, trust and channels stay what provisioning made them.
    assert [z.name for z in config.zones] == ["top"] and config.bundle == DEMO_BUNDLE
    assert config.mqtt is None and config.bundle_keys == keys
    # A bundle sent later keeps that config.
    second = stage(slots, tmp_path, packed(demo_variant(tmp_path / "new")))
    slots.switch(second.slot, None)
    slots.start()
    config = slots.effective(given(tmp_path))
    assert [z.name for z in config.zones] == ["top"] and config.bundle == slots.folder("B") / "bundle"


def test_a_status_with_every_field_at_its_bound_still_goes_out(tmp_path):
    """The slots' fields make the longest status pass the 1 KB contract: the emitter sheds the optional fields then,
    rather than lose the heartbeat."""
    from edge.emitter import Emitter
    from edge.outbox import Outbox

    emitter = Emitter("s" * 63, "b" * 63, Outbox(tmp_path / "o.sqlite"))
    payload = emitter.status("running", fps=1e300, latency_ms=1e300, frames=2**53 - 1, dropped_frames=2**53 - 1,
                             motion_skip=0.123456789, source_reconnects=2**53 - 1, bundle_id="i" * 64,
                             bundle_key="0" * 16, problem="p" * 256, uplink_pending=2**53 - 1,
                             uplink_dropped=2**53 - 1, staged_bundle="s" * 64, fallback_bundle="f" * 64,
                             switch="rolled_back", switch_bundle="x" * 64, switch_s=2.0**53 - 1,
                             switch_frames=2**53 - 1)  # fmt: skip
    event = json.loads(payload)
    assert len(payload) <= MAX_PAYLOAD_BYTES and event["switch"] == "rolled_back" and len(event["problem"]) == 64
    usual = StatusEvent.model_validate(event | {"staged_bundle": "s" * 16, "problem": "p" * 200})
    assert len(encode(usual)) <= MAX_PAYLOAD_BYTES  # positive control: ordinary values need no shedding
