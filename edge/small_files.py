"""Reading the small files a box or an installer is given (configs, keys, signatures): never more than their limit,
so a path to a huge file by mistake costs one line, not the memory; every failure is a one-line ShelfWatchError."""

from __future__ import annotations

from pathlib import Path

from edge.errors import ShelfWatchError


def read_small(path: Path, limit: int, what: str) -> bytes:
    """At most `limit` bytes of `path`: more is refused as "larger than ...; not a `what`"."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ShelfWatchError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise ShelfWatchError(f"{path}: larger than {limit // 1024} KiB; not {what}")
    return data
