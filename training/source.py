"""The checkpoint a command starts from, found and checked without PyTorch, so that a wrong path costs a second, not
its start-up: a training run or a checkpoint file (`checkpoint_file`: eval action, export), or for `shelfwatch train
adapt` also a model bundle holding the checkpoint its manifest names (`find_source`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge.bundle import CHECKPOINT, MANIFEST, load_bundle, sha256_of
from edge.errors import ShelfWatchError
from training.provenance import run_commands


def checkpoint_file(run: Path) -> Path:
    """A training run folder's best.pt, or the checkpoint file named; ShelfWatchError in one line if there is none."""
    checkpoint = run / "best.pt" if run.is_dir() else run
    if not checkpoint.is_file():
        raise ShelfWatchError(f"{checkpoint}: no such checkpoint")
    return checkpoint


@dataclass(frozen=True)
class Source:
    """The checkpoint an adaptation starts from."""

    checkpoint: Path
    sha256: str
    commands: list[str]  # what made it, as far as it was recorded


def find_source(path: Path) -> Source:
    """A run folder, a checkpoint file or a bundle -> its checkpoint; ShelfWatchError in one line otherwise."""
    if not path.exists():
        raise ShelfWatchError(f"{path}: no such training run, model bundle or checkpoint")
    if path.is_file():
        return Source(path, sha256_of(path), run_commands(path.parent))
    if (path / MANIFEST).is_file():
        manifest = load_bundle(path)
        checkpoint = path / CHECKPOINT
        if not checkpoint.is_file():
            raise ShelfWatchError(f"{path}: this bundle has no {CHECKPOINT} beside its manifest (exported before "
                                  f"export kept it); `shelfwatch bundle recover {path} --out RUN` makes one from its "
                                  "graphs, or adapt from the training run it was exported from")  # fmt: skip
        recorded = manifest.provenance.checkpoint_sha256
        digest = sha256_of(checkpoint)
        if recorded is None or digest != recorded:
            raise ShelfWatchError(f"{checkpoint}: not the checkpoint this bundle was exported from (its sha256 is not "
                                  "the manifest's provenance.checkpoint_sha256)")  # fmt: skip
        return Source(checkpoint, digest, list(manifest.provenance.commands))
    checkpoint = path / "best.pt"
    if not checkpoint.is_file():
        raise ShelfWatchError(f"{path}: neither a training run (best.pt), a model bundle ({MANIFEST}) nor a "
                              "checkpoint")  # fmt: skip
    digest = sha256_of(checkpoint)
    metrics = path / "metrics.json"
    try:
        recorded = json.loads(metrics.read_text()).get("checkpoint") if metrics.is_file() else None
    except (OSError, ValueError, AttributeError):
        recorded = None  # what the run recorded is unreadable: the checkpoint's own digest stands
    if isinstance(recorded, dict) and recorded.get("sha256") not in (None, digest):
        raise ShelfWatchError(f"{checkpoint}: changed since its run recorded it (sha256 differs from metrics.json)")
    return Source(checkpoint, digest, run_commands(path))
