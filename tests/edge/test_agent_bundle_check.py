"""The agent at start: a box with bundle keys refuses an unsigned bundle, one signed by a key it does not trust,
one whose model file changed and one from the future, with one line in its log and in its status (beside the
outbox for the health check, and retained on the broker for central); a box without keys runs unsigned bundles
and says so; a signed bundle runs and its status names the key."""

import base64
import hashlib
import json
import re
from argparse import Namespace
from pathlib import Path

import pytest

from edge import __version__
from edge.agent import RunOptions, run_agent
from edge.bundle import MANIFEST, load_bundle
from edge.cli import run_health
from edge.config import BoxConfig, Camera, MqttConfig, OutboxConfig
from edge.emitter import health_file
from edge.errors import ShelfWatchError
from edge.events import MAX_PAYLOAD_BYTES, MAX_PROBLEM, StatusEvent, decode, encode
from edge.signing import SIGNATURE, Signature, SignatureFile, signed_message
from export.signing import KeyPair, keygen, load_private_key
from tests.conftest import Subscriber
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.edge.test_bundle_versions import from_a_newer_export, rewritten
from tests.edge.test_signing import demo_copy, signed_copy


def signed_as_is(bundle: Path, key: KeyPair) -> Path:
    """Signed by the chain's key without this export's checks, as a newer export signs a bundle from the future."""
    raw = (bundle / MANIFEST).read_bytes()
    signature = load_private_key(key.private).sign(signed_message(raw))
    entry = Signature(key_id=key.key_id, manifest_sha256=hashlib.sha256(raw).hexdigest(),
                      ed25519=base64.b64encode(signature).decode())  # fmt: skip
    (bundle / SIGNATURE).write_text(SignatureFile(signatures=[entry]).model_dump_json())
    return bundle


def flip_a_byte(bundle: Path) -> Path:
    model = bundle / "action_encoder.onnx"
    data = bytearray(model.read_bytes())
    data[1000] ^= 0x40
    model.write_bytes(bytes(data))
    return bundle


@pytest.fixture
def keys(tmp_path):
    return {name: keygen(tmp_path / "keys" / name) for name in ("chain", "stranger")}


def box(tmp_path: Path, bundle: Path, keys: list[Path], **more) -> BoxConfig:
    return BoxConfig(store="store-1", box="box-a", camera=Camera(source=str(tmp_path / "unopened.mp4")),
                     bundle=bundle, bundle_keys=keys, outbox=OutboxConfig(path=tmp_path / "outbox.sqlite"),
                     **more)  # fmt: skip


REFUSED = {
    "unsigned": (lambda t, k: demo_copy(t), "unsigned (no signature.json)"),
    "unknown key": (lambda t, k: signed_copy(t, k["stranger"]), "signed by unknown key(s)"),
    "a model file changed": (lambda t, k: flip_a_byte(signed_copy(t, k["chain"])),
                             "action_encoder.onnx does not match its sha256 in the manifest"),
    "from the future": (lambda t, k: signed_as_is(rewritten(t, lambda d: d.update(schema_version=2)), k["chain"]),
                        f"schema_version is 2, newer than this agent's 1 (shelfwatch {__version__})"),
    "needs a newer agent": (lambda t, k: signed_as_is(rewritten(t, lambda d: d.update(requires_agent="9.0.0")),
                                                      k["chain"]),
                            f"requires agent 9.0.0 or newer; this agent is shelfwatch {__version__}"),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED)
def test_a_box_with_keys_refuses_at_start_and_its_status_says_why(tmp_path, keys, case):
    make, message = REFUSED[case]
    config = box(tmp_path, make(tmp_path, keys), [keys["chain"].public])
    with pytest.raises(ShelfWatchError) as error:
        run_agent(config, RunOptions(events_jsonl=tmp_path / "events.jsonl"))
    assert message in str(error.value) and "\n" not in str(error.value)
    status = decode(health_file(config.outbox_file()).read_bytes())
    assert status.kind == "status" and status.state == "stopped" and status.problem == str(error.value)
    assert status.bundle_id is None and status.frames == 0
    config_file = tmp_path / "box.yaml"
    config_file.write_text(f"store: store-1\nbox: box-a\ncamera: {{source: x.mp4}}\nbundle: {config.bundle}\n"
                           f"outbox: {{path: {config.outbox_file()}}}\n")  # fmt: skip
    with pytest.raises(ShelfWatchError, match=f"unhealthy: last status 'stopped', .*: {re.escape(status.problem)}$"):
        run_health(Namespace(config=config_file, max_age=90))


