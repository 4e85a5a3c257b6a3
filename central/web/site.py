"""What every room of the web app shares: its settings, the analysis queue, the templates, central (when the
pages run inside `central run`) and the dependency that admits a caller. Each room (`pages`, `analyses`,
`login`, `dashboard`) builds its own router from one `Site`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from central.web.auth import stores_of
from central.web.config import WebConfig
from central.web.jobs import Job, JobQueue
from central.web.video import VIDEO_SUFFIXES

STATIC = "/static/web"
RECENT_CLIPS = 20  # the newest clips of clips_dir offered on the analysis page


def _no_auth() -> None:
    return None


@dataclass(frozen=True)
class Site:
    config: WebConfig
    jobs: JobQueue
    templates: Jinja2Templates
    central: Any | None = None  # central's service when the pages run inside `central run`: the dashboard
    auth_dependency: Callable[..., Any] | None = None  # None: nobody logs in (a laptop's `shelfwatch web`)
    reviews: Any | None = None  # central.review.Reviews inside `central run`: clips kept for review, in its data dir
    files: Any | None = None  # central.files.FileStore inside `central run`: what boxes uploaded (snapshots, clips)

    @property
    def auth(self) -> Callable[..., Any]:
        return self.auth_dependency or _no_auth

    def page(self, request: Request, name: str, **context: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(request, name, {
            "static": STATIC, "dashboard": self.central is not None, "login": self.auth_dependency is not None,
            **context})  # fmt: skip

    def kept(self, job_id: str) -> Job | None:
        """A clip kept for review (in review or verified), as the pages show an analysis: it has left the queue
        and its work folder, so it never counts toward keep_analyses (see `central.review`)."""
        clip = self.reviews.clip(job_id) if self.reviews is not None else None
        if clip is None:
            return None
        return Job(clip.clip_id, clip.folder, clip.name, clip.created.timestamp(), state="done", store=clip.store)

    def bundles(self) -> dict[str, Path]:
        """Name -> folder of every bundle offered (the browser sends a name, never a path). A symbolic link in
        bundles_dir is not offered: it would lead out of it (the files inside a bundle are checked when it loads)."""
        found: dict[str, Path] = {}
        if self.config.default_bundle.exists():
            found[self.config.default_bundle.name] = self.config.default_bundle
        if self.config.bundles_dir.is_dir():
            for manifest in sorted(self.config.bundles_dir.glob("*/manifest.json")):
                if not manifest.parent.is_symlink():
                    found.setdefault(manifest.parent.name, manifest.parent)
        return found

    def box_configs(self) -> dict[str, Path]:
        folder = self.config.configs_dir
        if folder is None:
            return {}
        files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        return {p.stem: p for p in files if not p.is_symlink()}

    def recent_clips(self) -> dict[str, Path]:
        """The newest videos in `clips_dir`, by name: only these may be analysed without an upload. A symbolic link
        is not one of them: it could lead anywhere on the server."""
        folder = self.config.clips_dir
        if folder is None or not folder.is_dir():
            return {}
        files = [p for p in folder.iterdir()
                 if not p.is_symlink() and p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]  # fmt: skip
        return {p.name: p for p in sorted(files, key=lambda p: -p.stat().st_mtime)[:RECENT_CLIPS]}


def owner(principal: Any) -> str | None:
    """The store an analysis belongs to: the asking token's store (None: a chain-wide token, or no login)."""
    stores = stores_of(principal)
    return next(iter(stores)) if stores is not None and len(stores) == 1 else None


def visible_to(principal: Any) -> Callable[[Job], bool]:
    """A store's staff see their store's analyses; a chain-wide token (or no login) sees every one."""
    stores = stores_of(principal)
    return lambda job: stores is None or job.store in stores
