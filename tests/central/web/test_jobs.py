"""The analysis API without a browser: uploads queue behind the running one and each gets its result; with a
token, the API answers 401 and a page sends the browser to the login page; `shelfwatch web` refuses to serve
the network without a token; the web config is as strict as every config."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from central.web.app import create_web_app, mount_web
from central.web.auth import static_token
from central.web.config import WebConfig, load_web_config
from central.web.jobs import Job, JobQueue
from central.web.worker import ERROR
from edge.errors import ShelfWatchError
from tests.central.web.conftest import REPO
from training.synth.generate import VideoSpec, write_video


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    labels = write_video(VideoSpec(seed=1000, index=6, frames=60, width=320, height=240),
                         tmp_path_factory.mktemp("short"))[0]  # fmt: skip
    return labels.with_name(labels.name.replace(".labels.json", ".mp4"))


def config(tmp_path: Path) -> WebConfig:
    return WebConfig(bundles_dir=REPO / "models", default_bundle=REPO / "models" / "demo", work_dir=tmp_path / "w",
                     workers=1)  # fmt: skip


def test_uploads_queue_behind_the_running_one_and_all_finish(tmp_path, short_clip):
    app, jobs = create_web_app(config(tmp_path))
    try:
        client = TestClient(app)
        views = []
        for name in ("<img src=x onerror=alert(1)>.mp4", "clip.mp4"):  # a file name is shown, never interpreted
            with short_clip.open("rb") as f:
                r = client.post("/web/api/analyses", files={"file": (name, f, "video/mp4")}, data={"bundle": "demo"})
            assert r.status_code == 202, r.text
            views.append(r.json())
        assert [v["ahead"] for v in views] == [0, 1]
        assert views[1]["state"] == "queued"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = [client.get(f"/web/api/analyses/{v['id']}").json()["state"] for v in views]
            if all(s in ("done", "failed") for s in states):
                break
            time.sleep(0.3)
        assert states == ["done", "done"]
        page = client.get(views[1]["url"])
        assert page.status_code == 200 and 'id="player"' in page.text
        listed = client.get("/analyse").text
        assert listed.count("/analyses/") == 2  # listed as recent analyses
        assert "&lt;img src=x onerror=alert(1)&gt;.mp4" in listed and "<img" not in listed
        first = client.get(views[0]["url"]).text
        assert "<img" not in first and "\\u003cimg src=x" in first  # escaped in the page and in its JSON
    finally:
        jobs.close()


def test_unknown_bundle_and_config_names_are_refused(tmp_path, short_clip):
    app, jobs = create_web_app(config(tmp_path))
    try:
        client = TestClient(app)
        with short_clip.open("rb") as f:
            r = client.post("/web/api/analyses", files={"file": ("c.mp4", f)}, data={"bundle": "../../etc"})
        assert r.status_code == 400 and r.json()["detail"] == "no model bundle named '../../etc'"
        with short_clip.open("rb") as f:
            r = client.post("/web/api/analyses", files={"file": ("c.mp4", f)}, data={"box_config": "x"})
        assert r.status_code == 400 and "no box config named" in r.json()["detail"]
        assert client.get("/web/api/analyses/0123456789abcdef").status_code == 404
        assert client.get("/web/api/analyses/..%2F..").status_code in (404, 422)
    finally:
        jobs.close()


def test_with_a_token_the_api_says_401_and_pages_send_to_login(tmp_path):
    app, jobs = create_web_app(config(tmp_path), static_token("a-token-of-sixteen-or-more"))
    try:
        client = TestClient(app, follow_redirects=False)
        assert client.get("/web/api/analyses/0123456789abcdef").status_code == 401
        page = client.get("/analyse", headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=/analyse")
        login = client.post("/login", data={"token": "a-token-of-sixteen-or-more", "next": "https://evil.example/"})
        assert login.headers["location"] == "/"  # never sent off-site
        assert "httponly" in login.headers["set-cookie"].lower()
        assert client.get("/analyse").status_code == 200  # the cookie now carries the token
        bearer = TestClient(app, follow_redirects=False)
        assert bearer.get("/analyse", headers={"Authorization": "Bearer a-token-of-sixteen-or-more"}).status_code == 200
    finally:
        jobs.close()


def test_without_a_bundle_the_page_says_so(tmp_path):
    app = FastAPI()
    jobs = mount_web(app, WebConfig(bundles_dir=tmp_path, default_bundle=tmp_path / "none", work_dir=tmp_path / "w"))
    try:
        page = TestClient(app).get("/analyse")
        assert page.status_code == 200 and "No model bundle is configured here" in page.text
        assert not (tmp_path / "w").exists()  # nothing made until something is uploaded
    finally:
        jobs.close()
    with pytest.raises(ShelfWatchError, match=r"no model bundle at .*none .nor in .*empty.: set default_bundle"):
        create_web_app(WebConfig(bundles_dir=tmp_path / "empty", default_bundle=tmp_path / "none",
                                 work_dir=tmp_path / "w"))  # fmt: skip


def test_shelfwatch_web_serves_the_network_only_with_a_token(shelfwatch, tmp_path):
    r = shelfwatch("web", "--host", "0.0.0.0", "--port", "0", cwd=tmp_path, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == ("shelfwatch: error: --host 0.0.0.0: serving beyond this machine needs --token-file "
                                "(anyone on the network could otherwise upload and watch store video)")  # fmt: skip


def test_web_config_is_strict(tmp_path):
    bad = tmp_path / "web.yaml"
    bad.write_text("max_upload_mb: 10\nmax_upload: 5\n")
    with pytest.raises(ShelfWatchError, match="max_upload: Extra inputs are not permitted"):
        load_web_config(bad)
    bad.write_text("max_video_s: .inf\n")
    with pytest.raises(ShelfWatchError, match="max_video_s"):
        load_web_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("max_upload_mb: 20\nwork_dir: analyses\n")
    assert load_web_config(good) == WebConfig(max_upload_mb=20, work_dir=tmp_path / "analyses")


def test_a_box_config_gives_its_zones_and_never_its_broker(tmp_path, short_clip):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "lane-3.yaml").write_text(
        "store: store-7\nbox: lane-3\ncamera: {source: rtsp://camera.invalid/stream}\nbundle: nowhere\n"
        "zones: [{name: top-shelf, polygon: [[0, 0], [320, 0], [320, 80], [0, 80]]}]\n"
        "mqtt: {host: broker.invalid, port: 8883}\n"  # an analysis publishes nothing
    )
    cfg = config(tmp_path).model_copy(update={"configs_dir": configs})
    app, jobs = create_web_app(cfg)
    try:
        client = TestClient(app)
        assert '<option value="lane-3">lane-3</option>' in client.get("/analyse").text
        with short_clip.open("rb") as f:
            r = client.post("/web/api/analyses", files={"file": ("c.mp4", f)}, data={"box_config": "lane-3"})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while client.get(r.json()["url"].replace("/analyses/", "/web/api/analyses/")).json()["state"] not in (
            "done", "failed") and time.monotonic() < deadline:  # fmt: skip
            time.sleep(0.3)
        view = client.get(f"/web/api/analyses/{r.json()['id']}").json()
        assert view["state"] == "done", view["error"]
        assert "No shelf zones were given" not in client.get(view["url"]).text
        events = client.get(f"/web/api/analyses/{view['id']}/download/events.jsonl").text
        assert '"store":"store-7","box":"lane-3"' in events
    finally:
        jobs.close()


def test_one_stores_staff_see_only_their_stores_analyses(tmp_path, short_clip):
    from central import auth
    from central.api import create_app, principal_dependency
    from central.db import connect
    from central.service import Central

    central = Central(connect(f"sqlite:///{tmp_path / 'central.db'}"))
    tokens = {who: auth.create(central.engine, store, "staff")[1] for who, store in
              (("s1", "s1"), ("s2", "s2"), ("chain", None))}  # fmt: skip
    app = create_app(central)
    jobs = mount_web(app, config(tmp_path), central=central, auth_dependency=principal_dependency(central))
    try:
        as_ = {who: TestClient(app, headers={"Authorization": f"Bearer {t}"}) for who, t in tokens.items()}
        with short_clip.open("rb") as f:
            job = as_["s1"].post("/web/api/analyses", files={"file": ("aisle.mp4", f, "video/mp4")}).json()
        url = f"/web/api/analyses/{job['id']}"
        assert as_["s1"].get(url).status_code == 200 and as_["chain"].get(url).status_code == 200
        assert as_["s2"].get(url).status_code == 404  # another store's analysis is not there for them
        assert as_["s2"].get(f"{url}/video").status_code == 404
        assert "aisle.mp4" in as_["s1"].get("/analyse").text and "aisle.mp4" not in as_["s2"].get("/analyse").text
    finally:
        jobs.close()


def test_symbolic_links_lead_nowhere_outside_their_folders(tmp_path, short_clip, shelfwatch):
    """Issue 21.8: a link in clips_dir, bundles_dir or configs_dir was followed out of it, and so was a link among a
    bundle's files. None is offered or loaded now; a plain clip and bundle beside them still are."""
    import shutil

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(short_clip, outside / "elsewhere.mp4")
    (outside / "other.yaml").write_text("store: s9\nbox: b9\ncamera: {source: '0'}\nbundle: x\n")
    shutil.copytree(REPO / "models" / "demo", outside / "bundle")
    clips, bundles, configs = tmp_path / "clips", tmp_path / "bundles", tmp_path / "configs"
    for folder in (clips, bundles, configs):
        folder.mkdir()
    shutil.copy(short_clip, clips / "plain.mp4")
    (clips / "linked.mp4").symlink_to(outside / "elsewhere.mp4")
    (configs / "linked.yaml").symlink_to(outside / "other.yaml")
    (bundles / "linked").symlink_to(outside / "bundle")
    shutil.copytree(REPO / "models" / "demo", bundles / "one-file-out")  # a real folder, one file a link out of it
    detector = bundles / "one-file-out" / "detector.onnx"
    detector.unlink()
    detector.symlink_to(outside / "bundle" / "detector.onnx")  # the same bytes: its sha256 matches
    cfg = config(tmp_path).model_copy(update={"clips_dir": clips, "bundles_dir": bundles, "configs_dir": configs})
    app, jobs = create_web_app(cfg)
    try:
        client = TestClient(app)
        page = client.get("/analyse").text
        assert "plain.mp4" in page and "linked" not in page
        for form, refused in [
            ({"clip": "linked.mp4"}, "no recent clip named 'linked.mp4'"),
            ({"clip": "plain.mp4", "bundle": "linked"}, "no model bundle named 'linked'"),
            ({"clip": "plain.mp4", "box_config": "linked"}, "no box config named 'linked'"),
        ]:
            answer = client.post("/web/api/analyses/clip", data=form)
            assert answer.status_code == 400 and answer.json()["detail"] == refused, answer.text
        assert client.post("/web/api/analyses/clip", data={"clip": "plain.mp4"}).status_code == 202
    finally:
        jobs.close()
    result = shelfwatch("edge", "run", "--bundle", bundles / "one-file-out", "--source", clips / "plain.mp4",
                        "--outbox", tmp_path / "outbox.sqlite", timeout=120)  # fmt: skip
    said = f"{bundles / 'one-file-out'}: detector.onnx is a symbolic link; a bundle's files are plain files in it"
    assert result.returncode == 2 and result.stderr == f"shelfwatch: error: {said}\n"


