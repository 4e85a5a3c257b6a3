"""What every pydantic boundary shares: the strict base (unknown keys are errors, values frozen) and the one
way a validation error becomes a line a person can act on. The box imports it, so it lives in edge/."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Store, box, lane and user names: they become topic levels, file names, certificate names and ACL lines, so
# nothing but these characters (no '/', '+', '#', dots, spaces or newlines), and at most 63 of them.
SLUG = r"[a-z0-9][a-z0-9_-]{0,62}"
Slug = Annotated[str, Field(pattern=f"^{SLUG}$", description="lower-case letters, digits, _ and -")]


def is_slug(text: str) -> bool:
    return re.fullmatch(SLUG, text) is not None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def key_path(loc: tuple) -> str:
    """`mqtt.tls.ca` for a validation error's location; odd keys (control characters, spaces) are quoted."""
    return ".".join(str(p) if str(p).isprintable() and " " not in str(p) else repr(p) for p in loc) or "(top level)"


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Every problem pydantic found, as (where, what)."""
    return [(key_path(tuple(e["loc"])), str(e["msg"]).removeprefix("Value error, ")) for e in exc.errors()]


def describe(exc: ValidationError, *, every: bool = False) -> str:
    """One line: the first problem and how many more, or (`every`) all of them separated by `; `."""
    found = problems(exc)
    if every:
        return "; ".join(f"{where}: {what}" for where, what in found)
    where, what = found[0]
    more = len(found) - 1
    return f"{where}: {what}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
