"""Signing keys and signatures for model bundles (`shelfwatch bundle keygen|sign`). The box only verifies
(`edge/signing.py`); private keys stay where bundles are signed and never enter a bundle or a box."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import MANIFEST, Manifest, load_bundle
from edge.errors import ShelfWatchError
from edge.signing import (
    MAX_KEY_BYTES,
    SIGNATURE,
    Signature,
    SignatureFile,
    TrustedKey,
    key_id,
    public_pem,
    read_signatures,
    signed_message,
)
from edge.small_files import read_small

PRIVATE_SUFFIX, PUBLIC_SUFFIX = ".key", ".pub"


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    key_id: str


@dataclass(frozen=True)
class Signed:
    manifest: Manifest
    key_id: str
    others: list[str]  # the ids of the other keys whose signatures of this manifest were kept
    dropped: int  # signatures of an earlier manifest, removed


def _in_bundle(path: Path) -> Path | None:
    """The bundle folder `path` lies in, if any (a folder with a manifest, or one above it)."""
    for folder in path.resolve().parents:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def keygen(name: Path) -> KeyPair:
    """NAME.key (PKCS#8 PEM, mode 0600 from its creation) and NAME.pub (SubjectPublicKeyInfo PEM); never over
    an existing file, never inside a bundle."""
    if name.name in ("", ".", "..") or name.suffix in (PRIVATE_SUFFIX, PUBLIC_SUFFIX):
        raise ShelfWatchError(f"{str(name)!r}: give a path without suffix (keys/chain-2026 writes keys/chain-2026.key "
                              "and keys/chain-2026.pub)")  # fmt: skip
    private_path, public_path = name.with_name(name.name + PRIVATE_SUFFIX), name.with_name(name.name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists():
            raise ShelfWatchError(f"{path}: already exists; keys are never overwritten (choose another name)")
    bundle = _in_bundle(private_path)
    if bundle is not None:
        raise ShelfWatchError(f"{private_path}: inside the model bundle {bundle}; keep private keys out of bundles")
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(public_pem(key.public_key()))
    except OSError as exc:
        raise ShelfWatchError(f"{exc.filename or private_path}: cannot write a key there ({exc.strerror})") from None
    return KeyPair(private_path, public_path, key_id(key.public_key()))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = read_small(path, MAX_KEY_BYTES, "a private key")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ShelfWatchError(f"{path}: cannot be read ({exc.strerror})") from None
    if b"PRIVATE KEY" not in data:
        if b"PUBLIC KEY" in data:
            raise ShelfWatchError(f"{path}: a public key; sign with the private key ({PRIVATE_SUFFIX})")
        raise ShelfWatchError(f"{path}: not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ShelfWatchError(f"{path}: encrypted; `bundle sign` reads unencrypted keys (kept mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ShelfWatchError(f"{path}: not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ShelfWatchError(f"{path}: not an Ed25519 key; bundle keys are Ed25519 (`shelfwatch bundle keygen`)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"shelfwatch: warning: {path} can be read by other users (mode {stat.S_IMODE(mode):04o}); "
              "chmod 600 it", file=sys.stderr)  # fmt: skip
    return key


def sign_bundle(folder: Path, key_path: Path) -> Signed:
    """Sign the bundle's manifest with the private key at `key_path`, keeping other keys' signatures of the same
    manifest (a bundle signed by the old and the new key during a rotation); the result is verified."""
    key = load_private_key(key_path)
    bundle = _in_bundle(key_path)
    if bundle is not None:
        raise ShelfWatchError(f"{key_path}: inside the model bundle {bundle}; keep private keys out of bundles")
    manifest_path = folder / MANIFEST
    try:
        raw = manifest_path.read_bytes()
    except OSError:
        raw = b""
    load_bundle(folder)  # every file matches the manifest: a damaged bundle is never signed
    if manifest_path.read_bytes() != raw:
        raise ShelfWatchError(f"{manifest_path}: changed while it was being signed; sign again")
    public = key.public_key()
    mine = key_id(public)
    digest = hashlib.sha256(raw).hexdigest()
    existing = read_signatures(folder)
    earlier = existing.signatures if existing is not None else []
    kept = [s for s in earlier if s.key_id != mine and s.manifest_sha256 == digest]
    entry = Signature(key_id=mine, manifest_sha256=digest,
                      ed25519=base64.b64encode(key.sign(signed_message(raw))).decode())  # fmt: skip
    document = SignatureFile(signatures=[entry, *kept])
    write_atomically(folder / SIGNATURE, (document.model_dump_json(indent=2) + "\n").encode())
    manifest = load_bundle(folder, [TrustedKey(mine, public, key_path)])  # what was written verifies
    dropped = len([s for s in earlier if s.key_id != mine]) - len(kept)
    return Signed(manifest, mine, [s.key_id for s in kept], dropped)


def write_atomically(path: Path, data: bytes) -> None:
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise ShelfWatchError(f"{path}: cannot be written ({exc.strerror})") from None
