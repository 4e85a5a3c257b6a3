"""A box's signature check (`edge.signing`, through `load_bundle` with keys): a signed bundle is accepted and says
by whom; an unsigned one, one signed by a key the box does not trust, one whose manifest or a model file changed
after signing, and a forged signature are refused with one line; two trusted keys (a rotation) both work."""

import base64
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.bundle import MANIFEST, load_bundle, read_bundle, seal
from edge.errors import ShelfWatchError
from edge.signing import SIGNATURE, load_public_key, load_trusted_keys
from export.signing import KeyPair, keygen, sign_bundle
from tests.edge.test_agent_delivery import DEMO_BUNDLE


def demo_copy(tmp_path: Path, name: str = "bundle") -> Path:
    bundle = tmp_path / name
    shutil.copytree(DEMO_BUNDLE, bundle)
    return bundle


def signed_copy(tmp_path: Path, *keys: KeyPair, name: str = "bundle") -> Path:
    bundle = demo_copy(tmp_path, name)
    for key in keys:
        sign_bundle(bundle, key.private)
    return bundle


@pytest.fixture
def keys(tmp_path) -> dict[str, KeyPair]:
    """The chain's current key and the next one (a rotation), and a stranger's."""
    return {name: keygen(tmp_path / "keys" / name) for name in ("old", "new", "stranger")}


def trusting(*pairs: KeyPair):
    return load_trusted_keys([p.public for p in pairs])


def refusal(bundle: Path, *pairs: KeyPair) -> str:
    with pytest.raises(ShelfWatchError) as error:
        load_bundle(bundle, trusting(*pairs))
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_signed_bundle_is_accepted_and_says_which_key_signed_it(tmp_path, keys):
    bundle = signed_copy(tmp_path, keys["old"])
    checked = read_bundle(bundle, trusting(keys["old"]))
    assert checked.signed_by is not None and checked.signed_by.key_id == keys["old"].key_id
    assert checked.manifest.bundle_id == load_bundle(DEMO_BUNDLE).bundle_id  # signing changes no byte of the manifest
    assert read_bundle(bundle).signed_by is None  # no keys: not checked (a box without keys)


def test_an_unsigned_bundle_is_refused(tmp_path, keys):
    message = refusal(demo_copy(tmp_path), keys["old"])
    assert message.endswith(f"unsigned (no {SIGNATURE}); only bundles signed by key(s) {keys['old'].key_id} are "
                            "accepted"), message  # fmt: skip


def test_a_bundle_signed_by_an_unknown_key_is_refused(tmp_path, keys):
    message = refusal(signed_copy(tmp_path, keys["stranger"]), keys["old"], keys["new"])
    assert (f"signed by unknown key(s) {keys['stranger'].key_id}; the trusted key(s) are {keys['old'].key_id}, "
            f"{keys['new'].key_id}") in message, message  # fmt: skip


def test_one_byte_changed_in_a_model_file_is_refused(tmp_path, keys):
    bundle = signed_copy(tmp_path, keys["old"])
    model = bundle / "detector.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    message = refusal(bundle, keys["old"])
    assert "detector.onnx does not match its sha256 in the manifest" in message, message


def test_one_byte_changed_in_the_manifest_is_refused_even_where_the_bundle_id_cannot_see_it(tmp_path, keys):
    """An extra space changes no content (the bundle id is the same), but it is not what was signed."""
    bundle = signed_copy(tmp_path, keys["old"])
    text = (bundle / MANIFEST).read_text()
    (bundle / MANIFEST).write_text(text.replace('"target": "cpu"', '"target":  "cpu"', 1))
    assert load_bundle(bundle).bundle_id == load_bundle(DEMO_BUNDLE).bundle_id
    message = refusal(bundle, keys["old"])
    assert f"the signature by key {keys['old'].key_id} does not match manifest.json (it changed after signing)" in (
        message
    ), message


