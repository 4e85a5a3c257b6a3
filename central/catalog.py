"""The store's catalogue as central knows it: SKU -> product name, for everything a person reads (pages, CSV
exports, the dashboard's live stream, alerts). Learnt from the model bundles central offers and sends (each
manifest's detector catalogue) and from the box configs it is shown (a config's `catalog` names a store's own
SKUs, and wins). A SKU no source names is shown as its code."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import ValidationError

from edge.config import load_box_config
from edge.errors import ShelfWatchError


def bundle_names(folder: Path) -> dict[str, str]:
    """The names in one bundle's manifest (none if it has no readable manifest or no detector)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        catalog = (manifest.get("detector") or {}).get("catalog") or []
        return {str(e["sku"]): str(e["name"]) for e in catalog if e.get("sku") and e.get("name")}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return {}  # a broken bundle names nothing; loading it says why, where it is used


def config_names(path: Path) -> dict[str, str]:
    """The names a box config gives its SKUs."""
    try:
        return {m.sku: m.name for m in load_box_config(path).catalog if m.name}
    except (ShelfWatchError, ValidationError, OSError, ValueError):
        return {}


def names_from(bundles: Iterable[Path] = (), configs: Iterable[Path] = ()) -> dict[str, str]:
    """SKU -> name from bundle folders (and folders of bundles: every `*/manifest.json`), then box configs."""
    names: dict[str, str] = {}
    for folder in bundles:
        if (folder / "manifest.json").is_file():
            names.update(bundle_names(folder))
        elif folder.is_dir():
            for manifest in sorted(folder.glob("*/manifest.json")):
                names.update(bundle_names(manifest.parent))
    for path in configs:
        names.update(config_names(path))
    return names


def label(sku: str, names: Mapping[str, str]) -> str:
    """What a person reads for a SKU: its name with its code beside it, or the code alone."""
    name = names.get(sku)
    return f"{name} ({sku})" if name and name != sku else sku
