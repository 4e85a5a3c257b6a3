"""The HTML pages: home, the analysis page, an analysis's result, and (inside `central run`) the dashboard."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from central.web.analyses import JobId, job_or_404, view
from central.web.results import Analysis
from central.web.site import Site, visible_to
from central.web.worker import RESULT


def router(site: Site) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    Principal = Annotated[Any, Depends(site.auth)]
    config = site.config

    @routes.get("/")
    def home(_: Principal) -> RedirectResponse:
        return RedirectResponse("/dashboard" if site.central is not None else "/analyse", status_code=303)

    @routes.get("/analyse", response_class=HTMLResponse)
    def analyse(request: Request, _: Principal) -> HTMLResponse:
        return site.page(request, "analyse.html", bundles=list(site.bundles()),
                         default_bundle=config.default_bundle.name, configs=list(site.box_configs()),
                         clips=list(site.recent_clips()), max_mb=config.max_upload_mb, max_s=config.max_video_s,
                         recent=[view(site.jobs, j) for j in site.jobs.recent(visible_to(_))])  # fmt: skip

    @routes.get("/analyses/{job_id}", response_class=HTMLResponse)
    def result(request: Request, job_id: JobId, _: Principal) -> HTMLResponse:
        job = job_or_404(site, job_id, _)
        analysis = None
        if job.state == "done":
            analysis = Analysis.model_validate_json((job.folder / RESULT).read_text())
        data = json.dumps(analysis.model_dump() if analysis else None).replace("<", "\\u003c")
        return site.page(request, "result.html", job=view(site.jobs, job), analysis=analysis, analysis_json=data)

    if site.central is not None:

        @routes.get("/dashboard", response_class=HTMLResponse)
        def dashboard_page(request: Request, _: Principal) -> HTMLResponse:
            return site.page(request, "dashboard.html")

    return routes
