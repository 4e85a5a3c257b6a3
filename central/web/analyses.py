"""The analyses' JSON API: a clip in (an upload, or one of the store's recent clips), its progress, the
annotated video and the downloads out. A store's token sees only its store's analyses."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from central.web.jobs import JOB_ID, Job, JobQueue, QueueFull, Ticket
from central.web.results import events_csv
from central.web.site import Site, owner, visible_to
from central.web.upload import FIELD_BYTES, receive_upload
from central.web.video import VideoInfo, probe_apart
from central.web.worker import EVENTS, LABELS_JSON, LABELS_MAT, VIDEO_OUT, JobSpec
from edge.errors import ShelfWatchError
from edge.schema import Strict

DOWNLOADS = {"annotated.mp4": (VIDEO_OUT, "video/mp4"), "events.jsonl": (EVENTS, "application/x-ndjson"),
             "labels.json": (LABELS_JSON, "application/json"),
             "labels_label.mat": (LABELS_MAT, "application/x-matlab-data")}  # fmt: skip
JobId = Annotated[str, PathParam(pattern=JOB_ID)]
UPLOAD_PATH = "/web/api/analyses"


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


def view(jobs: JobQueue, job: Job) -> JobView:
    return JobView(id=job.id, name=job.name, state=job.state, fraction=round(job.fraction, 4), frames=job.frames,
                   total=job.total, fps=job.fps, events=job.events, ahead=jobs.ahead_of(job) if job.state == "queued"
                   else 0, error=job.error, url=f"/analyses/{job.id}")  # fmt: skip


def job_or_404(site: Site, job_id: str, principal: Any) -> Job:
    job = site.kept(job_id) or site.jobs.get(job_id)
    if job is None or not visible_to(principal)(job):  # another store's analysis is not there for you
        raise HTTPException(404, "no such analysis (it may have been deleted to make room)")
    return job


def _done(job: Job) -> Job:
    if job.state != "done":
        raise HTTPException(409, f"the analysis is {job.state}")
    return job


def _chosen(site: Site, bundle: str, box_config: str) -> tuple[Path, Path | None]:
    """The bundle and box config named by the page (names from its lists, never paths): 400 for another name."""
    chosen = site.bundles().get(bundle or site.config.default_bundle.name)
    if chosen is None:
        raise HTTPException(400, f"no model bundle named {bundle[:64]!r}")
    config_file = site.box_configs().get(box_config) if box_config else None
    if box_config and config_file is None:
        raise HTTPException(400, f"no box config named {box_config[:64]!r}")
    return chosen, config_file


async def _probed(site: Site, video: Path, name: str) -> VideoInfo:
    try:
        config = site.config
        return await run_in_threadpool(probe_apart, video, config.max_video_s, config.max_video_pixels,
                                       config.worker_memory_mb)  # fmt: skip
    except ShelfWatchError as exc:
        raise HTTPException(400, f"{name}: {exc}") from None


def _reserve(site: Site, principal: Any) -> Ticket:
    """Room for one more analysis of the caller's store, before a byte of its body is read (429 when full)."""
    try:
        return site.jobs.reserve(owner(principal))
    except QueueFull as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from None


def _submit(site: Site, ticket: Ticket, video: Path, name: str, chosen: tuple[Path, Path | None], info: VideoInfo,
            principal: Any) -> JobView:  # fmt: skip
    bundle, box_config = chosen
    spec = JobSpec(video=video.resolve(), name=name, bundle=bundle.resolve(), threads=site.config.threads,
                   box_config=box_config.resolve() if box_config else None, fps=info.fps, frames=info.frames,
                   width=info.width, height=info.height, store=owner(principal),
                   memory_mb=site.config.worker_memory_mb)  # fmt: skip
    return view(site.jobs, site.jobs.submit(ticket, spec))


