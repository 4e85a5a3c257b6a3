"""The pages and the JSON they use: `mount_web` adds them to central's app (`shelfwatch central run`: the
dashboard and the analysis page), `create_web_app` makes an app of the analysis page alone (`shelfwatch web`).

Every route but the login page and the static files depends on `auth_dependency` when one is given; a page
that is refused sends the browser to the login page."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from central.web import dashboard
from central.web.auth import COOKIE, CookieToken, stores_of
from central.web.config import WebConfig
from central.web.jobs import JOB_ID, Job, JobQueue
from central.web.results import Analysis, events_csv
from central.web.video import VIDEO_SUFFIXES, probe
from central.web.worker import EVENTS, LABELS_JSON, LABELS_MAT, RESULT, VIDEO_OUT, JobSpec
from edge.errors import ShelfWatchError
from edge.schema import Strict

HERE = Path(__file__).parent
STATIC = "/static/web"
CHUNK = 1 << 20
RECENT_CLIPS = 20  # the newest clips of clips_dir offered on the analysis page


class JobView(Strict):
    id: str
    name: str
    state: str
    fraction: float
    frames: int
    total: int | None
    fps: float
    events: int
    ahead: int  # analyses that start before this one
    error: str | None
    url: str


class Refused(Strict):
    detail: str


def _no_auth() -> None:
    return None


def offered(folder: Path, default: Path, pattern: str) -> dict[str, Path]:
    """Name -> path of what the page offers (the browser sends a name, never a path)."""
    found: dict[str, Path] = {}
    if default.exists():
        found[default.name] = default
    if folder.is_dir():
        for p in sorted(folder.glob(pattern)):
            found.setdefault(p.parent.name if pattern.endswith(".json") else p.stem, p.parent if
                             pattern.endswith(".json") else p)  # fmt: skip
    return found


def build_web_router(
    config: WebConfig, jobs: JobQueue, templates: Jinja2Templates, *, central: Any | None = None,
    auth_dependency: Callable[..., Any] | None = None,
) -> APIRouter:  # fmt: skip
    auth = auth_dependency or _no_auth
    router = APIRouter(dependencies=[], include_in_schema=True, tags=["web"])
    Principal = Annotated[Any, Depends(auth)]

    def bundles() -> dict[str, Path]:
        return offered(config.bundles_dir, config.default_bundle, "*/manifest.json")

    def box_configs() -> dict[str, Path]:
        if config.configs_dir is None:
            return {}
        return {p.stem: p for p in sorted(config.configs_dir.glob("*.yaml")) + sorted(config.configs_dir.glob("*.yml"))}

    def recent_clips() -> dict[str, Path]:
        """The newest videos in `clips_dir`, by name: only these may be analysed without an upload."""
        if config.clips_dir is None or not config.clips_dir.is_dir():
            return {}
        files = [p for p in config.clips_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
        return {p.name: p for p in sorted(files, key=lambda p: -p.stat().st_mtime)[:RECENT_CLIPS]}

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"static": STATIC, "dashboard": central is not None,
                                                          "login": auth_dependency is not None, **context})  # fmt: skip

    @router.get("/", include_in_schema=False)
    def home(_: Principal) -> RedirectResponse:
        return RedirectResponse("/dashboard" if central is not None else "/analyse", status_code=303)

    @router.get("/analyse", response_class=HTMLResponse, include_in_schema=False)
    def analyse(request: Request, _: Principal) -> HTMLResponse:
        return page(request, "analyse.html", bundles=list(bundles()), default_bundle=config.default_bundle.name,
                    configs=list(box_configs()), clips=list(recent_clips()), max_mb=config.max_upload_mb,
                    max_s=config.max_video_s,
                    recent=[_view(jobs, j) for j in jobs.recent(visible_to(_))])  # fmt: skip

    @router.post("/web/api/analyses", status_code=202, response_model=JobView,
                 responses={400: {"model": Refused}, 413: {"model": Refused}})  # fmt: skip
    async def upload(request: Request, _: Principal) -> JobView:
        """A video (multipart field `file`) to analyse with `bundle` and, optionally, `box_config` (names from
        the analysis page's lists)."""
        limit = config.max_upload_bytes
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit + CHUNK:  # refused before a byte is stored
            raise HTTPException(413, f"the file is larger than the limit of {config.max_upload_mb:g} MB")
        form = await request.form(max_files=1, max_fields=10)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise HTTPException(400, "choose a video file to upload")
        bundle = bundles().get(str(form.get("bundle") or config.default_bundle.name))
        if bundle is None:
            raise HTTPException(400, f"no model bundle named {str(form.get('bundle'))[:64]!r}")
        box_config = None
        if form.get("box_config"):
            box_config = box_configs().get(str(form.get("box_config")))
            if box_config is None:
                raise HTTPException(400, f"no box config named {str(form.get('box_config'))[:64]!r}")
        name = Path(file.filename or "upload").name[:200] or "upload"
        suffix = Path(name).suffix.lower()
        job_id, folder = jobs.new_folder()
        video = folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.video'}"
        try:
            size = 0
            with video.open("wb") as out:
                while chunk := await file.read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"the file is larger than the limit of {config.max_upload_mb:g} MB")
                    out.write(chunk)
            try:
                info = await run_in_threadpool(probe, video, config.max_video_s)
            except ShelfWatchError as exc:
                raise HTTPException(400, f"{name}: {exc}") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            await file.close()
        spec = JobSpec(video=video.resolve(), name=name, bundle=bundle.resolve(), threads=config.threads,
                       box_config=box_config.resolve() if box_config else None, fps=info.fps, frames=info.frames,
                       width=info.width, height=info.height, store=owner(_))  # fmt: skip
        return _view(jobs, jobs.submit(job_id, folder, spec))

    @router.post("/web/api/analyses/clip", status_code=202, response_model=JobView,
                 responses={400: {"model": Refused}})  # fmt: skip
    async def clip(
        _: Principal, clip: Annotated[str, Form(max_length=256)],
        bundle: Annotated[str, Form(max_length=256)] = "", box_config: Annotated[str, Form(max_length=256)] = "",
    ) -> JobView:  # fmt: skip
        """One of the store's recent clips (a name from the analysis page's list), analysed where it lies."""
        video = recent_clips().get(clip)
        if video is None:
            raise HTTPException(400, f"no recent clip named {clip[:64]!r}")
        chosen = bundles().get(bundle or config.default_bundle.name)
        if chosen is None:
            raise HTTPException(400, f"no model bundle named {bundle[:64]!r}")
        config_file = box_configs().get(box_config) if box_config else None
        if box_config and config_file is None:
            raise HTTPException(400, f"no box config named {box_config[:64]!r}")
        try:
            info = await run_in_threadpool(probe, video, config.max_video_s)
        except ShelfWatchError as exc:
            raise HTTPException(400, f"{clip}: {exc}") from None
        job_id, folder = jobs.new_folder()
        spec = JobSpec(video=video.resolve(), name=clip, bundle=chosen.resolve(), threads=config.threads,
                       box_config=config_file.resolve() if config_file else None, fps=info.fps, frames=info.frames,
                       width=info.width, height=info.height, store=owner(_))  # fmt: skip
        return _view(jobs, jobs.submit(job_id, folder, spec))

    def job_or_404(job_id: str, principal: Any) -> Job:
        job = jobs.get(job_id)
        if job is None or not visible_to(principal)(job):  # another store's analysis is not there for you
            raise HTTPException(404, "no such analysis (it may have been deleted to make room)")
        return job

    JobId = Annotated[str, PathParam(pattern=JOB_ID)]

    @router.get("/web/api/analyses/{job_id}", response_model=JobView)
    def status(job_id: JobId, _: Principal) -> JobView:
        return _view(jobs, job_or_404(job_id, _))

    @router.get("/analyses/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def result(request: Request, job_id: JobId, _: Principal) -> HTMLResponse:
        job = job_or_404(job_id, _)
        analysis = None
        if job.state == "done":
            analysis = Analysis.model_validate_json((job.folder / RESULT).read_text())
        data = json.dumps(analysis.model_dump() if analysis else None).replace("<", "\\u003c")
        return page(request, "result.html", job=_view(jobs, job), analysis=analysis, analysis_json=data)

    @router.get("/web/api/analyses/{job_id}/video")
    def video(job_id: JobId, _: Principal) -> FileResponse:
        """The annotated video, H.264 (ranges supported: the player seeks)."""
        return FileResponse(_done(job_or_404(job_id, _)).folder / VIDEO_OUT, media_type="video/mp4")

    downloads = {"annotated.mp4": (VIDEO_OUT, "video/mp4"), "events.jsonl": (EVENTS, "application/x-ndjson"),
                 "labels.json": (LABELS_JSON, "application/json"), "labels_label.mat": (LABELS_MAT,
                 "application/x-matlab-data")}  # fmt: skip

    @router.get("/web/api/analyses/{job_id}/download/{file}")
    def download(job_id: JobId, file: str, _: Principal) -> Response:
        """annotated.mp4, events.jsonl, events.csv, labels.json (our format) or labels_label.mat (MERL)."""
        job = _done(job_or_404(job_id, _))
        stem = Path(job.name).stem or "clip"
        filename = f"{stem}_{file}"
        disposition = f"attachment; filename*=UTF-8''{quote(filename)}"
        if file == "events.csv":
            return Response(events_csv(job.folder / EVENTS), media_type="text/csv",
                            headers={"Content-Disposition": disposition})  # fmt: skip
        if file not in downloads:
            raise HTTPException(404, f"no download named {file[:64]!r}")
        path, media = downloads[file]
        return FileResponse(job.folder / path, media_type=media, headers={"Content-Disposition": disposition})

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/", refused: bool = False) -> HTMLResponse:
        return page(request, "login.html", next=_local(next), refused=refused)

    @router.post("/login", include_in_schema=False)
    def login(token: Annotated[str, Form(max_length=512)], next: Annotated[str, Form(max_length=512)] = "/"):
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", max_age=12 * 3600)
        return response

    @router.post("/logout", include_in_schema=False)
    def logout() -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    if central is not None:

        @router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
        def dashboard_page(request: Request, _: Principal) -> HTMLResponse:
            return page(request, "dashboard.html")

        @router.get("/web/api/dashboard/stream")
        async def stream(request: Request, principal: Principal) -> StreamingResponse:
            """Server-sent events: `snapshot` (boxes, feed, alerts with evidence, shrink) whenever it changes."""
            return StreamingResponse(dashboard.snapshots(central.engine, stores_of(principal), request.is_disconnected),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-store"})  # fmt: skip

    return router


def owner(principal: Any) -> str | None:
    """The store an analysis belongs to: the asking token's store (None: a chain-wide token, or no login)."""
    stores = stores_of(principal)
    return next(iter(stores)) if stores is not None and len(stores) == 1 else None


def visible_to(principal: Any) -> Callable[[Job], bool]:
    """A store's staff see their store's analyses; a chain-wide token (or no login) sees every one."""
    stores = stores_of(principal)
    return lambda job: stores is None or job.store in stores


def _done(job: Job) -> Job:
    if job.state != "done":
        raise HTTPException(409, f"the analysis is {job.state}")
    return job


def _local(url: str) -> str:
    """Only a path on this site: a login page must not redirect elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def _view(jobs: JobQueue, job: Job) -> JobView:
    return JobView(id=job.id, name=job.name, state=job.state, fraction=round(job.fraction, 4), frames=job.frames,
                   total=job.total, fps=job.fps, events=job.events, ahead=jobs.ahead_of(job) if job.state == "queued"
                   else 0, error=job.error, url=f"/analyses/{job.id}")  # fmt: skip


def mount_web(
    app: FastAPI, config: WebConfig, *, central: Any | None = None, auth_dependency: Callable[..., Any] | None = None
) -> JobQueue:
    """Add the pages to `app`; returns the analysis queue (close it on shutdown)."""
    jobs = JobQueue(config)
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="web-static")
    app.include_router(build_web_router(config, jobs, templates, central=central, auth_dependency=auth_dependency))
    app.add_middleware(CookieToken)

    async def refused(request: Request, exc: Exception) -> Response:
        """A page the browser asked for and was refused: the login page. An API call gets the JSON error."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/login?next={quote(request.url.path)}&refused={int(COOKIE in request.cookies)}",
                                    status_code=303)  # fmt: skip
        return await http_exception_handler(request, exc)

    app.add_exception_handler(HTTPException, refused)
    return jobs


def create_web_app(config: WebConfig, auth_dependency: Callable[..., Any] | None = None) -> tuple[FastAPI, JobQueue]:
    """The analysis page alone, no broker and no database (`shelfwatch web`)."""
    app = FastAPI(title="ShelfWatch: analyse a clip", version="1.0")
    if not (config.default_bundle / "manifest.json").is_file():
        raise ShelfWatchError(f"{config.default_bundle}: no model bundle there (run from the repository, or set "
                              "default_bundle in --web-config)")  # fmt: skip
    jobs = mount_web(app, config, auth_dependency=auth_dependency)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"ok": True})

    return app, jobs
