"""The zone editor's API (`central.web.zones`) on `shelfwatch web`'s app, no browser: the box's zones as saved,
the check the page shows in red (the box config's own geometry check), Save into the store folder (comments kept,
`config validate` passes), an installer's still or clip as the picture, and another store's box out of reach.
The browser, the box's snapshot and Try it: tests/central/web/test_zones_browser.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from central import db
from central.web.app import create_web_app, mount_web
from central.web.config import WebConfig
from firmware_config.store import validate_path
from tests.central.web.conftest import REPO
from tests.clips import bars_clip
from tests.firmware_config.test_store import copy_example

API = "/web/api/zones/example-store/aisle1-left"
LEFT = [[0, 0], [320, 0], [320, 172], [0, 172]]
RIGHT = [[320, 0], [640, 0], [640, 172], [320, 172]]


@pytest.fixture
def editor(tmp_path):
    store = copy_example(tmp_path / "stores")
    config = WebConfig(stores_dir=store.parent, work_dir=tmp_path / "work", default_bundle=REPO / "models" / "demo",
                       bundles_dir=REPO / "models")  # fmt: skip
    app, jobs = create_web_app(config)
    with TestClient(app) as client:
        client.store = store
        yield client
    jobs.close()


def layout(*zones: tuple[str, list], size: tuple[int, int] | None = (640, 480)) -> dict:
    return {"zones": [{"name": n, "polygon": p} for n, p in zones], "frame_size": size}


def test_the_box_as_saved_its_catalogue_by_name_and_the_page(editor):
    state = editor.get(API).json()
    assert state["zones"] == [{"name": "shelf", "polygon": [[0, 0], [640, 0], [640, 172], [0, 172]], "slots": []}]
    assert {"sku": "4000000000001", "name": "Cola can"} in state["catalogue"] and not state["can_snapshot"]
    assert [c["name"] for c in state["catalogue"]][:2] == ["Cherry soda can", "Coffee jar"]  # by name
    page = editor.get("/zones/example-store/aisle1-left")
    assert page.status_code == 200 and "zones.js" in page.text
    listing = editor.get("/zones").text
    assert (
        'href="/zones/example-store/aisle1-left"' in listing and 'href="/zones/example-store/aisle1-right"' in listing
    )
    assert editor.get("/web/api/zones/example-store/no-such-box").status_code == 404
    assert editor.post(f"{API}/snapshot").status_code == 404  # a laptop's `shelfwatch web` has no boxes to ask


def test_the_check_names_each_problem_and_its_zone(editor):
    bow_tie = [[0, 0], [100, 100], [100, 0], [0, 100]]
    outside, inside_a = [[0, 0], [700, 0], [700, 50]], [[300, 0], [400, 0], [400, 50]]
    found = editor.post(f"{API}/check", json=layout(("a", LEFT), ("b", bow_tie), ("c", outside), ("d", inside_a),
                                                     ("A b", RIGHT)))  # fmt: skip
    assert found.status_code == 200
    assert found.json()["problems"] == [
        {"zone": 4, "slot": None, "message": "a name is lower-case letters, digits, - and _"},
        {"zone": 1, "slot": None, "message": "crosses itself (the edge from corner 1 to 2 meets the edge from corner "
         "3 to 4)"},
        {"zone": 2, "slot": None, "message": "corner 2 (700, 0) is outside the 640x480 picture"},
        {"zone": 3, "slot": None, "message": "overlaps zone 'a'"},
    ]  # fmt: skip
    assert editor.post(f"{API}/check", json=layout(("a", LEFT), ("b", RIGHT))).json() == {"problems": []}
    assert editor.post(f"{API}/check", json={"zones": "no"}).status_code == 422


def test_save_writes_the_box_file_with_its_comments_and_refuses_a_bad_layout(editor):
    box = editor.store / "boxes" / "aisle1-left.yaml"
    before = box.read_text()
    refused = editor.put(API, json=layout(("a", LEFT), ("b", LEFT)))
    assert refused.status_code == 422 and refused.json()["detail"]["problems"][0]["message"] == "overlaps zone 'a'"
    assert box.read_text() == before
    body = layout(("left", LEFT), ("right", RIGHT))
    body["zones"][0]["slots"] = [{"sku": "4000000000005", "polygon": [[10, 10], [80, 10], [80, 90], [10, 90]]}]
    saved = editor.put(API, json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"saved": "example-store/boxes/aisle1-left.yaml", "zones": 2}
    text = box.read_text()
    assert "# the shelf as seen by this camera" in text and "  - name: right\n" in text
    assert validate_path(editor.store) == (2, [])
    state = editor.get(API).json()
    assert [z["name"] for z in state["zones"]] == ["left", "right"] and state["frame_size"] == [640, 480]
    assert state["zones"][0]["slots"][0]["sku"] == "4000000000005"


def test_an_installer_uploads_a_still_or_a_clip_to_draw_on(editor, tmp_path):
    still = tmp_path / "still.jpg"
    cv2.imwrite(str(still), np.full((480, 640, 3), 120, np.uint8))
    got = editor.post(f"{API}/upload", files={"file": ("still.jpg", still.read_bytes(), "image/jpeg")})
    assert got.status_code == 201, got.text
    assert got.json()["width"] == 640 and got.json()["clip"] is None and not got.json()["busy"]
    picture = editor.get(got.json()["url"])
    assert picture.status_code == 200 and picture.content[:3] == b"\xff\xd8\xff"
    clip = bars_clip(tmp_path / "clip.mp4", 320, 240, frames=20)  # bars that never stop moving: no quiet frame
    got = editor.post(f"{API}/upload", files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert got.status_code == 201, got.text
    assert got.json()["busy"] and got.json()["clip"].endswith(".mp4") and got.json()["width"] == 320
    state = editor.get(API).json()
    assert [c["source"] for c in state["clips"]] == ["upload"] and len(state["pictures"]) == 2
    bad = editor.post(f"{API}/upload", files={"file": ("x.jpg", b"\xff\xd8\xffnot a picture", "image/jpeg")})
    assert bad.status_code == 400 and "could not be decoded" in bad.json()["detail"]


def test_another_stores_staff_do_not_reach_the_box(tmp_path):
    store = copy_example(tmp_path / "stores")
    config = WebConfig(stores_dir=store.parent, work_dir=tmp_path / "work")

    class Staff:
        def __init__(self, store: str) -> None:
            self.store = store

    for who, status in (("other-store", 404), ("example-store", 200)):
        app = FastAPI()
        jobs = mount_web(app, config, auth_dependency=lambda who=who: Staff(who))
        with TestClient(app) as client:
            assert client.get(API).status_code == status
            assert client.put(API, json=layout(("a", LEFT))).status_code == (404 if status == 404 else 200)
        jobs.close()


def test_a_layout_of_many_slots_fits_and_a_huge_body_is_refused_while_it_streams(editor):
    slots = [
        {"sku": "4000000000001", "polygon": [[x, 0], [x + 2, 0], [x + 2, 100], [x, 100]]} for x in range(0, 600, 3)
    ]
    body = layout(("left", [[0, 0], [640, 0], [640, 172], [0, 172]]))
    body["zones"][0]["slots"] = slots  # 200 slots: far over the pages' usual 16 KB
    assert editor.post(f"{API}/check", json=body).json() == {"problems": []}
    huge = editor.post(f"{API}/check", content=b"{" + b" " * (600 * 1024) + b"}",
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert huge.status_code == 413


def test_inside_central_the_saved_config_is_sent_to_the_box_as_a_rollout_of_one(central, tmp_path):
    """Save, then send: a config rollout of this box alone (central's engine carries it out, as for a bundle; its
    run through a real box: tests/central/test_rollout*.py), refused while one is running."""
    from central.files import FileStore

    store = copy_example(tmp_path / "stores")
    app = FastAPI()
    config = WebConfig(stores_dir=store.parent, work_dir=tmp_path / "work")
    jobs = mount_web(app, config, central=central, files=FileStore(central.engine, tmp_path / "data", 0))
    try:
        with TestClient(app) as client:
            assert client.put(API, json=layout(("left", LEFT), ("right", RIGHT))).status_code == 200
            sent = client.post(f"{API}/send")
            assert sent.status_code == 202, sent.text
            with central.engine.connect() as conn:
                row = conn.execute(
                    select(db.rollouts).where(db.rollouts.c.rollout_id == sent.json()["rollout_id"])
                ).one()
                boxes = conn.execute(select(db.rollout_boxes.c.store, db.rollout_boxes.c.box)).all()
            assert row.kind == "config" and [z["name"] for z in row.config["zones"]] == ["left", "right"]
            assert row.config["camera"]["frame_size"] == [640, 480] and boxes == [("example-store", "aisle1-left")]
            again = client.post(f"{API}/send")
            assert again.status_code == 409 and "already in a running rollout" in again.json()["detail"]
    finally:
        jobs.close()
