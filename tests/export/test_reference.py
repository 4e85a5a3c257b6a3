"""`shelfwatch bundle reference`: a reference clip added to an existing bundle, which is resealed (its signature, now
stale, removed), with what a newer export wrote kept as it is; bad input is one line and changes nothing."""

from __future__ import annotations

import json

from edge.bundle import MANIFEST, load_bundle, read_bundle, seal
from edge.reference import Models, compare, load, run
from export.signing import keygen, sign_bundle
from tests.edge.test_agent_delivery import sample
from tests.edge.test_gate import demo_copy


def test_a_reference_clip_is_added_resealed_and_the_stale_signature_removed(tmp_path, shelfwatch):
    bundle = demo_copy(tmp_path / "bundle")
    data = json.loads((bundle / MANIFEST).read_text())
    data.pop("reference")
    data["files"].pop("reference.npz")
    (bundle / "reference.npz").unlink()
    data["drift"] = {"threshold": 3.5}  # a newer export's field: kept as it is
    (bundle / MANIFEST).write_text(json.dumps(seal(data)))
    sign_bundle(bundle, keygen(tmp_path / "chain").private)
    before = load_bundle(bundle).bundle_id
    video = sample(tmp_path, 60, seed=41)
    result = shelfwatch("bundle", "reference", bundle, "--video", video, "--start", 10)
    assert result.returncode == 0, result.stderr
    after = read_bundle(bundle)
    assert result.stdout.startswith(f"bundle {before} -> {after.manifest.bundle_id}: reference clip reference.npz (32 "
                                    f"frames, 4 for the detector, from {video.name} frames 10-42)")  # fmt: skip
    assert "its signature was of the manifest before: removed; sign it again" in result.stdout
    assert not (bundle / "signature.json").exists() and after.ignored == ("drift",)
    assert json.loads((bundle / MANIFEST).read_text())["drift"] == {"threshold": 3.5}
    clip, recorded = load(bundle / "reference.npz", after.manifest)
    assert compare(recorded, run(Models(after.manifest, bundle), clip)).ok


def test_bad_input_is_one_line_and_changes_nothing(tmp_path, shelfwatch):
    bundle = demo_copy(tmp_path / "bundle")
    manifest = (bundle / MANIFEST).read_bytes()
    video = sample(tmp_path, 40, seed=42)
    damaged = demo_copy(tmp_path / "damaged")
    (damaged / "detector.onnx").write_bytes(b"not a graph")
    cases = [
        ((bundle, "--video", tmp_path / "none.mp4"), "none.mp4: no such video file"),
        ((bundle, "--video", video, "--start", 20), "has 40 frames; a reference clip takes 32 from frame 20"),
        ((bundle, "--video", video, "--start", -1), "--start must be 0 or more"),
        ((tmp_path / "nowhere", "--video", video), "no such model bundle"),
        ((damaged, "--video", video), "detector.onnx does not match its sha256"),
    ]
    for args, message in cases:
        result = shelfwatch("bundle", "reference", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert (bundle / MANIFEST).read_bytes() == manifest
