"""A store's configuration: `stores/<store>/store.yaml` holds the store's defaults, `boxes/<box>.yaml` each
box's own values; a box's config is the store's deep-merged with the box's (the box wins) and validated
as the agent's `BoxConfig`. Every problem is reported with its file, line, key and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge.config import (
    BoxConfig,
    ConfigLoader,
    check_unique_keys,
    parse_config,
    read_config_text,
    resolve_paths,
    yaml_problem,
)
from edge.errors import ShelfWatchError
from edge.schema import problems as validation_problems
from edge.signing import load_trusted_keys

STORE_FILE = "store.yaml"
BOXES_DIR = "boxes"


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.key or '(top level)'}: {' '.join(self.message.split())}"


class _LineLoader(ConfigLoader):
    """The configs' YAML (no aliases, no duplicate keys) that also remembers the line of every mapping key."""


def _mapping_with_lines(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    check_unique_keys(loader, node)
    loader.flatten_mapping(node)
    out = _Lines()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


class _Lines(dict):
    """A dict that also knows on which line each of its keys was written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_lines)


@dataclass
class Source:
    """One YAML file, parsed, with the line of every key path."""

    path: Path
    data: dict
    lines: dict[tuple, int]


def read_yaml(path: Path) -> tuple[Source | None, list[Problem]]:
    try:
        data = parse_config(read_config_text(path), _LineLoader)
    except ShelfWatchError as exc:
        return None, [Problem(path, None, "", str(exc).removeprefix(f"{path}: "))]
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        return None, [Problem(path, line, "", f"not valid YAML: {problem}")]
    if data is None:
        data = _Lines()
    if not isinstance(data, dict):
        return None, [Problem(path, 1, "", "must be a YAML mapping (key: value lines)")]
    lines: dict[tuple, int] = {}
    _collect_lines(data, (), lines)
    return Source(path, _plain(data), lines), []


def _collect_lines(node: Any, prefix: tuple, out: dict[tuple, int]) -> None:
    if isinstance(node, _Lines):
        for key, value in node.items():
            out[(*prefix, key)] = node.lines.get(key, 0)
            _collect_lines(value, (*prefix, key), out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _collect_lines(value, (*prefix, i), out)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _locate(loc: tuple, sources: list[Source]) -> tuple[Path, int | None]:
    """The file and line that set the key at `loc` (the last source that has it, or its nearest parent)."""
    for n in range(len(loc), 0, -1):
        for source in reversed(sources):
            if loc[:n] in source.lines:
                return source.path, source.lines[loc[:n]]
    return sources[-1].path, None


def validate_box(sources: list[Source]) -> tuple[BoxConfig | None, list[Problem]]:
    """Merge the sources (later ones win) and validate them as one box's config."""
    merged: dict = {}
    for source in sources:
        merged = deep_merge(merged, resolve_paths(source.data, source.path.parent))
    try:
        return BoxConfig.model_validate(merged), []
    except ValidationError as exc:
        problems = []
        for error, (where, what) in zip(exc.errors(), validation_problems(exc), strict=True):
            file, line = _locate(tuple(error["loc"]), sources)
            problems.append(Problem(file, line, where, what))
        return None, problems


def box_files(store_dir: Path) -> list[Path]:
    return sorted((store_dir / BOXES_DIR).glob("*.yaml"))


def load_store(store_dir: Path) -> tuple[dict[str, BoxConfig], list[Problem]]:
    """Every box of a store, validated; problems from all files at once."""
    problems: list[Problem] = []
    store_file = store_dir / STORE_FILE
    if not store_file.is_file():
        return {}, [Problem(store_dir, None, "", f"not a store folder (it has no {STORE_FILE})")]
    store, found = read_yaml(store_file)
    problems += found
    boxes: dict[str, BoxConfig] = {}
    files = box_files(store_dir)
    if not files:
        problems.append(Problem(store_dir / BOXES_DIR, None, "", "no box configs (boxes/<box>.yaml)"))
    for path in files:
        box, found = read_yaml(path)
        problems += found
        if store is None or box is None:
            continue
        config, found = validate_box([store, box])
        problems += found
        named = box.data.get("box")
        if isinstance(named, str) and named != path.stem:
            problems.append(Problem(path, box.lines.get(("box",)), "box", f"is {named!r}; the file is named "
                                    f"{path.name}: they must agree"))  # fmt: skip
            continue
        if config is None:
            continue
        if config.store != store_dir.name:
            line = store.lines.get(("store",))
            problems.append(Problem(store_file, line, "store", f"is {config.store!r}; the folder is named "
                                    f"{store_dir.name}: they must agree"))  # fmt: skip
        elif not config.bundle.is_dir():
            problems.append(Problem(*_locate(("bundle",), [store, box]), "bundle",
                                    f"{config.bundle}: no such model bundle folder"))  # fmt: skip
        else:
            try:
                load_trusted_keys(config.bundle_keys)  # each a readable Ed25519 public key, never a private one
            except ShelfWatchError as exc:
                problems.append(Problem(*_locate(("bundle_keys",), [store, box]), "bundle_keys", str(exc)))
                continue
            boxes[config.box] = config
    return boxes, _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def validate_path(path: Path) -> tuple[int, list[Problem]]:
    """A store folder (every box) or one box file (with its store's defaults when it sits in a store)."""
    if path.is_dir():
        boxes, problems = load_store(path)
        return len(boxes), problems
    if not path.is_file():
        return 0, [Problem(path, None, "", "no such file or folder")]
    sources: list[Source] = []
    store_file = path.parent.parent / STORE_FILE
    if path.parent.name == BOXES_DIR and store_file.is_file():
        store, problems = read_yaml(store_file)
        if store is None:
            return 0, problems
        sources.append(store)
    box, problems = read_yaml(path)
    if box is None:
        return 0, problems
    config, problems = validate_box([*sources, box])
    return (1 if config else 0), problems
