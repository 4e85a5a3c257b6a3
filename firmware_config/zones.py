"""Writing a box's shelf zones into its YAML in the store folder (the zone editor's Save), comments kept.

The file is edited, not rewritten: ruamel.yaml's round trip keeps every comment, key order and quoting of the
rest of the file, and zones that keep their name keep their own keys and comments. The result is checked as
`shelfwatch config validate` checks it (the store's defaults merged in) before it replaces the file (atomically);
a layout the store would not accept leaves the file as it was.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from edge.config import Zone, parse_config, read_config_text, yaml_problem
from edge.errors import ShelfWatchError
from firmware_config.store import BOXES_DIR, STORE_FILE, Problem, validate_path


def _ruamel() -> object:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise ShelfWatchError("saving zones needs ruamel.yaml (pip install 'shelfwatch[web]')") from None
    rt = YAML()  # round trip: plain data, comments and layout kept (no arbitrary objects are built)
    rt.preserve_quotes = True
    rt.width = 120
    rt.indent(mapping=2, sequence=4, offset=2)  # the store folders' style: "  - name: ..."
    return rt


def _flow(values: Sequence) -> object:
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq([_flow(v) if isinstance(v, list | tuple) else _number(v) for v in values])
    seq.fa.set_flow_style()
    return seq


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else round(float(v), 2)


def zones_yaml(text: str, zones: Sequence[Zone], frame_size: tuple[int, int] | None) -> str:
    """`text` (a box's YAML) with its zones (and camera.frame_size) replaced, everything else as it was."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    rt = _ruamel()
    data = rt.load(text)  # type: ignore[attr-defined]
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ShelfWatchError("a box config is a YAML mapping")
    old = data.get("zones")
    by_name = {z.get("name"): z for z in old if isinstance(z, CommentedMap)} if isinstance(old, list) else {}
    new = []
    for zone in zones:
        entry = by_name.get(zone.name) or CommentedMap(name=zone.name)
        entry["polygon"] = _flow([list(p) for p in zone.polygon])
        if zone.slots:
            slots = CommentedSeq()
            for slot in zone.slots:
                item = CommentedMap(sku=slot.sku, polygon=_flow([list(p) for p in slot.polygon]))
                item.fa.set_flow_style()
                slots.append(item)
            entry["slots"] = slots
        elif "slots" in entry:
            del entry["slots"]
        new.append(entry)
    if isinstance(old, CommentedSeq):  # the same sequence: its comments (after `zones:`) stay with it
        old.clear()
        old.extend(new)
    else:
        data["zones"] = CommentedSeq(new)
    if frame_size is not None:
        camera = data.get("camera")
        if not isinstance(camera, CommentedMap):
            camera = data["camera"] = CommentedMap()
        camera["frame_size"] = _flow(list(frame_size))
    out = io.StringIO()
    rt.dump(data, out)  # type: ignore[attr-defined]
    return out.getvalue()


def save_zones(box_file: Path, zones: Sequence[Zone], frame_size: tuple[int, int] | None) -> list[Problem]:
    """Write the zones into `box_file` (boxes/<box>.yaml of a store folder) if the store still validates with
    them; the problems otherwise (the file unchanged)."""
    if box_file.parent.name != BOXES_DIR or not (box_file.parent.parent / STORE_FILE).is_file():
        raise ShelfWatchError(f"{box_file}: not a box file of a store folder (<store>/boxes/<box>.yaml)")
    text = read_config_text(box_file)
    try:
        parse_config(text)  # the configs' own strict YAML first: no aliases, no duplicate keys
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise ShelfWatchError(f"{box_file}: {f'line {line}: ' if line else ''}not valid YAML ({problem})") from None
    # Checked beside the file, where it will lie (the store's defaults and relative paths as they will be); a
    # dot name ending in .new is no box of the store's meanwhile.
    staged = box_file.with_name(f".{box_file.name}.new")
    try:
        staged.write_text(zones_yaml(text, zones, frame_size), encoding="utf-8")
        _, problems = validate_path(staged)
        if problems:
            return [replace(p, file=box_file) if p.file == staged else p for p in problems]
        os.replace(staged, box_file)
        return []
    finally:
        staged.unlink(missing_ok=True)
