"""The web app's settings (`--web-config FILE`, YAML): upload limits, where bundles and box configs are offered
from, where analyses are kept. Unknown keys are errors, as in every config."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, ValidationError

from edge.config import parse_config, read_config_text, yaml_problem
from edge.errors import ShelfWatchError
from edge.schema import Strict, describe

# The bundles beside the installed package (a checkout, or an editable install of one): found wherever central is
# started, not only from the repository's root.
INSTALLED_MODELS = Path(__file__).resolve().parents[2] / "models"


def no_bundle(config: WebConfig) -> str | None:
    """One line saying where to point the pages when they have no model bundle to analyse with (None: they have)."""
    if (config.default_bundle / "manifest.json").is_file() or (
        config.bundles_dir.is_dir() and any(config.bundles_dir.glob("*/manifest.json"))
    ):
        return None
    return (f"no model bundle at {config.default_bundle} (nor in {config.bundles_dir}): set default_bundle or "
            "bundles_dir in a --web-config file to a bundle folder (a checkout's models/demo, or `shelfwatch export`'s "
            "output)")  # fmt: skip


class WebConfig(Strict):
    model_config = ConfigDict(allow_inf_nan=False)

    max_upload_mb: float = Field(default=500, gt=0, le=100_000, description="largest upload, in MB (10^6 bytes)")
    max_video_s: float = Field(default=600, gt=0, le=24 * 3600, description="longest video, in seconds")
    max_video_pixels: int = Field(default=1920 * 1080, ge=160 * 120, le=7680 * 4320, description="largest picture, "
                                  "width x height (default 1920x1080); a bigger one is refused at upload")  # fmt: skip
    bundles_dir: Path = Field(default=INSTALLED_MODELS, description="every folder here with a manifest.json is offered "
                              "(default: the models folder beside the installed package)")  # fmt: skip
    default_bundle: Path = Field(default=INSTALLED_MODELS / "demo", description="the bundle chosen unless another is "
                                 "(default: the demo bundle beside the installed package)")  # fmt: skip
    configs_dir: Path | None = Field(default=None, description="box configs (*.yaml) offered for zones and catalogue")
    stores_dir: Path | None = Field(default=None, description="store folders (<store>/store.yaml, boxes/<box>.yaml, "
                                    "as `shelfwatch config validate` takes them): the zone editor reads and saves "
                                    "each box's zones there")  # fmt: skip
    clips_dir: Path | None = Field(default=None, description="the store's recent clips (an NVR's exports, say), "
                                   "offered for analysis without an upload, newest first")  # fmt: skip
    work_dir: Path = Field(default=Path("shelfwatch-web"), description="uploads and their results")
    workers: int = Field(default=1, ge=1, le=64, description="analyses run at once; the rest queue")
    threads: int = Field(default=0, ge=0, le=256, description="ONNX Runtime threads per analysis; 0: all cores")
    keep_analyses: int = Field(default=50, ge=1, le=100_000, description="analyses kept on disk, waiting and running "
                               "ones included; the oldest finished are deleted to make room")  # fmt: skip
    max_queued: int = Field(default=20, ge=1, le=10_000, description="analyses waiting to start, in all")
    max_queued_per_store: int = Field(default=3, ge=1, le=10_000, description="analyses waiting to start per store "
                                      "(a chain-wide token counts as one more store)")  # fmt: skip
    worker_memory_mb: int = Field(default=2048, ge=256, le=1_000_000, description="hard limit on each analysis "
                                  "process's memory (its data segment, RLIMIT_DATA): a hostile file ends its own "
                                  "analysis, never the server")  # fmt: skip

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
    for key in ("bundles_dir", "default_bundle", "configs_dir", "stores_dir", "work_dir"):
        if isinstance(data.get(key), str):
            data[key] = str(path.parent / data[key])
    try:
        return WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ShelfWatchError(f"{path}: {describe(exc)}") from None
