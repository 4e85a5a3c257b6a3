"""API tokens for central's HTTP API: the format central checks, provisioning mints (a box's own token) and a box
presents. `swt_<id>_<secret>`: the id (12 hex digits) names the token in lists and revocations; only the secret's
SHA-256 is stored, so a stolen database holds no usable token."""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "swt"
TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")


def mint() -> tuple[str, str, str]:
    """A new token: (id, secret, the token as presented)."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return token_id, secret, f"{PREFIX}_{token_id}_{secret}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    match = TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None
