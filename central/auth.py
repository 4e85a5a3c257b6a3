"""Who may use the HTTP API: API tokens, one per store (a store's POS, its pages) or chain-wide (admin).

A token reads `swt_<id>_<secret>`: the id names it (lists, revocation), the secret is 32 random bytes. Only
the secret's SHA-256 is stored, and it is compared in constant time; the token is shown once, when it is
created. A store's token sees and writes only its own store; an admin token sees every store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from central import db
from edge.errors import ShelfWatchError

PREFIX = "swt"
_TOKEN = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
_STORE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Principal:
    """Whoever presented a valid token: a store's (store set) or the chain's (store None)."""

    token_id: str
    store: str | None
    name: str

    @property
    def admin(self) -> bool:
        return self.store is None

    def may(self, store: str) -> bool:
        return self.store is None or self.store == store


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(engine: Engine, store: str | None, name: str = "") -> tuple[str, str]:
    """A new token for `store` (None: admin): (token id, the token, to be shown once)."""
    if store is not None and not _STORE.match(store):
        raise ShelfWatchError(f"--store {store!r}: a store is lower-case letters, digits, '-' and '_'")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(db.api_tokens.insert().values(
            token_id=token_id, secret_sha256=_digest(secret), store=store, name=name[:128],
            created=datetime.now(timezone.utc)))  # fmt: skip
    return token_id, f"{PREFIX}_{token_id}_{secret}"


def revoke(engine: Engine, token_id: str) -> bool:
    with engine.begin() as conn:
        query = update(db.api_tokens).where(db.api_tokens.c.token_id == token_id, db.api_tokens.c.revoked.is_(None))
        return conn.execute(query.values(revoked=datetime.now(timezone.utc))).rowcount == 1


def listing(engine: Engine) -> list[dict]:
    cols = [c for c in db.api_tokens.c if c.name != "secret_sha256"]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(db.api_tokens.c.created))
        return [dict(r._mapping) for r in rows]


# Compared against when the token id is unknown, so that an unknown id costs the same as a wrong secret.
_NOBODY = _digest(secrets.token_urlsafe(32))


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal a token stands for, or None (malformed, unknown, revoked or wrong)."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    with engine.connect() as conn:
        row = conn.execute(select(db.api_tokens).where(db.api_tokens.c.token_id == token_id)).first()
    ok = hmac.compare_digest(_digest(secret), row.secret_sha256 if row is not None else _NOBODY)
    if not ok or row is None or row.revoked is not None:
        return None
    return Principal(token_id=row.token_id, store=row.store, name=row.name)
