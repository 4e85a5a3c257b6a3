"""What produced a run: recorded in its metrics.json so that a model bundle can say how it was made."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def command_line() -> str:
    """The `shelfwatch ...` command this process runs (or the Python program, when called as a library)."""
    program = Path(sys.argv[0]).name if sys.argv else "python"
    if program in ("shelfwatch", "__main__.py"):
        program = "shelfwatch"
    return shlex.join([program, *sys.argv[1:]])
