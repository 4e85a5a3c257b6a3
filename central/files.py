"""Files between boxes and central (the channel's heavy half; control messages travel over MQTT): what boxes upload
(clips, snapshots) and what central addresses to a box (bundles, configs), kept under central's data directory,
each with a row in the `files` table.

Uploads are streamed to disk, hashed on the way, bounded by their kind's size while they stream (413 the moment
a body passes it, chunked or not), checked for what they claim to be (an MP4 that decodes, a JPEG that opens) and
only then moved into place: a file is there whole or not at all. A name is a file's identity per box: the same
bytes sent again (a box that did not hear the answer) are acknowledged without a second copy; other bytes under
a name already taken are refused (409). A full disk, or less free space than the reserve, is 507: the box keeps
the file and tries again later.

Downloads are content-addressed (`blobs/<sha256>`): a bundle sent to a hundred boxes is kept once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine, Row

from central import db
from edge.bundle import MANIFEST, load_bundle
from edge.control import FileRef
from edge.errors import ShelfWatchError
from edge.signing import SIGNATURE

MB = 1_000_000
# The largest upload of each kind: a kept clip is seconds of video around one moment (10 s of 1080p H.264 is about
# 10-20 MB), a snapshot one JPEG of the camera's picture (1-2 MB at 1080p).
UPLOAD_LIMITS = {"clip": 100 * MB, "snapshot": 10 * MB}
DOWNLOAD_KINDS = ("bundle", "config")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_CLIP_S = 600.0


class TooLarge(Exception):
    pass


class NoSpace(Exception):
    pass


class Conflict(Exception):
    pass


class BadContent(Exception):
    pass


@dataclass(frozen=True)
class Stored:
    name: str
    size: int
    sha256: str
    created: bool  # False: the same bytes were already there


class FileStore:
    def __init__(self, engine: Engine, root: Path, reserve_bytes: int = 100 * MB) -> None:
        self.engine, self.root, self.reserve = engine, root, reserve_bytes
        root.mkdir(parents=True, exist_ok=True)

    # -- uploads (box -> central) -------------------------------------------------------------------------------

    async def receive(
        self, store: str, box: str, kind: str, name: str, body: AsyncIterator[bytes], covers: list[str] | None = None
    ) -> Stored:
        """Stream `body` into place; TooLarge, NoSpace, Conflict or BadContent (one sentence) when it cannot be."""
        limit = UPLOAD_LIMITS[kind]
        folder = self.root / "files" / store / box / kind
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=folder)
        tmp = Path(tmp_name)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in body:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"a {kind} is at most {limit // MB} MB")
                    if shutil.disk_usage(folder).free - len(chunk) < self.reserve:
                        raise NoSpace("central's disk is full; keep the file and try again later")
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            known = self._row(store, box, kind, name)
            if known is not None:
                if known.sha256 != sha:
                    raise Conflict(f"{name} is already taken by other bytes")
                return Stored(name, size, sha, created=False)
            check_content(kind, tmp)
            final = folder / name
            os.replace(tmp, final)
            with self.engine.begin() as conn:
                db.insert_ignore(conn, db.files, {
                    "store": store, "box": box, "kind": kind, "name": name, "direction": "up", "size": size,
                    "sha256": sha, "path": str(final.relative_to(self.root)), "created": datetime.now(timezone.utc),
                    "covers": covers or None})  # fmt: skip
            return Stored(name, size, sha, created=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NoSpace("central's disk is full; keep the file and try again later") from None
            raise
        finally:
            tmp.unlink(missing_ok=True)

    # -- downloads (central -> box) -----------------------------------------------------------------------------

    def address(self, store: str, box: str, kind: str, name: str, content: bytes,
                conn: Connection | None = None) -> FileRef:  # fmt: skip
        """Keep `content` (once, by its digest) as `kind/name` for this box; what the box is told to fetch."""
        return self.address_kept(store, box, kind, name, self.keep(content), conn)

    def keep(self, content: bytes) -> str:
        """Keep `content` once, by its digest (a bundle sent to a hundred boxes is one file); its SHA-256."""
        sha = hashlib.sha256(content).hexdigest()
        blob = self.root / "blobs" / sha
        if not blob.is_file():
            blob.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".blob-", dir=blob.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, blob)
        return sha

    def has_blob(self, sha: str) -> bool:
        return (self.root / "blobs" / sha).is_file()

    def address_kept(self, store: str, box: str, kind: str, name: str, sha: str,
                     conn: Connection | None = None) -> FileRef:  # fmt: skip
        """A kept blob (`keep`) addressed to this box as `kind/name` (in `conn`'s transaction, if given)."""
        blob = self.root / "blobs" / sha
        size = blob.stat().st_size
        row = {"store": store, "box": box, "kind": kind, "name": name, "direction": "down", "size": size,
               "sha256": sha, "path": str(blob.relative_to(self.root)),
               "created": datetime.now(timezone.utc)}  # fmt: skip
        with contextlib.nullcontext(conn) if conn is not None else self.engine.begin() as c:
            c.execute(db.files.delete().where(db.files.c.store == store, db.files.c.box == box,
                                              db.files.c.kind == kind, db.files.c.name == name))  # fmt: skip
            c.execute(db.files.insert().values(**row))
        return FileRef(name=name, size=size, sha256=sha)

    def path(self, store: str, box: str, kind: str, name: str) -> Path | None:
        row = self._row(store, box, kind, name)
        return self.root / row.path if row is not None else None

    def listing(self, store: str, box: str) -> list[dict]:
        f = db.files.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.files).where(f.store == store, f.box == box).order_by(f.created, f.name))
            return [{k: v for k, v in r._mapping.items() if k != "path"} for r in rows]

    def _row(self, store: str, box: str, kind: str, name: str) -> Row | None:
        f = db.files.c
        with self.engine.connect() as conn:
            return conn.execute(select(db.files).where(f.store == store, f.box == box, f.kind == kind,
                                                       f.name == name)).first()  # fmt: skip


def check_content(kind: str, path: Path) -> None:
    """BadContent unless the file is what its kind says: a clip an MP4 (or other video) that decodes, a snapshot a
    JPEG that opens."""
    if kind == "clip":
        from central.web.video import probe

        try:
            probe(path, MAX_CLIP_S)
        except ShelfWatchError as exc:
            raise BadContent(f"not a usable clip: {exc}") from None
    elif kind == "snapshot":
        import cv2
        import numpy as np

        data = path.read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data[:3] == b"\xff\xd8\xff" else None
        if image is None or image.size == 0:
            raise BadContent("not a JPEG that opens")


def pack_bundle(folder: Path) -> tuple[str, bytes]:
    """A bundle as one tar (what a box downloads): its manifest, the files it lists and its signatures (when it is
    signed), checked first, in a fixed order with fixed metadata, so the same bundle always packs to the same
    bytes. Returns (bundle id, tar)."""
    manifest = load_bundle(folder)
    names = [MANIFEST, *sorted(manifest.files), *([SIGNATURE] if (folder / SIGNATURE).is_file() else [])]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return manifest.bundle_id, out.getvalue()
