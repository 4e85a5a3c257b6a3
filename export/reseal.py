"""Changing a finished bundle, the one way every command that adds to one does it (`bundle reference`, `bundle
familiarity`): a copy beside it is changed, its manifest resealed and checked as the agent checks it, then swapped in,
so a crash or a refusal leaves the old bundle or the new one, never half of one. The manifest is edited as JSON data:
fields this version does not know (a newer export's) are kept as they are. A signature of the old manifest no longer
holds and is not carried over (sign the bundle again)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic_core import to_json

from edge.bundle import MANIFEST, Manifest, load_bundle, read_bundle, seal, sha256_of
from edge.signing import SIGNATURE

# change(staging, data): writes its files into the staging folder and edits the manifest's JSON `data` in place.
Change = Callable[[Path, dict], None]


@dataclass(frozen=True)
class Resealed:
    old_id: str
    manifest: Manifest  # the new one, as the agent loaded it
    dropped_signature: bool


def reseal(bundle: Path, change: Change) -> Resealed:
    old = read_bundle(bundle).manifest  # every file matches: a damaged bundle is never resealed
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle.name}-", dir=bundle.resolve().parent))
    try:
        for p in bundle.iterdir():
            if p.is_file() and p.name not in (SIGNATURE, MANIFEST):
                shutil.copy2(p, staging / p.name)
        data = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
        change(staging, data)
        (staging / MANIFEST).write_bytes(to_json(seal(data), indent=2) + b"\n")  # as the export writes it
        new = load_bundle(staging)  # what ships must pass the agent's own check
        signed = (bundle / SIGNATURE).exists()
        backup = bundle.with_name(f".{bundle.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        bundle.rename(backup)
        staging.rename(bundle)
        bundle.chmod(0o755)
        shutil.rmtree(backup, ignore_errors=True)
        return Resealed(old.bundle_id, new, signed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def put_file(folder: Path, data: dict, name: str, replaces: str | None = None) -> None:
    """Record `folder/name` (already written) in the manifest's files; `replaces`, an earlier file of the same role
    under another name, goes from the folder and the manifest."""
    if replaces is not None and replaces != name:
        (folder / replaces).unlink(missing_ok=True)
        data["files"].pop(replaces, None)
    path = folder / name
    data["files"][name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
