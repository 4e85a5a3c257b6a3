"""`shelfwatch bundle keygen|sign|verify` as a user runs them: a round trip; `verify` refuses a changed model file,
an unsigned bundle and an unknown key with one line and a non-zero exit; two trusted keys (a rotation) both
verify; private keys never enter a bundle."""

import json
import stat

import pytest

from edge.bundle import MANIFEST, load_bundle
from edge.errors import ShelfWatchError
from edge.signing import SIGNATURE
from export.signing import keygen, sign_bundle
from tests.edge.test_signing import demo_copy, signed_copy


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("shelfwatch: error: "), result.stderr
    return lines[0]


def test_keygen_sign_verify_round_trip(tmp_path, shelfwatch):
    made = shelfwatch("bundle", "keygen", tmp_path / "keys" / "chain-2026")
    assert made.returncode == 0, made.stderr
    private, public = tmp_path / "keys" / "chain-2026.key", tmp_path / "keys" / "chain-2026.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and public.read_text().startswith("-----BEGIN PUBLIC KEY")
    key_id = made.stdout.split()[1].rstrip(":")
    bundle = demo_copy(tmp_path)
    signed = shelfwatch("bundle", "sign", bundle, "--key", private)
    demo = load_bundle(bundle)
    assert signed.returncode == 0 and f"bundle {demo.bundle_id} signed by key {key_id}" in signed.stdout, signed
    verified = shelfwatch("bundle", "verify", bundle, "--key", public)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"bundle {demo.bundle_id}: signed by key {key_id} ({public}); "
                                      f"{len(demo.files)} files match")  # fmt: skip
    again = shelfwatch("bundle", "keygen", tmp_path / "keys" / "chain-2026")
    assert "chain-2026.key: already exists; keys are never overwritten" in one_line_error(again)
    assert private.read_bytes() and stat.S_IMODE(private.stat().st_mode) == 0o600
    for name in ("", tmp_path / "chain.key"):
        assert "give a path without suffix" in one_line_error(shelfwatch("bundle", "keygen", name))


def test_verify_refuses_with_one_line_naming_what_failed(tmp_path, shelfwatch):
    chain, stranger = keygen(tmp_path / "chain"), keygen(tmp_path / "stranger")
    changed = signed_copy(tmp_path, chain, name="changed")
    with (changed / "action_step.onnx").open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    cases = [
        (changed, "action_step.onnx does not match its sha256 in the manifest"),
        (demo_copy(tmp_path, "unsigned"), "unsigned (no signature.json)"),
        (signed_copy(tmp_path, stranger, name="unknown"), f"signed by unknown key(s) {stranger.key_id}"),
    ]
    for bundle, message in cases:
        assert message in one_line_error(shelfwatch("bundle", "verify", bundle, "--key", chain.public))


def test_two_trusted_keys_both_verify(tmp_path, shelfwatch):
    old, new = keygen(tmp_path / "old"), keygen(tmp_path / "new")
    for signer in (old, new):
        bundle = signed_copy(tmp_path, signer, name=signer.key_id)
        result = shelfwatch("bundle", "verify", bundle, "--key", old.public, "--key", new.public)
        assert result.returncode == 0 and f"signed by key {signer.key_id}" in result.stdout, result.stderr


def test_signing_again_keeps_the_other_keys_signature_and_drops_stale_ones(tmp_path):
    old, new = keygen(tmp_path / "old"), keygen(tmp_path / "new")
    bundle = signed_copy(tmp_path, old)
    assert sign_bundle(bundle, new.private).others == [old.key_id]
    text = (bundle / MANIFEST).read_text()
    (bundle / MANIFEST).write_text(text.replace('"target": "cpu"', '"target":  "cpu"', 1))  # a different manifest
    signed = sign_bundle(bundle, new.private)
    assert signed.others == [] and signed.dropped == 1
    assert [s["key_id"] for s in json.loads((bundle / SIGNATURE).read_text())["signatures"]] == [new.key_id]


def test_a_damaged_bundle_is_never_signed(tmp_path):
    key = keygen(tmp_path / "chain")
    bundle = demo_copy(tmp_path)
    (bundle / "detector.onnx").write_bytes(b"not the detector")
    with pytest.raises(ShelfWatchError, match=r"detector\.onnx does not match its sha256"):
        sign_bundle(bundle, key.private)
    assert not (bundle / SIGNATURE).exists()


def test_private_keys_never_enter_a_bundle(tmp_path, shelfwatch):
    bundle = demo_copy(tmp_path)
    inside = shelfwatch("bundle", "keygen", bundle / "chain")
    assert f"inside the model bundle {bundle}; keep private keys out of bundles" in one_line_error(inside)
    assert not list(bundle.glob("chain*"))
    key = keygen(tmp_path / "chain")
    moved = bundle / "chain.key"
    moved.write_bytes(key.private.read_bytes())
    moved.chmod(0o600)
    with pytest.raises(ShelfWatchError, match="inside the model bundle"):
        sign_bundle(bundle, moved)
    moved.unlink()
    with pytest.raises(ShelfWatchError, match=r"a public key; sign with the private key \(\.key\)"):
        sign_bundle(bundle, key.public)
    sign_bundle(bundle, key.private)
    secret = key.private.read_bytes()
    body = b"".join(secret.splitlines()[1:-1])  # the base64 of the PKCS#8 document
    for file in bundle.iterdir():
        data = file.read_bytes()
        assert secret not in data and body not in data and b"PRIVATE KEY" not in data, file