def test_a_resealed_edit_passes_the_bundle_id_but_not_the_signature(tmp_path, keys):
    """The attack the bundle id alone cannot stop: swap the catalogue and recompute the id."""
    bundle = signed_copy(tmp_path, keys["old"])
    data = json.loads((bundle / MANIFEST).read_text())
    catalog = data["detector"]["catalog"]
    catalog[0]["sku"], catalog[1]["sku"] = catalog[1]["sku"], catalog[0]["sku"]
    (bundle / MANIFEST).write_text(json.dumps(seal(data), indent=2))
    load_bundle(bundle)  # a box without keys takes it
    assert "does not match manifest.json (it changed after signing)" in refusal(bundle, keys["old"])


def test_a_forged_signature_is_refused(tmp_path, keys):
    """The stranger signs and claims to be the chain's key."""
    bundle = signed_copy(tmp_path, keys["stranger"])
    document = json.loads((bundle / SIGNATURE).read_text())
    document["signatures"][0]["key_id"] = keys["old"].key_id
    (bundle / SIGNATURE).write_text(json.dumps(document))
    message = refusal(bundle, keys["old"])
    assert message.endswith(f"the signature by key {keys['old'].key_id} does not match manifest.json (a forged or "
                            "damaged signature)"), message  # fmt: skip
    document["signatures"][0]["ed25519"] = base64.b64encode(b"\0" * 64).decode()
    (bundle / SIGNATURE).write_text(json.dumps(document))
    assert "a forged or damaged signature" in refusal(bundle, keys["old"])


def test_two_trusted_keys_both_verify_while_keys_rotate(tmp_path, keys):
    old, new = keys["old"], keys["new"]
    by_old, by_new = signed_copy(tmp_path, old, name="by-old"), signed_copy(tmp_path, new, name="by-new")
    for bundle, signer in ((by_old, old), (by_new, new)):
        assert read_bundle(bundle, trusting(old, new)).signed_by.key_id == signer.key_id
    # Signed by both: boxes that trust only the old key and boxes that trust only the new one run it.
    both = signed_copy(tmp_path, old, new, name="both")
    assert [s["key_id"] for s in json.loads((both / SIGNATURE).read_text())["signatures"]] == [new.key_id, old.key_id]
    assert read_bundle(both, trusting(old)).signed_by.key_id == old.key_id
    assert read_bundle(both, trusting(new)).signed_by.key_id == new.key_id
    assert "signed by unknown key(s)" in refusal(both, keys["stranger"])


def test_a_box_is_given_public_keys_only(tmp_path, keys):
    with pytest.raises(ShelfWatchError, match="holds a private key; a box is given only the public key"):
        load_public_key(keys["old"].private)
    other = tmp_path / "ec.pub"
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    other.write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(ShelfWatchError, match="bundle keys are Ed25519"):
        load_public_key(other)
    with pytest.raises(ShelfWatchError, match=r"not a PEM public key"):
        load_public_key(DEMO_BUNDLE / MANIFEST)
    with pytest.raises(ShelfWatchError, match=r"nowhere.pub: cannot be read \(No such file or directory\)"):
        load_public_key(tmp_path / "nowhere.pub")
    assert len(load_trusted_keys([keys["old"].public, keys["old"].public])) == 1


def test_a_damaged_or_future_signature_file_is_one_line(tmp_path, keys):
    bundle = demo_copy(tmp_path)
    for text, message in (("{", "not a signature file (not JSON)"),
                          ('{"format": "shelfwatch-bundle-signature", "signatures": []}', "not a signature file"),
                          ('{"format": "shelfwatch-bundle-signature", "version": 2, "signatures": []}',
                           "signature format version 2 is newer than this agent's (1)")):  # fmt: skip
        (bundle / SIGNATURE).write_text(text)
        assert message in refusal(bundle, keys["old"])


def test_the_manifest_cannot_list_the_signature_as_one_of_its_files(tmp_path):
    bundle = demo_copy(tmp_path)
    data = json.loads((bundle / MANIFEST).read_text())
    data["files"][SIGNATURE] = data["files"]["detector.onnx"]
    (bundle / MANIFEST).write_text(json.dumps(seal(data)))
    with pytest.raises(ShelfWatchError, match=r"signature\.json' is not a plain file name"):
        load_bundle(bundle)
