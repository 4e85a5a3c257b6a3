"""What produced a run: recorded in its metrics.json so that a model bundle can say how it was made."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path


def command_line() -> str:
    """The `shelfwatch ...` command this process runs (or the Python program, when called as a library)."""
    program = Path(sys.argv[0]).name if sys.argv else "python"
    if program in ("shelfwatch", "__main__.py"):
        program = "shelfwatch"
    return shlex.join([program, *sys.argv[1:]])


def run_commands(run_dir: Path) -> list[str]:
    """The commands that made a training run, as its metrics.json records them: a chain it recorded itself (`train
    adapt`: the commands that made its source, then its own), else those of the run whose encoder it adopted
    (`--encoder-from`), then its own command. A model bundle's folder (its checkpoint.pt exported again, with another
    detector say): the chain its manifest records. Empty for a folder with neither."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        try:
            return [str(c) for c in json.loads((run_dir / "manifest.json").read_text())["provenance"]["commands"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []
    try:
        recorded = json.loads(metrics.read_text())
    except (OSError, ValueError):
        return []
    if recorded.get("commands"):
        return [str(c) for c in recorded["commands"]]
    earlier: list[str] = []
    encoder_from = (recorded.get("options") or {}).get("encoder_from")
    if encoder_from and Path(encoder_from).parent.resolve() != run_dir.resolve():
        earlier = run_commands(Path(encoder_from).parent)
    return [*earlier, *([str(recorded["command"])] if recorded.get("command") else [])]