def test_a_clip_too_small_is_named_by_its_name_never_by_the_servers_path(tmp_path):
    """Issue 21.8: a 1x1 video's error once printed where the server keeps uploads. Whatever refuses it (the upload's
    check, or the analysis), the user reads the clip's name."""
    from tests.edge.test_video import write_grey_video

    tiny = tmp_path / "tiny.avi"
    write_grey_video(tiny, (1, 1))
    cfg = config(tmp_path)
    app, jobs = create_web_app(cfg)
    try:
        client = TestClient(app)
        with tiny.open("rb") as f:
            answer = client.post("/web/api/analyses", files={"file": ("tiny.avi", f, "video/x-msvideo")})
        said = answer.json()["detail"] if answer.status_code != 202 else None
        deadline = time.monotonic() + 60
        while said is None and time.monotonic() < deadline:
            view = client.get(f"/web/api/analyses/{answer.json()['id']}").json()
            said = view["error"] if view["state"] == "failed" else None
            time.sleep(0.2)
        assert said is not None and "its frames are 1x1, too small to watch a shelf" in said, said
        assert said.startswith("tiny.avi: ") and str(cfg.work_dir.resolve()) not in said and "upload" not in said, said
    finally:
        jobs.close()
    # What the analysis itself says about its files goes through the same rule.
    from central.web.worker import JobSpec, private

    job = cfg.work_dir / "0123456789abcdef"
    spec = JobSpec(video=job / "upload.avi", name="tiny.avi", bundle=REPO / "models" / "demo", fps=30, frames=30,
                   width=1, height=1)  # fmt: skip
    assert private(f"{job / 'upload.avi'}: its frames are 1x1; {REPO / 'models' / 'demo'}: no", spec, job) == (
        "tiny.avi: its frames are 1x1; demo: no")  # fmt: skip


def test_a_failed_analysis_is_never_seen_without_its_reason(tmp_path):
    """A page polls an analysis from another thread while its worker ends: whenever the page reads "failed", the reason
    is already there (it reads the state first, as `central.web.analyses.view` does)."""
    seen: list[tuple[str, str | None]] = []

    class Watched(Job):
        def __setattr__(self, name: str, value: object) -> None:
            super().__setattr__(name, value)
            if name in ("state", "error"):
                seen.append((self.state, getattr(self, "error", None)))

    folder = tmp_path / "job"
    folder.mkdir()
    (folder / ERROR).write_text('{"error": "the clip has no frames"}')
    job = Watched("j1", folder, "clip.mp4", 0.0)
    queue = JobQueue(config(tmp_path))
    try:
        queue._settle(job)  # what the queue does once a worker's process has ended
    finally:
        queue.close()
    assert job.state == "failed" and job.error == "the clip has no frames"
    assert all(error is not None for state, error in seen if state == "failed"), seen
