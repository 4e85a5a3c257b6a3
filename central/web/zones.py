"""The zone editor (a room of the web app): an installer draws a box's shelf zones, and optionally their slots, on
the camera's own picture, tries them on a clip and saves them into the box's YAML in its store folder.

- `GET /zones` lists the boxes of the store folders (`stores_dir` in the web config) the caller may see;
  `GET /zones/{store}/{box}` is the editor page (static/zones.js).
- `GET /web/api/zones/{store}/{box}`: the box's zones as saved, the picture size they were drawn on, the catalogue
  (SKUs by name), the pictures and clips there are to draw on and try with.
- `POST .../check`: every problem of a layout as drawn, with its zone and slot (`edge.geometry.layout_problems`,
  the same check as the box config's schema), for the page to show in red while the installer draws.
- `POST .../snapshot` (inside `central run`): ask the box for a picture (`edge.control.SnapshotRequest`);
  `GET .../snapshot/{request_id}`: 202 until the box's JPEG has arrived over the channel, then the picture.
- `POST .../upload`: a still or a short clip from the installer instead (multipart `file`); a clip is kept for
  "Try it" and its picture is a frame with nobody in it.
- `POST .../try`: the agent on a clip of this camera with the zones as drawn (an analysis of the queue, its config
  the box's with these zones); `GET .../try/{job_id}`: its timeline and shelf counts per zone.
- `PUT /web/api/zones/{store}/{box}`: save (`firmware_config.zones`: comments kept, `config validate` must pass).
- `POST .../send` (inside `central run`): send the saved config to the box as a config rollout of one box
  (`central.rollout`: the box downloads it, checks it, switches to it at a quiet frame, and reports).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
import json
import re
import secrets
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool

from central.web.analyses import JobId, JobView, _reserve, job_or_404, view
from central.web.auth import stores_of
from central.web.jobs import JobQueue
from central.web.picture import Picture, extract_apart
from central.web.site import Site, owner
from central.web.upload import receive_upload
from central.web.video import probe_apart
from central.web.worker import EVENTS, JobSpec
from edge.config import BoxConfig
from edge.control import SnapshotRequest
from edge.errors import ShelfWatchError
from edge.geometry import LayoutProblem, layout_problems
from edge.schema import Strict, describe, is_slug

StorePath = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
FileName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
RequestId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Coordinate = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
UPLOAD_ROUTE = re.compile(r"^/web/api/zones/[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9][a-z0-9_-]{0,62}/upload$")
KEEP_UPLOADS = 10  # pictures and clips an installer uploaded for one box: the oldest go
# The largest layout the schema allows (64 zones of 256 corners, 256 slots each) is megabytes; a real one a few KB.
# 512 KB is room for a dense planogram (a few hundred slots) and no more.
MAX_LAYOUT_BYTES = 512 * 1024


class DrawnSlot(Strict):
    sku: str = Field(max_length=64)
    polygon: list[tuple[Coordinate, Coordinate]] = Field(max_length=64)


class DrawnZone(Strict):
    """A zone as the page has it: not yet checked (the check says what is wrong, it does not refuse to listen)."""

    name: str = Field(max_length=64)
    polygon: list[tuple[Coordinate, Coordinate]] = Field(max_length=256)
    slots: list[DrawnSlot] = Field(default_factory=list, max_length=256)


class Layout(Strict):
    zones: list[DrawnZone] = Field(max_length=64)
    frame_size: tuple[int, int] | None = Field(default=None, description="the picture's [width, height]")


class Problem(Strict):
    zone: int | None  # None: the layout as a whole (the store's config)
    slot: int | None
    message: str


class Checked(Strict):
    problems: list[Problem]


class PictureView(Strict):
    name: str
    source: str  # "box": a snapshot the box uploaded; "upload": the installer's
    url: str
    width: int | None = None
    height: int | None = None
    busy: bool = False  # the box found no moment without people: the latest frame
    clip: str | None = None  # the clip it came from (an upload), for "Try it"


class ClipView(Strict):
    name: str
    source: str  # "box": a clip the box kept; "upload": the installer's


class CatalogueItem(Strict):
    sku: str
    name: str


class BoxState(Strict):
    store: str
    box: str
    zones: list[DrawnZone]
    frame_size: tuple[int, int] | None
    catalogue: list[CatalogueItem]
    pictures: list[PictureView]
    clips: list[ClipView]
    can_snapshot: bool
    problems: list[str] = Field(default_factory=list, description="the saved config's own problems, if any")


class TryBody(Strict):
    layout: Layout
    clip: str = Field(max_length=128)
    source: str = Field(pattern="^(box|upload)$")


class ZoneCount(Strict):
    zone: str
    picks: int
    putbacks: int
    actions: int
    skus: dict[str, int]  # SKU name -> picks minus put-backs


class Segment(Strict):
    action: str
    start: int
    end: int
    zone: str | None


class Tried(Strict):
    job: JobView
    frames: int = 0
    segments: list[Segment] = Field(default_factory=list)
    zones: list[ZoneCount] = Field(default_factory=list)


def layout_check(layout: Layout, skus: set[str] | None) -> list[Problem]:
    """Names first (the schema's: a slug, unique), then the geometry, in one list the page can pin on its shapes."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for z, zone in enumerate(layout.zones):
        if not is_slug(zone.name):
            problems.append(Problem(zone=z, slot=None, message="a name is lower-case letters, digits, - and _"))
        elif zone.name in seen:
            problems.append(Problem(zone=z, slot=None, message=f"the name {zone.name!r} is taken by another zone"))
        seen.add(zone.name)
    found: list[LayoutProblem] = layout_problems(layout.zones, layout.frame_size, skus)
    problems += [Problem(zone=p.zone, slot=p.slot, message=p.message) for p in found]
    return problems


def router(site: Site) -> APIRouter:
    routes = APIRouter(tags=["zones"])
    Principal = Annotated[Any, Depends(site.auth)]
    config = site.config

    def stores_root() -> Path:
        if config.stores_dir is None or not config.stores_dir.is_dir():
            raise HTTPException(404, "no store folders here (set stores_dir in the web config)")
        return config.stores_dir

    def box_file(store: str, box: str, principal: Any) -> Path:
        allowed = stores_of(principal)
        path = stores_root() / store / "boxes" / f"{box}.yaml"
        if (allowed is not None and store not in allowed) or not path.is_file() or path.is_symlink():
            raise HTTPException(404, f"no box {store}/{box} in the store folders")
        return path

    def work(store: str, box: str) -> Path:
        folder = config.work_dir / "zones" / store / box
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def current(path: Path) -> tuple[dict, BoxConfig | None, list[str]]:
        """The box's merged config (the store's defaults and the box's own), validated if it can be."""
        from firmware_config.store import STORE_FILE, deep_merge, read_yaml, resolve_paths, validate_box

        sources, problems = [], []
        for file in (path.parent.parent / STORE_FILE, path):
            source, found = read_yaml(file)
            problems += [str(p) for p in found]
            if source is not None:
                sources.append(source)
        merged: dict = {}
        for source in sources:
            merged = deep_merge(merged, resolve_paths(source.data, source.path.parent))
        checked, found = validate_box(sources) if len(sources) == 2 else (None, [])
        problems += [str(p) for p in found]
        return merged, checked, problems

    def catalogue(merged: dict, checked: BoxConfig | None) -> list[CatalogueItem]:
        """The box's catalogue by name (its config's, else its bundle's)."""
        items = [CatalogueItem(sku=c.sku, name=c.name or c.sku) for c in checked.catalog] if checked else []
        if not items:
            from edge.bundle import load_bundle

            try:
                bundle = load_bundle(checked.bundle if checked else config.default_bundle)
            except ShelfWatchError:
                return []
            items = [CatalogueItem(sku=s.sku, name=s.name or s.sku) for s in (bundle.detector.catalog
                     if bundle.detector else [])]  # fmt: skip
        return sorted(items, key=lambda i: i.name.lower())

    def skus_of(merged: dict, checked: BoxConfig | None) -> set[str] | None:
        if checked is not None:
            return {c.sku for c in checked.catalog} or None
        catalog = merged.get("catalog")
        return {c.get("sku") for c in catalog if isinstance(c, dict)} if isinstance(catalog, list) and catalog else None

    def drawn_zones(merged: dict) -> list[DrawnZone]:
        try:
            return Layout.model_validate({"zones": merged.get("zones") or []}).zones
        except ValidationError:
            return []

    def box_files(store: str, box: str, kind: str) -> list[dict]:
        if site.files is None:
            return []
        return [f for f in site.files.listing(store, box) if f["kind"] == kind]

    def uploads(store: str, box: str) -> tuple[list[PictureView], list[ClipView]]:
        folder = work(store, box)
        pictures, clips = [], []
        for meta in sorted(folder.glob("*.json"), key=lambda p: -p.stat().st_mtime):
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            url = f"/web/api/zones/{store}/{box}/picture/upload/{meta.stem}.jpg"
            pictures.append(PictureView(name=f"{meta.stem}.jpg", source="upload", width=info["width"],
                                        height=info["height"], busy=not info["quiet"], clip=info.get("clip"),
                                        url=url))  # fmt: skip
            if info.get("clip"):
                clips.append(ClipView(name=info["clip"], source="upload"))
        return pictures, clips

    def state(store: str, box: str, path: Path) -> BoxState:
        merged, checked, problems = current(path)
        camera = merged.get("camera") if isinstance(merged.get("camera"), dict) else {}
        size = camera.get("frame_size")
        size = (
            tuple(size) if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size) else None
        )
        pictures, clips = uploads(store, box)
        snaps = [PictureView(name=f["name"], source="box", busy="-busy" in f["name"],
                             url=f"/web/api/zones/{store}/{box}/picture/box/{f['name']}")
                 for f in reversed(box_files(store, box, "snapshot"))]  # fmt: skip
        kept = [ClipView(name=f["name"], source="box") for f in reversed(box_files(store, box, "clip"))]
        return BoxState(store=store, box=box, zones=drawn_zones(merged), frame_size=size,
                        catalogue=catalogue(merged, checked), pictures=snaps + pictures, clips=kept + clips,
                        can_snapshot=site.central is not None, problems=problems)  # fmt: skip

    async def read_json(request: Request, model: type) -> Any:
        try:  # the body is read here, after the caller was admitted (MAX_LAYOUT_BYTES at most: the pages' BodyLimit)
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, describe(exc)) from None

    # -- pages ------------------------------------------------------------------------------------------------------

    @routes.get("/zones", response_class=HTMLResponse, include_in_schema=False)
    def boxes_page(request: Request, _: Principal) -> HTMLResponse:
        allowed = stores_of(_)
        boxes = []
        if config.stores_dir is not None and config.stores_dir.is_dir():
            for store_yaml in sorted(config.stores_dir.glob("*/store.yaml")):
                store = store_yaml.parent.name
                if allowed is None or store in allowed:
                    boxes += [(store, p.stem) for p in sorted((store_yaml.parent / "boxes").glob("*.yaml"))]
        return site.page(request, "zones_list.html", boxes=boxes, stores_dir=config.stores_dir)

    @routes.get("/zones/{store}/{box}", response_class=HTMLResponse, include_in_schema=False)
    def editor_page(request: Request, store: StorePath, box: StorePath, _: Principal) -> HTMLResponse:
        data = state(store, box, box_file(store, box, _))
        return site.page(request, "zones.html", store=store, box=box,
                         state_json=data.model_dump_json().replace("<", "\\u003c"))  # fmt: skip

    # -- the editor's API -------------------------------------------------------------------------------------------

    @routes.get("/web/api/zones/{store}/{box}", response_model=BoxState)
    def box_state(store: StorePath, box: StorePath, _: Principal) -> BoxState:
        return state(store, box, box_file(store, box, _))

    @routes.post("/web/api/zones/{store}/{box}/check", response_model=Checked)
    async def check(request: Request, store: StorePath, box: StorePath, _: Principal) -> Checked:
        """Every problem of the layout as drawn (200 either way: the page shows them)."""
        path = box_file(store, box, _)
        layout = await read_json(request, Layout)
        merged, checked, _problems = await run_in_threadpool(current, path)
        return Checked(problems=layout_check(layout, skus_of(merged, checked)))

    @routes.put("/web/api/zones/{store}/{box}")
    async def save(request: Request, store: StorePath, box: StorePath, _: Principal) -> dict:
        """Write the zones into boxes/<box>.yaml: 422 with the problems when the layout or the store's config would
        not validate (the file is then as it was)."""
        from edge.config import Zone
        from firmware_config.zones import save_zones

        path = box_file(store, box, _)
        layout = await read_json(request, Layout)
        merged, checked, _problems = await run_in_threadpool(current, path)
        problems = layout_check(layout, skus_of(merged, checked))
        if problems:
            raise HTTPException(422, {"detail": "the zones have problems", "problems": [p.model_dump() for p in
                                                                                       problems]})  # fmt: skip
        zones = [Zone.model_validate(z.model_dump()) for z in layout.zones]
        try:
            found = await run_in_threadpool(save_zones, path, zones, layout.frame_size)
        except ShelfWatchError as exc:
            raise HTTPException(422, {"detail": str(exc), "problems": []}) from None
        if found:
            raise HTTPException(422, {"detail": "the store's config would not validate", "problems": [
                Problem(zone=None, slot=None, message=str(p).replace(str(stores_root()) + "/", "")).model_dump()
                for p in found]})  # fmt: skip
        return {"saved": f"{store}/boxes/{box}.yaml", "zones": len(zones)}

    @routes.post("/web/api/zones/{store}/{box}/send", status_code=202)
    def send(store: StorePath, box: StorePath, _: Principal) -> dict:
        """The box's config as saved, sent to the box the way a bundle is: a rollout of this one box. The box takes
        from it everything but what only provisioning sets (its identity, broker, keys, bundle)."""
        from central import rollout

        path = box_file(store, box, _)
        if site.central is None or site.files is None:
            raise HTTPException(404, "configs reach boxes through central (`shelfwatch central run`); provision the "
                                "box again instead")  # fmt: skip
        merged, checked, problems = current(path)
        if checked is None:
            raise HTTPException(409, f"the saved config does not validate: {'; '.join(problems)[:300]}")
        sent = work(store, box) / "sent.yaml"  # what was sent last, as `central rollout start --config` reads it
        sent.write_text(yaml.safe_dump(json.loads(json.dumps(merged, default=str)), sort_keys=False))
        try:
            target = rollout.config_target(sent)
            rollout_id = rollout.start(site.central, site.files, target, [(store, box)], rollout.Params(canary=1))
        except ShelfWatchError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"rollout_id": rollout_id, "target": target.target, "url": f"/rollouts/{rollout_id}"}

    @routes.post("/web/api/zones/{store}/{box}/snapshot", status_code=202)
    def snapshot(store: StorePath, box: StorePath, _: Principal) -> dict:
        """Ask the box for a picture of its camera (over the channel); poll the answer's URL."""
        box_file(store, box, _)
        if site.central is None:
            raise HTTPException(404, "snapshots come from boxes through central (`shelfwatch central run`); upload "
                                "a still or a clip here instead")  # fmt: skip
        from central import db

        request_id = secrets.token_hex(6)
        site.central.send_control(store, box, SnapshotRequest(issued=db.now(), request_id=request_id))
        return {"request_id": request_id, "url": f"/web/api/zones/{store}/{box}/snapshot/{request_id}"}

    @routes.get("/web/api/zones/{store}/{box}/snapshot/{request_id}")
    def snapshot_answer(store: StorePath, box: StorePath, request_id: RequestId, _: Principal) -> Any:
        from fastapi.responses import JSONResponse

        box_file(store, box, _)
        for f in box_files(store, box, "snapshot"):
            if f["name"] in (f"snapshot-{request_id}.jpg", f"snapshot-{request_id}-busy.jpg"):
                url = f"/web/api/zones/{store}/{box}/picture/box/{f['name']}"
                return PictureView(name=f["name"], source="box", busy=f["name"].endswith("-busy.jpg"),
                                   url=url).model_dump()  # fmt: skip
        return JSONResponse({"waiting": True}, status_code=202)

    @routes.get("/web/api/zones/{store}/{box}/picture/{source}/{name}")
    def picture(store: StorePath, box: StorePath, source: str, name: FileName, _: Principal) -> FileResponse:
        box_file(store, box, _)
        if source == "box" and site.files is not None:
            path = site.files.path(store, box, "snapshot", name)
        elif source == "upload" and name.endswith(".jpg"):
            path = work(store, box) / name
        else:
            path = None
        if path is None or not path.is_file():
            raise HTTPException(404, f"no picture {name}")
        return FileResponse(path, media_type="image/jpeg")

    @routes.post("/web/api/zones/{store}/{box}/upload", status_code=201, response_model=PictureView)
    async def upload(request: Request, store: StorePath, box: StorePath, _: Principal) -> PictureView:
        """A still (JPEG, PNG) or a short clip (multipart field `file`) to draw on; a clip is kept for Try it."""
        box_file(store, box, _)
        folder = work(store, box)
        incoming = folder / f".incoming-{secrets.token_hex(4)}"
        incoming.mkdir()
        try:
            got = await receive_upload(request, incoming, config.max_upload_bytes, f"{config.max_upload_mb:g} MB")
            if got.path is None:
                raise HTTPException(400, "send the still or clip in the form field 'file'")
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            try:
                found: Picture = await run_in_threadpool(extract_apart, got.path, folder / f"{stem}.jpg",
                                                         config.max_video_pixels, config.worker_memory_mb)  # fmt: skip
            except ShelfWatchError as exc:
                raise HTTPException(400, f"{got.name}: {exc}") from None
            clip = None
            if found.clip:
                clip = f"{stem}{got.path.suffix}"
                got.path.replace(folder / clip)
            (folder / f"{stem}.json").write_text(json.dumps({"width": found.width, "height": found.height,
                                                             "quiet": found.quiet, "clip": clip,
                                                             "name": got.name}))  # fmt: skip
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        _prune(folder)
        return PictureView(name=f"{stem}.jpg", source="upload", width=found.width, height=found.height,
                           busy=not found.quiet, clip=clip,
                           url=f"/web/api/zones/{store}/{box}/picture/upload/{stem}.jpg")  # fmt: skip

    @routes.post("/web/api/zones/{store}/{box}/try", status_code=202, response_model=Tried)
    async def try_it(request: Request, store: StorePath, box: StorePath, _: Principal) -> Tried:
        """The agent on a clip of this camera with the zones as drawn (nothing is saved)."""
        path = box_file(store, box, _)
        body = await read_json(request, TryBody)
        merged, checked, _problems = await run_in_threadpool(current, path)
        problems = layout_check(body.layout, skus_of(merged, checked))
        if problems:
            raise HTTPException(422, {"detail": "the zones have problems", "problems": [p.model_dump() for p in
                                                                                       problems]})  # fmt: skip
        if body.source == "box":
            video = site.files.path(store, box, "clip", body.clip) if site.files is not None else None
        else:
            video = work(store, box) / body.clip if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", body.clip) else None
        if video is None or not video.is_file() or video.suffix == ".json" or video.suffix == ".jpg":
            raise HTTPException(404, f"no clip {body.clip[:64]!r} of this box")
        try:
            info = await run_in_threadpool(probe_apart, video, config.max_video_s, config.max_video_pixels,
                                           config.worker_memory_mb)  # fmt: skip
        except ShelfWatchError as exc:
            raise HTTPException(400, f"{body.clip}: {exc}") from None
        ticket = _reserve(site, _)
        try:
            box_config = ticket.folder / "box.yaml"
            tried = {k: v for k, v in merged.items() if k not in ("mqtt", "uplink", "outbox")}
            tried["zones"] = [z.model_dump() for z in body.layout.zones]
            if body.layout.frame_size is not None:
                tried["camera"] = {**(tried.get("camera") or {}), "frame_size": list(body.layout.frame_size)}
            box_config.write_text(yaml.safe_dump(json.loads(json.dumps(tried, default=str)), sort_keys=False))
            bundle = checked.bundle if checked is not None and checked.bundle.is_dir() else config.default_bundle
            spec = JobSpec(video=video.resolve(), name=f"try {box}: {body.clip}", bundle=bundle.resolve(),
                           box_config=box_config, threads=config.threads, fps=info.fps, frames=info.frames,
                           width=info.width, height=info.height, store=owner(_),
                           memory_mb=config.worker_memory_mb)  # fmt: skip
            job = site.jobs.submit(ticket, spec)
        except BaseException:
            site.jobs.release(ticket)
            raise
        return Tried(job=view(site.jobs, job))

    @routes.get("/web/api/zones/{store}/{box}/try/{job_id}", response_model=Tried)
    def tried(store: StorePath, box: StorePath, job_id: JobId, _: Principal) -> Tried:
        """A try's progress; once done, its timeline and what each zone counted."""
        box_file(store, box, _)
        job = job_or_404(site, job_id, _)
        if job.state != "done":
            return Tried(job=view(site.jobs, job))
        return summarise(site.jobs, job)

    return routes


