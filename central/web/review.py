"""The review room: an analysis's labels as a person corrects them on its result page (`static/editor.js`), their
versions, verification, and deleting a kept clip. The labels and the clips live in central (`central.review`);
under `shelfwatch web` alone, with no central, these routes say so.

A caller sees and edits only what its token may see: a store's token its store's clips (another store's clip is
not there for it: 404), a chain-wide token every store's. A clip analysed with a chain-wide token belongs to no
store and cannot be kept: its store decides whose training data it is."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from central.web.analyses import JobId, Refused, job_or_404
from central.web.auth import stores_of
from central.web.jobs import Job
from central.web.site import Site
from central.web.worker import RESULT, JobSpec
from edge.classes import ACTION_CLASSES
from edge.schema import Strict, describe
from training.labels import LabelFile, Segment, Timestamp, resolve_frames, timestamp_frames

MAX_LABELS_BYTES = 16 * 1024 * 1024  # a labels JSON of a 10-minute clip with per-frame boxes stays far below
NO_CENTRAL = "labels are kept by central: review clips on the pages of `shelfwatch central run`"


class VersionView(Strict):
    version: int
    saved_by: str | None
    saved_at: datetime | None
    based_on: int | None


class SkuView(Strict):
    sku: str
    name: str


class ReviewView(Strict):
    """A clip's review: its state, its labels versions, what a pick may name, and whether this caller may edit."""

    clip: str
    state: Literal["predicted", "in_review", "verified"]
    store: str | None
    latest: int  # the newest version (0: only the prediction)
    versions: list[VersionView]
    verified_version: int | None = None
    verified_at: datetime | None = None
    verified_by: str | None = None
    bundle: str
    catalog: list[SkuView]
    can_edit: bool
    why_not: str | None = None  # why this caller may not edit it


def _caller(principal: Any) -> str | None:
    """The token id that saves (central's Principal has one)."""
    return getattr(principal, "token_id", None)


