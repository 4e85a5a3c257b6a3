"""The channel's HTTP routes (files over HTTPS; control messages go over MQTT, see `edge.control`):

- `PUT /boxes/{store}/{box}/files/{kind}/{name}` — a box uploads a clip or a snapshot with its own token;
- `GET /boxes/{store}/{box}/files/{kind}/{name}` — a box downloads what central addressed to it (HTTP ranges: an
  interrupted download resumes); staff of the store may fetch any of the box's files;
- `GET /boxes/{store}/{box}/files` — the box's files (staff);
- `POST /boxes/{store}/{box}/control/snapshot` — ask the box for a picture of its camera (staff);
- `POST /boxes/{store}/{box}/desired` — send the box a bundle from central's bundles folder (staff).
A box's token works here only, and only for its own box; a staff token never uploads as a box."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool

from central import db
from central.auth import Principal
from central.files import (
    DOWNLOAD_KINDS,
    NAME,
    UPLOAD_LIMITS,
    BadContent,
    Conflict,
    FileStore,
    NoSpace,
    TooLarge,
    pack_bundle,
)
from central.service import Central
from edge.control import Desired, SnapshotRequest
from edge.errors import ShelfWatchError
from edge.events import Slug
from edge.schema import Strict, describe

Name = Annotated[str, PathParam(pattern=NAME)]
StorePath = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class Uploaded(Strict):
    name: str
    size: int
    sha256: str
    created: bool


class Requested(Strict):
    request_id: str


class DesiredBody(Strict):
    bundle: Slug = Field(description="a bundle folder's name in central's bundles folder (--bundles-dir)")


class Sent(Strict):
    bundle_id: str
    file: str
    size: int
    sha256: str


def router(
    central: Central, files: FileStore, bundles_dir: Path | None, staff: Callable[..., Principal],
    anyone: Callable[..., Principal],
) -> APIRouter:  # fmt: skip
    """`staff`: the API's dependency for people and scripts (refuses box tokens); `anyone`: the same, box tokens
    admitted (each route checks what a box may do)."""
    routes = APIRouter(tags=["channel"])
    Staff = Annotated[Principal, Depends(staff)]
    Caller = Annotated[Principal, Depends(anyone)]

    def staff_of(caller: Principal, store: str) -> None:
        if caller.box is not None or not caller.may(store):
            raise HTTPException(403, f"this token may not act for store {store}")

    @routes.put("/boxes/{store}/{box}/files/{kind}/{name}", status_code=201, response_model=Uploaded,
                responses={200: {"model": Uploaded}, 409: {}, 413: {}, 422: {}, 507: {}})  # fmt: skip
    async def upload(request: Request, store: StorePath, box: StorePath, kind: str, name: Name, caller: Caller,
                     covers: str = "") -> Any:  # fmt: skip
        """A clip or a snapshot from the box itself (its own token). 201: stored; 200: the same bytes were
        already there (a retry); 409: other bytes under this name; 413: over the kind's limit; 422: not what
        the kind says (an MP4 that decodes, a JPEG that opens); 507: central's disk is full (keep it, retry)."""
        if not caller.is_box(store, box):
            raise HTTPException(403, "only the box itself uploads its files, with its own token")
        if kind not in UPLOAD_LIMITS:
            raise HTTPException(404, f"no upload kind {kind[:16]!r} (clip, snapshot)")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > UPLOAD_LIMITS[kind]):
            raise HTTPException(413, f"a {kind} is at most {UPLOAD_LIMITS[kind] // 1_000_000} MB")
        ids = [c for c in covers.split(",") if c][:8]
        try:
            stored = await files.receive(store, box, kind, name, request.stream(), ids)
        except TooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except NoSpace as exc:
            raise HTTPException(507, str(exc)) from None
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        except BadContent as exc:
            raise HTTPException(422, str(exc)) from None
        body = Uploaded(name=stored.name, size=stored.size, sha256=stored.sha256, created=stored.created)
        return JSONResponse(body.model_dump(), status_code=201 if stored.created else 200)

    @routes.get("/boxes/{store}/{box}/files/{kind}/{name}", response_class=FileResponse)
    def download(store: StorePath, box: StorePath, kind: str, name: Name, caller: Caller) -> FileResponse:
        """A file of this box: a box gets what central addressed to it (bundles, configs); staff get any."""
        if caller.box is not None:
            if not caller.is_box(store, box) or kind not in DOWNLOAD_KINDS:
                raise HTTPException(403, "a box downloads only what central addressed to it")
        else:
            staff_of(caller, store)
        path = files.path(store, box, kind, name)
        if path is None or not path.is_file():
            raise HTTPException(404, f"no {kind} named {name} for {store}/{box}")
        return FileResponse(path, media_type="application/octet-stream")

    @routes.get("/boxes/{store}/{box}/files")
    def listing(store: StorePath, box: StorePath, caller: Staff) -> list[dict]:
        staff_of(caller, store)
        return files.listing(store, box)

    @routes.post("/boxes/{store}/{box}/control/snapshot", status_code=202, response_model=Requested)
    def snapshot(store: StorePath, box: StorePath, caller: Staff) -> Requested:
        """Ask the box for a picture of its camera's view; it uploads it as a snapshot."""
        staff_of(caller, store)
        request_id = secrets.token_hex(6)
        central.send_control(store, box, SnapshotRequest(issued=db.now(), request_id=request_id))
        return Requested(request_id=request_id)

    @routes.post("/boxes/{store}/{box}/desired", status_code=202, response_model=Sent,
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": DesiredBody.model_json_schema()}}}})  # fmt: skip
    async def desired(request: Request, store: StorePath, box: StorePath, caller: Staff) -> Sent:
        """Send the box a bundle from central's bundles folder: packed, kept once, addressed to the box, and
        named in the box's `desired` control message (the box downloads and checks it)."""
        staff_of(caller, store)
        try:  # the body is read here, after the token (central.bodies)
            body = DesiredBody.model_validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, describe(exc)) from None
        return await run_in_threadpool(_send_bundle, store, box, body)

    def _send_bundle(store: str, box: str, body: DesiredBody) -> Sent:
        folder = bundles_dir / body.bundle if bundles_dir is not None else None
        if folder is None or not (folder / "manifest.json").is_file():
            raise HTTPException(404, f"no bundle named {body.bundle} in central's bundles folder")
        try:
            bundle_id, tar = pack_bundle(folder)
        except ShelfWatchError as exc:
            raise HTTPException(422, str(exc)) from None
        ref = files.address(store, box, "bundle", f"bundle-{bundle_id[:32]}.tar", tar)
        central.send_control(store, box, Desired(issued=db.now(), bundle=ref, bundle_id=bundle_id[:64]))
        return Sent(bundle_id=bundle_id, file=ref.name, size=ref.size, sha256=ref.sha256)

    return routes