def test_the_refusal_is_one_line_on_stderr_and_exit_2(tmp_path, keys, shelfwatch):
    result = shelfwatch("edge", "run", "--bundle", demo_copy(tmp_path), "--bundle-key", keys["chain"].public,
                        "--source", tmp_path / "unopened.mp4", "--outbox", tmp_path / "o.sqlite")  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = (f"shelfwatch: error: {tmp_path / 'bundle'}: unsigned (no signature.json); only bundles signed by key(s) "
            f"{keys['chain'].key_id} are accepted")  # fmt: skip
    assert result.stderr.splitlines() == [line], result.stderr


def test_a_signed_bundle_runs_and_an_unsigned_one_runs_on_a_box_without_keys_which_says_so(tmp_path, keys, shelfwatch):
    video = sample(tmp_path, 8)
    signed = signed_copy(tmp_path, keys["chain"])
    jsonl = tmp_path / "events.jsonl"
    result = shelfwatch("edge", "run", "--bundle", signed, "--bundle-key", keys["chain"].public, "--source", video,
                        "--max-frames", 3, "--outbox", tmp_path / "o.sqlite", "--events-jsonl", jsonl)  # fmt: skip
    assert result.returncode == 0, result.stderr
    demo = load_bundle(DEMO_BUNDLE).bundle_id  # a signed copy is the same manifest: the same bundle id
    assert f"bundle {demo} is signed by trusted key {keys['chain'].key_id}" in result.stderr
    statuses = [e for e in map(json.loads, jsonl.read_text().splitlines()) if e["kind"] == "status"]
    assert statuses and all(s["bundle_key"] == keys["chain"].key_id for s in statuses)
    # The demo: no keys, the committed unsigned bundle runs, and the agent says it did not check it.
    result = shelfwatch("edge", "run", "--bundle", DEMO_BUNDLE, "--source", video, "--max-frames", 3,
                        "--outbox", tmp_path / "o2.sqlite")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (f"bundle {demo} runs unchecked: this box has no bundle_keys, so it runs unsigned bundles"
            in result.stderr), result.stderr  # fmt: skip


def test_a_bundle_from_a_newer_export_within_the_version_runs_and_its_new_fields_are_named(tmp_path, shelfwatch):
    bundle = rewritten(tmp_path, from_a_newer_export)
    result = shelfwatch("edge", "run", "--bundle", bundle, "--source", sample(tmp_path, 5), "--max-frames", 2,
                        "--outbox", tmp_path / "o.sqlite")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (f"carries fields this agent (shelfwatch {__version__}) does not know, from a newer export; ignored: "
            "action.reference, provenance.dataset_sha256, health_gate") in result.stderr, result.stderr  # fmt: skip


def test_the_refusal_reaches_central_as_the_retained_status(tmp_path, keys, broker):
    config = box(tmp_path, demo_copy(tmp_path), [keys["chain"].public],
                 mqtt=MqttConfig(host="127.0.0.1", port=broker.port, reconnect_max_s=1))  # fmt: skip
    with pytest.raises(ShelfWatchError, match="unsigned") as error:
        run_agent(config, RunOptions(flush_timeout_s=10))
    later = Subscriber(broker.port, client_id="central-later")  # connects afterwards: the status was retained
    try:
        assert later.wait_for(lambda: later.payloads("status"), timeout=10)
        status = later.payloads("status")[-1]
        assert status["state"] == "stopped" and status["problem"] == str(error.value) and status["box"] == "box-a"
    finally:
        later.close()


def test_the_longest_status_still_fits_the_payload_limit():
    status = StatusEvent(event_id="e" * 64, seq=2**53 - 1, ts="2026-11-25T09:00:00.123456+00:00", store="s" * 63,
                         box="b" * 63, state="stopped", fps=1e300, latency_ms=1e300, frames=2**53 - 1,
                         dropped_frames=2**53 - 1, motion_skip=0.123456789, outbox_depth=2**53 - 1,
                         outbox_dropped=2**53 - 1, source_reconnects=2**53 - 1, refused_publishes=2**53 - 1,
                         bundle_id="i" * 64, bundle_key="0" * 16, problem="p" * MAX_PROBLEM)  # fmt: skip
    assert len(encode(status)) <= MAX_PAYLOAD_BYTES
