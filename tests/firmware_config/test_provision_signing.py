"""Provisioning and bundle keys: the chain's public keys (two during a rotation) land on every box and the box
accepts its signed bundle with them; a private key named as a bundle key, or an unsigned bundle for boxes with
keys, is refused before anything is written; no private signing key ends up in a bundle, a box folder or the
broker folder."""

import re
from pathlib import Path

import yaml

from edge.agent import check_bundle
from edge.config import load_box_config
from edge.signing import SIGNATURE
from export.signing import KeyPair, keygen
from firmware_config.store import validate_path
from tests.edge.test_signing import demo_copy, signed_copy
from tests.firmware_config.test_store import copy_example

BOXES = ("aisle1-left", "aisle1-right")


def store_with(tmp_path: Path, bundle: Path, keys: list[Path]) -> Path:
    store = copy_example(tmp_path)
    text = re.sub(r"(?m)^bundle: .*$", f"bundle: {bundle}", (store / "store.yaml").read_text())
    (store / "store.yaml").write_text(text + f"bundle_keys: [{', '.join(str(k) for k in keys)}]\n")
    return store


def secrets_of(key: KeyPair) -> list[bytes]:
    """The private key as it could travel: its PEM file, the PEM's base64 body, the raw 32-byte seed."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private.read_bytes()
    seed = serialization.load_pem_private_key(pem, None).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return [pem, b"".join(pem.splitlines()[1:-1]), seed]


def assert_nowhere(folders: list[Path], secrets: list[bytes]) -> None:
    files = [f for folder in folders for f in folder.rglob("*") if f.is_file()]
    assert files
    for file in files:
        data = file.read_bytes()
        assert not any(s in data for s in secrets), f"{file} holds the private signing key"


def test_every_box_gets_the_chains_public_keys_and_accepts_its_signed_bundle(tmp_path, shelfwatch):
    old, new = keygen(tmp_path / "keys" / "old"), keygen(tmp_path / "keys" / "new")
    bundle = signed_copy(tmp_path, old)
    store = store_with(tmp_path, bundle, [old.public, new.public])
    assert validate_path(store) == (2, [])
    out = tmp_path / "out"
    result = shelfwatch("provision", store, "--out", out)
    assert result.returncode == 0 and "unsigned" not in result.stderr, result.stderr
    for name in BOXES:
        folder = out / "boxes" / name
        written = yaml.safe_load((folder / "config.yaml").read_text())
        assert written["bundle_keys"] == [f"keys/{old.key_id}.pub", f"keys/{new.key_id}.pub"]
        for key in (old, new):
            assert (folder / "keys" / f"{key.key_id}.pub").read_bytes() == key.public.read_bytes()
        assert (folder / "bundle" / SIGNATURE).read_bytes() == (bundle / SIGNATURE).read_bytes()
        checked = check_bundle(load_box_config(folder / "config.yaml"))  # what the agent does at its start
        assert checked.signed_by is not None and checked.signed_by.key_id == old.key_id
    secrets = secrets_of(old) + secrets_of(new)
    assert_nowhere([out / "boxes", out / "broker", out / "consumers", bundle], secrets)


def test_a_private_key_named_as_a_bundle_key_is_refused_before_anything_is_written(tmp_path, shelfwatch):
    key = keygen(tmp_path / "keys" / "chain")
    store = store_with(tmp_path, signed_copy(tmp_path, key), [key.private])
    out = tmp_path / "out"
    result = shelfwatch("provision", store, "--out", out)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "store.yaml:" in result.stderr and "bundle_keys:" in result.stderr
    assert "holds a private key; a box is given only the public key" in result.stderr
    assert not out.exists()
    checked = shelfwatch("config", "validate", store)
    assert checked.returncode == 1 and "holds a private key" in checked.stderr


def test_an_unsigned_bundle_for_boxes_with_keys_is_refused_before_anything_is_written(tmp_path, shelfwatch):
    key = keygen(tmp_path / "keys" / "chain")
    store = store_with(tmp_path, demo_copy(tmp_path), [key.public])
    out = tmp_path / "out"
    result = shelfwatch("provision", store, "--out", out)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "box aisle1-left: " in result.stderr and "unsigned (no signature.json)" in result.stderr
    assert "(the box would refuse it)" in result.stderr and not out.exists()


def test_boxes_without_keys_are_provisioned_as_before_with_a_warning(tmp_path, shelfwatch):
    out = tmp_path / "out"
    result = shelfwatch("provision", copy_example(tmp_path), "--out", out)
    assert result.returncode == 0, result.stderr
    assert "warning: no bundle_keys for aisle1-left, aisle1-right: they run unsigned bundles" in result.stderr
    for name in BOXES:
        assert "bundle_keys" not in yaml.safe_load((out / "boxes" / name / "config.yaml").read_text())
        assert not (out / "boxes" / name / "keys").exists()
