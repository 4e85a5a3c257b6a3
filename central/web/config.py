"""The web app's settings (`--web-config FILE`, YAML): upload limits, where bundles and box configs are offered
from, where analyses are kept. Unknown keys are errors, as in every config."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, ValidationError

from edge.config import parse_config, read_config_text, yaml_problem
from edge.errors import ShelfWatchError
from edge.schema import Strict, describe


class WebConfig(Strict):
    model_config = ConfigDict(allow_inf_nan=False)

    max_upload_mb: float = Field(default=500, gt=0, le=100_000, description="largest upload, in MB (10^6 bytes)")
    max_video_s: float = Field(default=600, gt=0, le=24 * 3600, description="longest video, in seconds")
    bundles_dir: Path = Field(default=Path("models"), description="every folder here with a manifest.json is offered")
    default_bundle: Path = Field(default=Path("models/demo"), description="the bundle chosen unless another is")
    configs_dir: Path | None = Field(default=None, description="box configs (*.yaml) offered for zones and catalogue")
    clips_dir: Path | None = Field(default=None, description="the store's recent clips (an NVR's exports, say), "
                                   "offered for analysis without an upload, newest first")  # fmt: skip
    work_dir: Path = Field(default=Path("shelfwatch-web"), description="uploads and their results")
    workers: int = Field(default=1, ge=1, le=64, description="analyses run at once; the rest queue")
    threads: int = Field(default=0, ge=0, le=256, description="ONNX Runtime threads per analysis; 0: all cores")
    keep_analyses: int = Field(default=50, ge=1, le=100_000, description="older finished analyses are deleted")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


def load_web_config(path: Path | None) -> WebConfig:
    """The file's settings (relative paths are relative to it), or the defaults."""
    if path is None:
        return WebConfig()
    try:
        data = parse_config(read_config_text(path))
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise ShelfWatchError(f"{path}: {f'line {line}: ' if line else ''}not valid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ShelfWatchError(f"{path}: a web config is a YAML mapping")
    for key in ("bundles_dir", "default_bundle", "configs_dir", "work_dir"):
        if isinstance(data.get(key), str):
            data[key] = str(path.parent / data[key])
    try:
        return WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ShelfWatchError(f"{path}: {describe(exc)}") from None