async def _small_form(request: Request) -> dict[str, str]:
    """A form of a few short fields (the body is already bounded to 16 KB), read after the caller was admitted."""
    try:
        form = await request.form(max_files=0, max_fields=10)
    except HTTPException:
        raise
    except Exception as exc:  # a malformed body, or a file part where none belongs
        raise HTTPException(400, f"not a form ({exc})") from None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    for key, value in fields.items():
        if len(value) > FIELD_BYTES:
            raise HTTPException(400, f"the form field {key[:64]!r} is over {FIELD_BYTES} characters")
    return fields


UPLOAD_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"},
    "bundle": {"type": "string"}, "box_config": {"type": "string"}}}}}}}  # fmt: skip
CLIP_FORM = {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "required": ["clip"], "properties": {"clip": {"type": "string"}, "bundle": {"type": "string"},
    "box_config": {"type": "string"}}}}}}}  # fmt: skip


def router(site: Site) -> APIRouter:
    routes = APIRouter(tags=["web"])
    Principal = Annotated[Any, Depends(site.auth)]
    config = site.config

    # Neither route takes its form as a parameter: FastAPI would read it before checking the caller.
    @routes.post(UPLOAD_PATH, status_code=202, response_model=JobView, openapi_extra=UPLOAD_FORM,
                 responses={400: {"model": Refused}, 413: {"model": Refused}, 429: {"model": Refused}})  # fmt: skip
    async def upload(request: Request, _: Principal) -> JobView:
        """A video (multipart field `file`) to analyse with `bundle` and, optionally, `box_config` (names from
        the analysis page's lists)."""
        ticket = _reserve(site, _)
        try:
            got = await receive_upload(request, ticket.folder, config.max_upload_bytes,
                                       f"{config.max_upload_mb:g} MB")  # fmt: skip
            chosen = _chosen(site, got.fields.get("bundle", ""), got.fields.get("box_config", ""))
            assert got.path is not None
            info = await _probed(site, got.path, got.name)
        except BaseException:
            site.jobs.release(ticket)
            raise
        return _submit(site, ticket, got.path, got.name, chosen, info, _)

    @routes.post("/web/api/analyses/clip", status_code=202, response_model=JobView, openapi_extra=CLIP_FORM,
                 responses={400: {"model": Refused}, 429: {"model": Refused}})  # fmt: skip
    async def clip(request: Request, _: Principal) -> JobView:
        """One of the store's recent clips (a name from the analysis page's list), analysed where it lies."""
        form = await _small_form(request)
        name = form.get("clip", "")
        video = site.recent_clips().get(name)
        if video is None:
            raise HTTPException(400, f"no recent clip named {name[:64]!r}")
        chosen = _chosen(site, form.get("bundle", ""), form.get("box_config", ""))
        info = await _probed(site, video, name)
        ticket = _reserve(site, _)
        return _submit(site, ticket, video, name, chosen, info, _)

    @routes.get("/web/api/analyses/{job_id}", response_model=JobView)
    def status(job_id: JobId, _: Principal) -> JobView:
        return view(site.jobs, job_or_404(site, job_id, _))

    @routes.get("/web/api/analyses/{job_id}/video")
    def video(job_id: JobId, _: Principal) -> FileResponse:
        """The annotated video, H.264 (ranges supported: the player seeks)."""
        return FileResponse(_done(job_or_404(site, job_id, _)).folder / VIDEO_OUT, media_type="video/mp4")

    @routes.get("/web/api/analyses/{job_id}/download/{file}")
    def download(job_id: JobId, file: str, _: Principal) -> Response:
        """annotated.mp4, events.jsonl, events.csv, labels.json (our format) or labels_label.mat (MERL)."""
        job = _done(job_or_404(site, job_id, _))
        stem = Path(job.name).stem or "clip"
        disposition = f"attachment; filename*=UTF-8''{quote(f'{stem}_{file}')}"
        if file == "events.csv":
            return Response(events_csv(job.folder / EVENTS), media_type="text/csv",
                            headers={"Content-Disposition": disposition})  # fmt: skip
        if file not in DOWNLOADS:
            raise HTTPException(404, f"no download named {file[:64]!r}")
        path, media = DOWNLOADS[file]
        return FileResponse(job.folder / path, media_type=media, headers={"Content-Disposition": disposition})

    return routes
