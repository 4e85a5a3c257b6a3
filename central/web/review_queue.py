"""The review queue room (inside `central run`): `/review` lists a store's box clips and disputed alerts by how much a
reviewer's minute is worth (`central.review_queue`), filtered by box, class and state; each clip opens in the editor
at its unsure stretch. `POST /review/open/{store}/{box}/{name}` makes the analysis the editor needs (once: the same
analysis afterwards, while it is kept) and sends the browser to `/analyses/<id>#frame=N&to=M`. `GET
/web/api/review/queue` is the same list as JSON."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select, update
from starlette.concurrency import run_in_threadpool

from central import db
from central.files import NAME
from central.review_queue import STATES, Entry, Thresholds, queue, stretch_of
from central.web.analyses import _probed, _reserve
from central.web.auth import stores_of
from central.web.site import Site
from central.web.worker import JobSpec
from edge.classes import ACTION_CLASSES

StorePath = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Name = Annotated[str, PathParam(pattern=NAME)]
CLASSES = (*ACTION_CLASSES, "pick", "putback")


def router(site: Site) -> APIRouter:
    routes = APIRouter(tags=["web"])
    Principal = Annotated[Any, Depends(site.auth)]
    central = site.central

    def thresholds() -> Thresholds:
        return Thresholds(getattr(central, "review_confidence", 0.85), getattr(central, "product_confidence", 0.6))

    def listed(principal: Any, box: str | None, cls: str | None, state: str | None) -> list[Entry]:
        return queue(central.engine, stores_of(principal), thresholds(),
                     getattr(central, "review_random_share", 0.1), box or None, cls or None, state or None,
                     date.today())  # fmt: skip

    @routes.get("/web/api/review/queue", response_model=list[Entry])
    def api_queue(_: Principal, box: str | None = None, cls: str | None = None, state: str | None = None) -> Any:
        """The review queue, best worth first (`cls`: an action class, pick or putback; `state`: new, predicted,
        in_review or verified)."""
        return listed(_, box, cls, state)

    @routes.get("/review", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request, _: Principal, box: str = "", cls: str = "", state: str = "") -> HTMLResponse:
        rows = await run_in_threadpool(listed, _, box, cls, state)
        boxes = sorted({e.box for e in await run_in_threadpool(listed, _, None, None, None)})
        return site.page(request, "review_queue.html", entries=rows, boxes=boxes, classes=CLASSES, states=STATES,
                         box=box, cls=cls, state=state, quote=quote)  # fmt: skip

    def clip_row(principal: Any, store: str, box: str, name: str) -> Any:
        stores = stores_of(principal)
        f = db.files.c
        with central.engine.connect() as conn:
            row = conn.execute(select(db.files).where(f.store == store, f.box == box, f.kind == "clip",
                                                      f.name == name, f.direction == "up")).first()  # fmt: skip
        if row is None or (stores is not None and store not in stores):
            raise HTTPException(404, f"no clip {name} of {store}/{box}")
        return row

    @routes.post("/review/open/{store}/{box}/{name}", include_in_schema=False)
    async def open_clip(store: StorePath, box: StorePath, name: Name, _: Principal) -> RedirectResponse:
        """The clip's analysis in the editor, at its unsure stretch (the analysis is made now if there is none)."""
        row = await run_in_threadpool(clip_row, _, store, box, name)
        job = None
        if row.analysis is not None:
            job = site.kept(row.analysis) or site.jobs.get(row.analysis)
        if job is None or job.state == "failed":
            video = Path(site.reviews.data_dir) / row.path
            info = await _probed(site, video, name)
            ticket = _reserve(site, _)
            spec = JobSpec(video=video.resolve(), name=name, bundle=site.config.default_bundle.resolve(),
                           box_config=site.box_configs().get(box), threads=site.config.threads, fps=info.fps,
                           frames=info.frames, width=info.width, height=info.height, store=store,
                           memory_mb=site.config.worker_memory_mb)  # fmt: skip
            job = site.jobs.submit(ticket, spec)
            f = db.files.c
            with central.engine.begin() as conn:
                conn.execute(update(db.files).where(f.store == store, f.box == box, f.kind == "clip",
                                                    f.name == name).values(analysis=job.id))  # fmt: skip
        stretch = stretch_of(name)
        where = f"#frame={stretch[0]}&to={stretch[1]}" if stretch else ""
        return RedirectResponse(f"/analyses/{job.id}{where}", status_code=303)

    return routes
