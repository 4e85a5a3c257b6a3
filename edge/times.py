"""Time as every part of ShelfWatch keeps it: aware datetimes in UTC. Databases (SQLite) hand back naive
datetimes, which are UTC by our own writing; epoch seconds come from clocks and files."""

from __future__ import annotations

from datetime import datetime, timezone

from edge.errors import ShelfWatchError


def as_utc(ts: datetime) -> datetime:
    """Aware, in UTC: a naive datetime is taken as UTC (that is how we store them), an aware one converted."""
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def parse_iso(text: str, flag: str, *, need_offset: bool = False) -> datetime:
    """A command-line time: ISO 8601, `Z` for UTC; without an offset it is UTC unless `need_offset` (then refused).
    Bad input is a ShelfWatchError naming the flag."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ShelfWatchError(
            f"{flag} {text!r}: not an ISO 8601 date or time (2026-11-25 or 2026-11-25T09:00)"
        ) from None
    if when.tzinfo is None and need_offset:
        raise ShelfWatchError(f"{flag} {text!r}: give its UTC offset (…+01:00, or Z for UTC)")
    try:
        return as_utc(when)
    except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC time
        raise ShelfWatchError(f"{flag} {text!r}: {when.isoformat()} is out of range in UTC") from None