def _bundle_id(folder: Path) -> str:
    """The bundle's id as its manifest states it (the bundle may have changed or gone since the analysis)."""
    try:
        return str(json.loads((folder / "manifest.json").read_text())["bundle_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return folder.name


def catalog_of(spec: JobSpec) -> dict[str, str]:
    """SKU -> name of every product the analysis could report: the bundle's catalogue and the box config's."""
    found: dict[str, str] = {}
    try:
        manifest = json.loads((spec.bundle / "manifest.json").read_text())
        found.update({e["sku"]: e["name"] for e in (manifest.get("detector") or {}).get("catalog", [])})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if spec.box_config is not None:
        from edge.config import load_box_config
        from edge.errors import ShelfWatchError

        try:
            found.update({s.sku: s.name or found.get(s.sku, s.sku) for s in load_box_config(spec.box_config).catalog})
        except ShelfWatchError:
            pass
    return found


def _spec(job: Job) -> JobSpec:
    return JobSpec.model_validate_json((job.folder / "job.json").read_text())


def with_frame_classes(data: Any) -> Any:
    """A labels JSON may leave out `frame_classes` (the editor does: they follow from the segments or timestamps);
    they are filled in here. When the segments are too broken to say, a placeholder lets validation name the real
    problem."""
    if not isinstance(data, dict) or "frame_classes" in data:
        return data
    try:
        count = int(data["frame_count"])
        if data.get("timestamps"):
            stamps = [Timestamp(int(t["frame"]), ACTION_CLASSES.index(t["label"])) for t in data["timestamps"]]
            frames = timestamp_frames(stamps, count).tolist()
        else:
            segs = [Segment(ACTION_CLASSES.index(s["label"]), int(s["start"]), int(s["end"]))
                    for s in data.get("segments", [])]  # fmt: skip
            if any(s.start < 0 or s.end > count or s.end <= s.start for s in segs):
                raise ValueError
            frames = resolve_frames(segs, count)[0].tolist()
    except (KeyError, TypeError, ValueError, IndexError):
        frames = [0] * max(0, int(data["frame_count"])) if isinstance(data.get("frame_count"), int) else []
    return {**data, "frame_classes": frames}


def router(site: Site) -> APIRouter:
    routes = APIRouter(tags=["web"])
    Principal = Annotated[Any, Depends(site.auth)]
    refusals: dict = {404: {"model": Refused}, 409: {"model": Refused}, 422: {"model": Refused}}

    def reviews() -> Any:
        if site.reviews is None:
            raise HTTPException(404, NO_CENTRAL)
        return site.reviews

    def done(job_id: str, principal: Any) -> Job:
        job = job_or_404(site, job_id, principal)
        if job.state != "done":
            raise HTTPException(409, f"the analysis is {job.state}")
        return job

    def why_not(job: Job, principal: Any) -> str | None:
        if job.store is None:
            return ("this clip was analysed with a chain-wide token and belongs to no store; analyse it with the "
                    "store's token to review it")  # fmt: skip
        stores = stores_of(principal)
        if stores is not None and job.store not in stores:
            return f"this clip belongs to store {job.store}"
        return None

    def view(job: Job, principal: Any) -> ReviewView:
        store = reviews()
        clip = store.clip(job.id)
        refused = why_not(job, principal)
        if clip is None:
            spec = _spec(job)
            catalog, bundle = catalog_of(spec), _bundle_id(spec.bundle)
            return ReviewView(clip=job.id, state="predicted", store=job.store, latest=0, bundle=bundle,
                              versions=[VersionView(version=0, saved_by=None, saved_at=None, based_on=None)],
                              catalog=[SkuView(sku=k, name=v) for k, v in sorted(catalog.items())],
                              can_edit=refused is None, why_not=refused)  # fmt: skip
        versions = store.versions(job.id)
        return ReviewView(
            clip=job.id, state=clip.state, store=clip.store, latest=versions[-1].version, bundle=clip.bundle,
            versions=[VersionView(version=v.version, saved_by=v.token_id, saved_at=v.saved if v.version else None,
                                  based_on=v.based_on) for v in versions],
            verified_version=clip.verified_version, verified_at=clip.verified, verified_by=clip.verified_by,
            catalog=[SkuView(sku=k, name=v) for k, v in sorted(clip.catalog.items())],
            can_edit=refused is None, why_not=refused,
        )  # fmt: skip

    def keep(job: Job, principal: Any) -> None:
        """Take a predicted clip into review (its first correction, or verified as predicted)."""
        from central.review import Source, utc_day

        store = reviews()
        if store.clip(job.id) is not None:
            return
        refused = why_not(job, principal)
        if refused:
            raise HTTPException(409, refused)
        spec = _spec(job)
        if not spec.video.is_file():  # a clip from clips_dir, deleted there since its analysis
            raise HTTPException(409, f"the video {spec.name} is no longer there, so the clip cannot be kept for "
                                "training; analyse it again")  # fmt: skip
        taken = site.jobs.take(job.id)  # out of the queue first: keep_analyses must not delete it meanwhile
        if taken is None:
            raise HTTPException(404, "no such analysis (it may have been deleted to make room)")
        upload = spec.video.parent.resolve() == job.folder.resolve()
        source = Source(
            clip_id=job.id, folder=job.folder, video=spec.video, name=spec.name, store=str(job.store),
            day=utc_day(job.created if upload else spec.video.stat().st_mtime), bundle=_bundle_id(spec.bundle),
            catalog=catalog_of(spec), fps=spec.fps, frames=_frames(job), width=spec.width, height=spec.height,
        )  # fmt: skip
        try:
            store.take(source)
        except BaseException:
            site.jobs.restore(taken)
            raise
        shutil.rmtree(job.folder, ignore_errors=True)

    @routes.get("/web/api/analyses/{job_id}/review", response_model=ReviewView, responses=refusals)
    def review_state(job_id: JobId, _: Principal) -> ReviewView:
        """The clip's review: predicted, in review or verified; its labels versions; its catalogue."""
        return view(done(job_id, _), _)

    @routes.get("/web/api/analyses/{job_id}/labels", response_model=LabelFile, response_model_exclude_none=True,
                responses=refusals)  # fmt: skip
    def get_labels(job_id: JobId, _: Principal, version: Annotated[int | None, Query(ge=0)] = None) -> LabelFile:
        """The clip's labels (ShelfWatch labels JSON): the latest version, or `version` (0: the box's prediction).
        The `review` block says which version it is, who saved it, when, and which bundle predicted the clip."""
        from central.review import NotFound, prediction_labels

        store = reviews()
        job = done(job_id, _)
        if store.clip(job.id) is not None:
            try:
                return store.labels(job.id, version)
            except NotFound as exc:
                raise HTTPException(404, str(exc)) from None
        if version not in (None, 0):
            raise HTTPException(404, f"clip {job.id} has only its prediction (version 0)")
        spec = _spec(job)
        result = json.loads((job.folder / RESULT).read_text())
        return prediction_labels(result, job.id, _bundle_id(spec.bundle), fps=spec.fps, frames=_frames(job),
                                 width=spec.width, height=spec.height)  # fmt: skip

    @routes.put("/web/api/analyses/{job_id}/labels", response_model=ReviewView, responses={**refusals,
                413: {"model": Refused}}, openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/LabelFile"}}}}})  # fmt: skip
    async def put_labels(job_id: JobId, request: Request, _: Principal) -> ReviewView:
        """Save a correction as a new labels version (the prediction and every earlier version stay). The body is
        a ShelfWatch labels JSON (`frame_classes` may be left out: they follow from the segments or timestamps);
        a segment outside the clip, an unknown class or an unknown SKU is refused (422) with the reason. With a
        `review` block whose `version` is not the latest any more, it is refused (409): someone saved since."""
        from central.review import Conflict, Invalid, NotFound, check

        store = reviews()
        job = done(job_id, _)  # another store's clip is not there for this caller, whatever the body says
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_LABELS_BYTES:
            raise HTTPException(413, f"a labels JSON is at most {MAX_LABELS_BYTES // (1024 * 1024)} MB")
        body = await request.body()
        if len(body) > MAX_LABELS_BYTES:
            raise HTTPException(413, f"a labels JSON is at most {MAX_LABELS_BYTES // (1024 * 1024)} MB")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise HTTPException(422, f"the body is not JSON ({exc})") from None
        try:
            labels = LabelFile.model_validate(with_frame_classes(data))
        except ValidationError as exc:
            raise HTTPException(422, f"not valid labels: {describe(exc).removeprefix('(top level): ')}") from None
        if labels.review is not None and labels.review.clip != job_id:
            raise HTTPException(422, f"these labels are of clip {labels.review.clip}, not {job_id}")
        refused = why_not(job, _)
        if refused:
            raise HTTPException(409, refused)
        clip = store.clip(job.id)
        try:  # before the clip is kept: refused labels leave it as it was
            if clip is not None:
                check(labels, frames=clip.frames, fps=clip.fps, catalog=clip.catalog)
            else:
                spec = _spec(job)
                check(labels, frames=_frames(job), fps=spec.fps, catalog=catalog_of(spec))
        except Invalid as exc:
            raise HTTPException(422, str(exc)) from None
        await run_in_threadpool(keep, job, _)
        based_on = labels.review.version if labels.review is not None else None
        try:
            await run_in_threadpool(store.save, job.id, labels, _caller(_), based_on)
        except Invalid as exc:
            raise HTTPException(422, str(exc)) from None
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return view(done(job_id, _), _)

    @routes.post("/web/api/analyses/{job_id}/verify", response_model=ReviewView, responses=refusals)
    def verify(job_id: JobId, _: Principal, version: Annotated[int | None, Query(ge=0)] = None) -> ReviewView:
        """The latest labels version is right: the clip is verified, and `shelfwatch dataset export` writes it out
        for training. `version`: the version the caller looked at (409 if another was saved since). A clip never
        corrected is verified as the box predicted it."""
        from central.review import Conflict

        store = reviews()
        job = done(job_id, _)
        refused = why_not(job, _)
        if refused:
            raise HTTPException(409, refused)
        keep(job, _)
        try:
            store.verify(job.id, _caller(_), version)
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        return view(done(job_id, _), _)

    @routes.get("/web/api/analyses/{job_id}/verified/{file}", responses=refusals)
    def verified_download(job_id: JobId, file: str, _: Principal) -> Response:
        """The verified labels: `labels.json` (ShelfWatch) or `labels_label.mat` (MERL Shopping; segment labels
        only: timestamp labels have no MERL form)."""
        from training.labels import action_labels

        store = reviews()
        job = done(job_id, _)
        clip = store.clip(job.id)
        if clip is None or clip.state != "verified" or clip.verified_version is None:
            raise HTTPException(409, "the clip is not verified")
        labels = store.labels(job.id, clip.verified_version)
        stem = Path(clip.name).stem or "clip"
        disposition = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(f'{stem}_{file}')}"}
        if file == "labels.json":
            return Response(labels.model_dump_json(exclude_none=True), media_type="application/json",
                            headers=disposition)  # fmt: skip
        if file == "labels_label.mat":
            if labels.timestamps:
                raise HTTPException(409, "timestamp labels have no MERL Shopping form; download labels.json")
            return Response(_mat(action_labels(labels)), media_type="application/x-matlab-data", headers=disposition)
        raise HTTPException(404, f"no download named {file[:64]!r}")

    @routes.get("/web/api/reviews", response_model=list[ReviewView])
    def listing(_: Principal, state: Literal["in_review", "verified"] | None = None) -> list[ReviewView]:
        """The clips kept for review that this token may see (a store's: its store's), oldest first."""
        store = reviews()
        stores = stores_of(_)
        clips = [c for c in store.clips(state=state) if stores is None or c.store in stores]
        return [view(site.kept(c.clip_id), _) for c in clips]  # type: ignore[arg-type]

    @routes.delete("/web/api/analyses/{job_id}", status_code=204, responses=refusals)
    def delete_clip(job_id: JobId, _: Principal) -> Response:
        """Delete a clip kept for review, with every labels version: the one way such a clip goes. Other analyses
        go on their own when keep_analyses needs room."""
        store = reviews()
        job = job_or_404(site, job_id, _)
        if store.clip(job.id) is None:
            raise HTTPException(409, "only a clip in review or verified is deleted here; other analyses are deleted "
                                "when keep_analyses needs room")  # fmt: skip
        refused = why_not(job, _)
        if refused:
            raise HTTPException(409, refused)
        store.delete(job.id)
        return Response(status_code=204)

    return routes


def _frames(job: Job) -> int:
    """The frames the agent decoded (the result's count: what the timeline and the labels span)."""
    return int(json.loads((job.folder / RESULT).read_text())["frames"])


def _mat(labels: Any) -> bytes:
    import tempfile

    from training.merl import write_merl_labels

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels_label.mat"
        write_merl_labels(labels, path)
        return path.read_bytes()
