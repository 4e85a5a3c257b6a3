"""Checking a bundle's signature on the box (verify only: signing and keys live in `export/signing.py`).

A signed bundle holds `signature.json` beside its manifest: one or more Ed25519 signatures (from the
`cryptography` package) over the exact bytes of `manifest.json`, each naming its key by id. The manifest
lists every file's sha256 and `load_bundle` checks them, so a valid signature covers every file. A box
trusts the public keys its config names (`bundle_keys`); a bundle is accepted when it carries a signature by
one of them and every signature by one of them verifies. Several trusted keys let a chain rotate: boxes
trust the old and the new key while bundles are signed by either (or both).

What is signed: `CONTEXT` followed by the manifest's bytes, so that a signature made for a bundle cannot be
passed off as a signature of anything else made with the same key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, ValidationError

from edge.errors import ShelfWatchError
from edge.schema import Strict, describe
from edge.small_files import read_small

SIGNATURE = "signature.json"
SIGNATURE_FORMAT = "shelfwatch-bundle-signature"
SIGNATURE_VERSION = 1
CONTEXT = b"shelfwatch bundle manifest signature v1\n"
MAX_SIGNATURE_BYTES = 64 << 10
MAX_KEY_BYTES = 16 << 10  # a PEM public key is about 113 bytes
MAX_SIGNATURES = 16
KEY_ID = r"^[0-9a-f]{16}$"


class Signature(Strict):
    key_id: str = Field(pattern=KEY_ID, description="the first 16 hex digits of the sha256 of the raw public key")
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description=(
        "the sha256 of the manifest it signed: only to say which signature is stale, never trusted"))  # fmt: skip
    ed25519: str = Field(min_length=86, max_length=88, description="the 64-byte signature, base64")


class SignatureFile(Strict):
    format: Literal["shelfwatch-bundle-signature"] = SIGNATURE_FORMAT
    version: int = Field(default=SIGNATURE_VERSION, ge=1)
    signatures: list[Signature] = Field(min_length=1, max_length=MAX_SIGNATURES)


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    key: Ed25519PublicKey
    path: Path


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signed_message(manifest: bytes) -> bytes:
    return CONTEXT + manifest


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> TrustedKey:
    """A public key file (PEM, Ed25519), refusing a private key: a box is given public keys only."""
    data = read_small(path, MAX_KEY_BYTES, "a public key")
    if b"PRIVATE KEY" in data:
        raise ShelfWatchError(f"{path}: holds a private key; a box is given only the public key (the .pub file "
                              "`shelfwatch bundle keygen` wrote)")  # fmt: skip
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ShelfWatchError(f"{path}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ShelfWatchError(f"{path}: a {type(public).__name__.removeprefix('_')} key; bundle keys are Ed25519 "
                              "(`shelfwatch bundle keygen`)")  # fmt: skip
    return TrustedKey(key_id(public), public, path)


def load_trusted_keys(paths: Sequence[Path]) -> list[TrustedKey]:
    """The keys a box trusts, each once (the same key under two names counts once)."""
    keys: dict[str, TrustedKey] = {}
    for path in paths:
        key = load_public_key(path)
        keys.setdefault(key.key_id, key)
    return list(keys.values())


def read_signatures(folder: Path) -> SignatureFile | None:
    """The bundle's signatures, or None when it has none."""
    path = folder / SIGNATURE
    if not path.exists():
        return None
    raw = read_small(path, MAX_SIGNATURE_BYTES, "a signature file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ShelfWatchError(f"{path}: not a signature file (not JSON)") from None
    if isinstance(data, dict) and isinstance(data.get("version"), int) and data["version"] > SIGNATURE_VERSION:
        raise ShelfWatchError(f"{path}: signature format version {data['version']} is newer than this agent's "
                              f"({SIGNATURE_VERSION}): upgrade the agent")  # fmt: skip
    try:
        return SignatureFile.model_validate(data)
    except ValidationError as exc:
        raise ShelfWatchError(f"{path}: not a signature file ({describe(exc)})") from None


def _signature_bytes(signature: Signature) -> bytes:
    try:
        return base64.b64decode(signature.ed25519, validate=True)
    except (binascii.Error, ValueError):
        return b""


def check_signature(folder: Path, manifest: bytes, keys: Sequence[TrustedKey]) -> TrustedKey:
    """The trusted key that signed these manifest bytes; else one line saying what is wrong: unsigned, signed
    by no trusted key, or a trusted key's signature that does not match (the manifest changed after signing)."""
    trusted = {k.key_id: k for k in keys}
    names = ", ".join(trusted)
    signatures = read_signatures(folder)
    if signatures is None:
        raise ShelfWatchError(f"{folder}: unsigned (no {SIGNATURE}); only bundles signed by key(s) {names} are "
                              "accepted")  # fmt: skip
    by_trusted = [s for s in signatures.signatures if s.key_id in trusted]
    if not by_trusted:
        found = ", ".join(s.key_id for s in signatures.signatures)
        raise ShelfWatchError(f"{folder}: signed by unknown key(s) {found}; the trusted key(s) are {names}")
    digest = hashlib.sha256(manifest).hexdigest()
    for signature in by_trusted:
        try:
            trusted[signature.key_id].key.verify(_signature_bytes(signature), signed_message(manifest))
        except InvalidSignature:
            why = "it changed after signing" if signature.manifest_sha256 != digest else "a forged or damaged signature"
            raise ShelfWatchError(f"{folder}: the signature by key {signature.key_id} does not match manifest.json "
                                  f"({why})") from None  # fmt: skip
    return trusted[by_trusted[0].key_id]
