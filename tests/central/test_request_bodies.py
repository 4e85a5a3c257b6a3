"""Issue 21.2: nobody unauthenticated costs `central run` memory or disk, and every size limit holds while a body
streams in (chunked or not). Measured on the real process: its peak resident memory (VmHWM) and the bytes it
wrote (wchar), while 100-200 MB bodies are sent at it."""

from __future__ import annotations

import pytest

from tests.central.hostile import MB, Meter, filler, folder_bytes, multipart, request
from tests.central.web.conftest import Server, central_with_pages
from tests.conftest import Broker

UPLOAD_MB = 20  # the web config's max_upload_mb in these tests
# What one refused request may cost central: a few read buffers of memory, and only the answer written.
MEMORY_SLACK = 10 * MB
WRITE_SLACK = 1 * MB


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    folder = tmp_path_factory.mktemp("central")
    broker = Broker(folder / "broker")
    broker.start()
    server = central_with_pages(folder, broker.port, max_upload_mb=UPLOAD_MB)
    server.token, server.meter = server.tokens["s1"], Meter(server.proc.pid)
    yield server
    server.stop()
    broker.stop()


def spent(central: Server, send) -> tuple[object, int, int, int]:
    """Send, and measure what it cost: (answer, growth of peak memory, bytes written, bytes left on disk)."""
    peak, written = central.meter.peak_bytes(), central.meter.written_bytes()
    answer = send()
    disk = folder_bytes(central.folder / "tmp") + folder_bytes(central.folder / "work")
    return answer, central.meter.peak_bytes() - peak, central.meter.written_bytes() - written, disk


FORM = "multipart/form-data; boundary=xyz"


def test_without_a_token_a_body_costs_neither_memory_nor_disk(central):
    # 200 MB to the recent-clip form (it once went to /tmp before the 401): refused before a byte is read.
    answer, memory, written, disk = spent(central, lambda: request(
        central.url, "POST", "/web/api/analyses/clip", {"Content-Type": FORM},
        multipart("xyz", {"clip": "c.mp4"}, "file", 200 * MB)))  # fmt: skip
    assert answer.status == 401, answer
    assert memory < MEMORY_SLACK and written < WRITE_SLACK and disk == 0, (memory, written, disk)
    # 100 MB of chunked JSON to /pos (central once grew by 200 MB before the 401).
    answer, memory, written, disk = spent(central, lambda: request(
        central.url, "POST", "/pos", {"Content-Type": "application/json"},
        filler(100 * MB, b'{"type": "item", "sku": "')))  # fmt: skip
    assert answer.status == 401, answer
    assert memory < MEMORY_SLACK and written < WRITE_SLACK, (memory, written)
    # The same with a Content-Length that lies low: what arrives past it is not read either.
    answer, memory, written, disk = spent(central, lambda: request(
        central.url, "POST", "/web/api/analyses", {"Content-Type": FORM, "Content-Length": "100"},
        multipart("xyz", {}, "file", 200 * MB), chunked=False))  # fmt: skip
    assert answer.status in (401, 400), answer  # 400: the server took the bytes past the body for a broken request
    assert memory < MEMORY_SLACK and written < WRITE_SLACK and disk == 0, (memory, written, disk)


def test_with_a_token_every_limit_holds_while_the_body_streams(central):
    auth = {"Authorization": f"Bearer {central.token}"}
    # 200 MB chunked upload, limit 20 MB: refused once the limit is passed; what was written is deleted.
    answer, memory, written, disk = spent(central, lambda: request(
        central.url, "POST", "/web/api/analyses", {**auth, "Content-Type": FORM},
        multipart("xyz", {"bundle": "demo"}, "file", 200 * MB)))  # fmt: skip
    assert answer.status == 413, answer
    assert written < UPLOAD_MB * MB + WRITE_SLACK and disk == 0 and memory < MEMORY_SLACK, (written, disk, memory)
    # 100 MB of chunked JSON to /pos, whose limit is 16 KB.
    answer, memory, written, _ = spent(central, lambda: request(
        central.url, "POST", "/pos", {**auth, "Content-Type": "application/json"},
        filler(100 * MB, b'{"type": "item", "sku": "')))  # fmt: skip
    assert answer.status == 413, answer
    assert memory < MEMORY_SLACK and written < WRITE_SLACK, (memory, written)
    # The measurement sees writes: a 3 MB upload under the limit is written once, to the analysis's folder (it
    # is not a video, so it is refused after the check and deleted).
    answer, memory, written, disk = spent(central, lambda: request(
        central.url, "POST", "/web/api/analyses", {**auth, "Content-Type": FORM},
        multipart("xyz", {"bundle": "demo"}, "file", 3 * MB, file_head=b"\x00\x00\x00\x18ftypmp42")))  # fmt: skip
    assert answer.status == 400 and b"damaged" in answer.body, answer
    assert 3 * MB <= written < 3 * MB + WRITE_SLACK and disk == 0, (written, disk)


def test_no_route_that_needs_a_token_takes_its_body_as_a_parameter(tmp_path):
    """FastAPI reads a body parameter before it runs the route's dependencies, so a route that takes one reads
    anybody's body before the token is checked. Only the login form, which needs no token, may."""
    from fastapi.routing import APIRoute

    from central.api import create_app, principal_dependency
    from central.db import connect
    from central.files import FileStore
    from central.service import Central
    from central.web.app import mount_web
    from central.web.config import WebConfig

    central = Central(connect(f"sqlite:///{tmp_path / 'central.db'}"))
    app = create_app(central, FileStore(central.engine, tmp_path / "data"), tmp_path / "bundles")  # the channel too
    jobs = mount_web(app, WebConfig(work_dir=tmp_path / "work"), central=central,
                     auth_dependency=principal_dependency(central))  # fmt: skip

    def routes(found: list) -> list[APIRoute]:  # an included router holds its own routes (FastAPI >= 0.160)
        out = []
        for r in found:
            if isinstance(r, APIRoute):
                out.append(r)
            elif hasattr(r, "original_router"):
                out += routes(r.original_router.routes)
        return out

    try:
        every = routes(app.routes)
    finally:
        jobs.close()
    posts = {r.path for r in every if r.methods & {"POST", "PUT", "PATCH", "DELETE"}}
    with_body = {r.path for r in every if r.body_field is not None}
    assert {"/pos", "/web/api/analyses", "/web/api/analyses/clip", "/login", "/boxes/{store}/{box}/desired",
            "/boxes/{store}/{box}/files/{kind}/{name}"} <= posts  # fmt: skip
    assert with_body == {"/login"}
