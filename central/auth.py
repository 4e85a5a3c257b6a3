"""Who may use the HTTP API: API tokens, one per store (a store's POS, its pages), chain-wide (admin), or one
box's own (minted at provisioning, registered with `central token import`).

A token reads `swt_<id>_<secret>` (edge.tokens): the id names it (lists, revocation), the secret is 32 random
bytes. Only the secret's SHA-256 is stored, and it is compared in constant time; the token is shown once, when it
is created. A store's token sees and writes only its own store; an admin token sees every store; a box's token
may only upload files for that box and download what central addressed to it.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from central import db
from edge.errors import ShelfWatchError
from edge.schema import is_slug
from edge.tokens import digest, mint, parse


@dataclass(frozen=True)
class Principal:
    """Whoever presented a valid token: a store's (store set) or the chain's (store None)."""

    token_id: str
    store: str | None
    name: str
    box: str | None = None  # a box's own token: only its files

    @property
    def admin(self) -> bool:
        return self.store is None

    def may(self, store: str) -> bool:
        return self.store is None or self.store == store

    def is_box(self, store: str, box: str) -> bool:
        return self.box is not None and (self.store, self.box) == (store, box)


def create(engine: Engine, store: str | None, name: str = "") -> tuple[str, str]:
    """A new token for `store` (None: admin): (token id, the token, to be shown once)."""
    if store is not None and not is_slug(store):
        raise ShelfWatchError(f"--store {store!r}: a store is lower-case letters, digits, '-' and '_'")
    token_id, secret, token = mint()
    with engine.begin() as conn:
        conn.execute(db.api_tokens.insert().values(
            token_id=token_id, secret_sha256=digest(secret), store=store, name=name[:128],
            created=datetime.now(timezone.utc)))  # fmt: skip
    return token_id, token


def import_box_tokens(engine: Engine, text: str) -> list[tuple[str, str, str]]:
    """Register the box tokens provisioning minted (`box-tokens.json`: id, hash, store, box per box); a box
    provisioned again gets its new token and its earlier ones are revoked. Returns (token id, store, box)."""
    try:
        entries = json.loads(text)
        rows = [(str(e["token_id"]), str(e["secret_sha256"]), str(e["store"]), str(e["box"])) for e in entries]
    except (ValueError, KeyError, TypeError):
        raise ShelfWatchError("not a box-tokens.json written by `shelfwatch provision`") from None
    for token_id, sha, store, box in rows:
        if not (len(token_id) == 12 and len(sha) == 64 and is_slug(store) and is_slug(box)):
            raise ShelfWatchError(f"box-tokens.json: a malformed entry for {store[:64]!r}/{box[:64]!r}")
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for token_id, sha, store, box in rows:
            t = db.api_tokens.c
            conn.execute(update(db.api_tokens).where(t.store == store, t.box == box, t.token_id != token_id,
                                                     t.revoked.is_(None)).values(revoked=now))  # fmt: skip
            row = {"token_id": token_id, "secret_sha256": sha, "store": store, "box": box, "created": now}
            db.insert_ignore(conn, db.api_tokens, row | {"name": f"box {store}/{box}"})
    return [(token_id, store, box) for token_id, _, store, box in rows]


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
_NOBODY = digest(mint()[1])


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal a token stands for, or None (malformed, unknown, revoked or wrong)."""
    parsed = parse(token)
    if parsed is None:
        return None
    token_id, secret = parsed
    with engine.connect() as conn:
        row = conn.execute(select(db.api_tokens).where(db.api_tokens.c.token_id == token_id)).first()
    ok = hmac.compare_digest(digest(secret), row.secret_sha256 if row is not None else _NOBODY)
    if not ok or row is None or row.revoked is not None:
        return None
    return Principal(token_id=row.token_id, store=row.store, name=row.name, box=row.box)