def summarise(jobs: JobQueue, job: Any) -> Tried:
    """The try's timeline (action segments with their zone) and shelf counts per zone, from the agent's events."""
    from central.web.results import Analysis, read_events
    from central.web.worker import RESULT

    analysis = Analysis.model_validate_json((job.folder / RESULT).read_text())
    events = read_events(job.folder / EVENTS)
    counts: dict[str, Counter] = {}
    skus: dict[str, Counter] = {}
    names = {c.sku: c.name for c in analysis.changes}
    segments = []
    for e in events:
        zone = getattr(e, "zone", None) or "(no zone)"
        if e.kind == "action":
            segments.append(Segment(action=e.action, start=e.start, end=e.end, zone=getattr(e, "zone", None)))
            counts.setdefault(zone, Counter())["actions"] += 1
        elif e.kind in ("pick", "putback"):
            counts.setdefault(zone, Counter())[f"{e.kind}s"] += e.quantity
            sign = 1 if e.kind == "pick" else -1
            skus.setdefault(zone, Counter())[names.get(e.sku, e.sku)] += sign * e.quantity
    zones = [ZoneCount(zone=z, picks=c["picks"], putbacks=c["putbacks"], actions=c["actions"],
                       skus=dict(skus.get(z, {}))) for z, c in sorted(counts.items())]  # fmt: skip
    return Tried(job=view(jobs, job), frames=analysis.frames, segments=segments, zones=zones)


def _prune(folder: Path) -> None:
    """Keep the newest KEEP_UPLOADS uploads of a box (each a .json, its .jpg and maybe its clip)."""
    metas = sorted(folder.glob("*.json"), key=lambda p: -p.stat().st_mtime)
    for meta in metas[KEEP_UPLOADS:]:
        for file in folder.glob(f"{meta.stem}.*"):
            file.unlink(missing_ok=True)


def is_upload(path: str) -> bool:
    """The editor's upload route: bounded by the web config's upload limit, not the pages' 16 KB."""
    return bool(UPLOAD_ROUTE.match(path))
