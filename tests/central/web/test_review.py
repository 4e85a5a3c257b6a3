"""Reviewing a clip through its HTTP API, as the result page's editor and a script use it: the box's prediction is
version 0 and stays; each save is a new version with its provenance; bad labels are refused with the reason; a
clip in review leaves the web pages' work folder for central's data directory; a verified clip downloads as our
JSON and as MERL's .mat; another store's token neither sees nor edits it; deleting is explicit.

The analysis is a finished job folder written here (what the worker leaves), so no agent has to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central import auth
from central.api import create_app, principal_dependency
from central.review import Reviews
from central.web.app import mount_web
from central.web.config import WebConfig
from central.web.results import Analysis, ShelfChange, TimelineSegment, write_label_files
from central.web.worker import LABELS_JSON, LABELS_MAT, RESULT, JobSpec
from tests.central.web.conftest import REPO
from training.merl import read_merl_labels

CLIP = "0123456789abcdef"
FRAMES = 300


def finished_analysis(work: Path, clip_id: str = CLIP, store: str | None = "s1") -> Path:
    """A job folder as the worker leaves it: the upload, its spec, the result (a reach, a hand in the shelf, a
    retract; one pick of a cola can by shopper 1) and an annotated video."""
    folder = work / clip_id
    folder.mkdir(parents=True)
    video = folder / "upload.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 stand-in for a video")
    (folder / "annotated.mp4").write_bytes(b"annotated")
    spec = JobSpec(video=video, name="aisle 3.mp4", bundle=REPO / "models" / "demo", fps=30.0, frames=FRAMES,
                   width=640, height=480, store=store)  # fmt: skip
    (folder / "job.json").write_text(spec.model_dump_json())
    segments = [TimelineSegment(action=a, start=s, end=e, shopper=1, confidence=0.8)
                for a, s, e in (("reach_to_shelf", 40, 70), ("hand_in_shelf", 70, 100),
                                ("retract_from_shelf", 100, 130))]  # fmt: skip
    changes = [ShelfChange(kind="pick", sku="sku00", name="Cola can", frame=110, quantity=1, shopper=1,
                           confidence=0.9)]  # fmt: skip
    analysis = Analysis(video="aisle 3.mp4", fps=30.0, frames=FRAMES, width=640, height=480, seconds=10.0, took_s=1.0,
                        agent_fps=300.0, classes=[], segments=segments, changes=changes, baskets={"1": {"Cola can": 1}},
                        shoppers=[1], per_class=[], events=4)  # fmt: skip
    (folder / RESULT).write_text(analysis.model_dump_json())
    write_label_files(analysis, folder / LABELS_JSON, folder / LABELS_MAT)
    return folder


class Site:
    """Central's app with the pages, as `central run` serves them, and a client per token."""

    def __init__(self, central, tmp_path: Path) -> None:
        self.central, self.work, self.data = central, tmp_path / "work", tmp_path / "data"
        self.work.mkdir()
        finished_analysis(self.work)
        finished_analysis(self.work, "fedcba9876543210", store=None)  # a chain-wide token's analysis
        self.app = create_app(central)
        config = WebConfig(bundles_dir=REPO / "models", default_bundle=REPO / "models" / "demo", work_dir=self.work)
        self.jobs = mount_web(self.app, config, central=central, auth_dependency=principal_dependency(central),
                              reviews=Reviews(central.engine, self.data))  # fmt: skip

    def client(self, store: str | None) -> tuple[TestClient, str]:
        token_id, token = auth.create(self.central.engine, store, "tests")
        client = TestClient(self.app)
        client.headers["Authorization"] = f"Bearer {token}"
        return client, token_id


@pytest.fixture
def site(central, tmp_path):
    s = Site(central, tmp_path)
    yield s
    s.jobs.close()


def url(tail: str = "", clip: str = CLIP) -> str:
    return f"/web/api/analyses/{clip}{tail}"


def edited(labels: dict, **changes: object) -> dict:
    """The labels as the editor sends them: without frame_classes (they follow from the segments)."""
    return {**{k: v for k, v in labels.items() if k != "frame_classes"}, **changes}


def test_a_correction_is_a_new_version_and_the_prediction_stays(site):
    staff, token_id = site.client("s1")
    review = staff.get(url("/review")).json()
    assert review["state"] == "predicted" and review["latest"] == 0 and review["can_edit"]
    assert {"sku": "sku00", "name": "Cola can"} in review["catalog"]
    predicted = staff.get(url("/labels")).json()
    assert [(s["label"], s["start"], s["end"]) for s in predicted["segments"]] == [
        ("reach_to_shelf", 40, 70), ("hand_in_shelf", 70, 100), ("retract_from_shelf", 100, 130)]  # fmt: skip
    assert predicted["ledger"] == [{"frame": 110, "shopper": 1, "sku": "sku00", "kind": "take"}]
    bundle = json.loads((REPO / "models" / "demo" / "manifest.json").read_text())["bundle_id"]
    assert predicted["review"] == {"clip": CLIP, "version": 0, "prediction": bundle}

    # The reviewer: the hand in the shelf was an inspection of the shelf, the retract ends at 125, and a second
    # can was taken at frame 150.
    segments = [{**s, "label": "inspect_shelf"} if s["label"] == "hand_in_shelf" else s for s in predicted["segments"]]
    segments[-1] = {**segments[-1], "end": 125}
    ledger = [*predicted["ledger"], {"frame": 150, "shopper": 1, "sku": "sku01", "kind": "take"}]
    saved = staff.put(url("/labels"), json=edited(predicted, segments=segments, ledger=ledger))
    assert saved.status_code == 200, saved.text
    assert saved.json()["state"] == "in_review" and saved.json()["latest"] == 1

    latest = staff.get(url("/labels")).json()
    assert latest["segments"] == segments and latest["ledger"] == ledger
    assert latest["frame_classes"][70:100] == [5] * 30 and latest["frame_classes"][125] == 0
    assert latest["baskets"] == [{"shopper": 1, "items": {"sku00": 1, "sku01": 1}}]
    review = latest["review"]
    assert (review["clip"], review["version"], review["based_on"], review["saved_by"]) == (CLIP, 1, 0, token_id)
    assert review["prediction"] == predicted["review"]["prediction"] and review["saved_at"]
    assert staff.get(url("/labels?version=0")).json() == predicted  # never overwritten

    # The clip left the work folder (it no longer counts toward keep_analyses) for central's data directory, and
    # its page, video and downloads are served from there.
    assert not (site.work / CLIP).exists() and site.jobs.get(CLIP) is None
    kept = site.data / "reviews" / "s1" / CLIP
    assert (kept / "upload.mp4").is_file() and (kept / RESULT).is_file()
    assert staff.get(url()).json()["state"] == "done"
    assert staff.get(url("/video")).content == b"annotated"
    assert staff.get(url("/download/labels.json")).status_code == 200  # the prediction, as before


def test_bad_labels_are_refused_with_the_reason(site):
    staff, _ = site.client("s1")
    labels = staff.get(url("/labels")).json()
    seg = labels["segments"][0]
    cases = {
        "segments": ([{**seg, "start": 280, "end": 320}], "segment 280-320 ends after the video's 300 frames"),
        "label": ([{**seg, "label": "dancing"}], "segment label 'dancing' is not an action class"),
        "sku": ([{"frame": 10, "sku": "sku99", "kind": "take"}], "names SKU 'sku99', which is not in the clip's "
                "catalogue"),
        "late pick": ([{"frame": 300, "sku": "sku00", "kind": "take"}], "outside the clip's 300 frames"),
    }  # fmt: skip
    for case, (value, reason) in cases.items():
        field = "ledger" if case in ("sku", "late pick") else "segments"
        refused = staff.put(url("/labels"), json=edited(labels, **{field: value}))
        assert refused.status_code == 422 and reason in refused.json()["detail"], (case, refused.text)
    refused = staff.put(url("/labels"), json=edited(labels, frame_count=301))
    assert refused.status_code == 422 and refused.json()["detail"] == "the labels have 301 frames; the clip has 300"
    refused = staff.put(url("/labels"), json=edited(labels, colour="red"))
    assert refused.status_code == 422 and "colour: Extra inputs are not permitted" in refused.json()["detail"]
    refused = staff.put(url("/labels"), content=b"{not json", headers={"Content-Type": "application/json"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("the body is not JSON")
    bad_classes = dict(labels, frame_classes=[0] * FRAMES)  # given, they must follow the segments
    refused = staff.put(url("/labels"), json=bad_classes)
    assert refused.status_code == 422 and "frame 40 is no_action in frame_classes but reach_to_shelf" in refused.text
    # Nothing refused was kept: the clip is still a plain analysis.
    assert staff.get(url("/review")).json()["state"] == "predicted" and (site.work / CLIP).is_dir()


def test_a_stale_edit_is_refused_and_verification_freezes_a_version(site):
    staff, token_id = site.client("s1")
    labels = staff.get(url("/labels")).json()
    assert staff.put(url("/labels"), json=edited(labels)).json()["latest"] == 1  # based on version 0
    stale = staff.put(url("/labels"), json=edited(labels))  # still says version 0
    assert stale.status_code == 409 and "version 1 was saved since version 0 was opened" in stale.json()["detail"]
    script = {k: v for k, v in edited(labels).items() if k != "review"}  # no review block: no check
    assert staff.put(url("/labels"), json=script).json()["latest"] == 2
    assert staff.post(url("/verify?version=1")).status_code == 409
    verified = staff.post(url("/verify?version=2")).json()
    assert (verified["state"], verified["verified_version"], verified["verified_by"]) == ("verified", 2, token_id)

    ours = staff.get(url("/verified/labels.json"))
    assert ours.status_code == 200 and "attachment" in ours.headers["content-disposition"]
    assert json.loads(ours.content)["review"]["version"] == 2
    mat = Path(site.data / "dl_label.mat")
    mat.write_bytes(staff.get(url("/verified/labels_label.mat")).content)
    assert [(s.name, s.start, s.end) for s in read_merl_labels(mat, frame_count=FRAMES).segments] == [
        ("reach_to_shelf", 40, 70), ("hand_in_shelf", 70, 100), ("retract_from_shelf", 100, 130)]  # fmt: skip

    # A later correction is a new version and puts the clip back in review: verified means the latest is right.
    again = staff.put(url("/labels"), json=edited(staff.get(url("/labels")).json()))
    assert again.json()["state"] == "in_review" and again.json()["latest"] == 3
    assert staff.get(url("/verified/labels.json")).status_code == 409


def test_a_clip_never_corrected_is_verified_as_predicted(site):
    staff, token_id = site.client("s1")
    verified = staff.post(url("/verify?version=0")).json()  # as the page does: it showed the prediction
    assert (verified["state"], verified["latest"], verified["verified_version"]) == ("verified", 1, 1)
    labels = staff.get(url("/labels")).json()
    predicted = staff.get(url("/labels?version=0")).json()
    assert labels["segments"] == predicted["segments"] and labels["review"]["saved_by"] == token_id


def test_timestamp_labels_are_kept_and_have_no_mat(site):
    staff, _ = site.client("s1")
    labels = staff.get(url("/labels")).json()
    stamps = [{"frame": 20, "label": "no_action"}, {"frame": 55, "label": "reach_to_shelf"},
              {"frame": 85, "label": "inspect_shelf"}, {"frame": 200, "label": "no_action"}]  # fmt: skip
    saved = staff.put(url("/labels"), json=edited(labels, segments=[], timestamps=stamps))
    assert saved.status_code == 200, saved.text
    kept = staff.get(url("/labels")).json()
    assert kept["timestamps"] == stamps and kept["segments"] == []
    assert kept["frame_classes"][55] == 1 and kept["frame_classes"][56] == -1
    both = staff.put(url("/labels"), json=edited(labels, timestamps=stamps))
    assert both.status_code == 422 and "segments or timestamps, not both" in both.json()["detail"]
    staff.post(url("/verify"))
    assert staff.get(url("/verified/labels_label.mat")).status_code == 409


def test_another_stores_token_neither_sees_nor_edits_it(site):
    staff, _ = site.client("s1")
    labels = staff.get(url("/labels")).json()
    other, _ = site.client("s2")
    for attempt in (lambda: other.get(url("/review")), lambda: other.get(url("/labels")),
                    lambda: other.put(url("/labels"), json=edited(labels)), lambda: other.post(url("/verify")),
                    lambda: other.delete(url()), lambda: other.get(url("/video"))):  # fmt: skip
        assert attempt().status_code == 404
    staff.put(url("/labels"), json=edited(labels))  # now kept in the data directory: the same for it
    for attempt in (lambda: other.get(url("/labels")), lambda: other.post(url("/verify")), lambda: other.delete(url())):
        assert attempt().status_code == 404
    assert other.get("/web/api/reviews").json() == []
    assert [r["clip"] for r in staff.get("/web/api/reviews").json()] == [CLIP]
    chain, _ = site.client(None)  # head office sees every store's
    assert [r["clip"] for r in chain.get("/web/api/reviews?state=in_review").json()] == [CLIP]
    # A box's own token is refused outright.
    box = TestClient(site.app)
    box.headers["Authorization"] = f"Bearer {box_token(site)}"
    assert box.get(url("/labels")).status_code == 403


def box_token(site: Site) -> str:
    from edge.tokens import digest, mint

    token_id, secret, token = mint()
    entry = {"token_id": token_id, "secret_sha256": digest(secret), "store": "s1", "box": "aisle-3"}
    auth.import_box_tokens(site.central.engine, json.dumps([entry]))
    return token


def test_a_clip_of_no_store_cannot_be_kept(site):
    chain, _ = site.client(None)
    clip = "fedcba9876543210"
    review = chain.get(url("/review", clip)).json()
    assert review["can_edit"] is False and "belongs to no store" in review["why_not"]
    labels = chain.get(url("/labels", clip)).json()
    refused = chain.put(url("/labels", clip), json=edited(labels))
    assert refused.status_code == 409 and "belongs to no store" in refused.json()["detail"]


def test_deleting_a_kept_clip_is_explicit(site):
    staff, _ = site.client("s1")
    refused = staff.delete(url())
    assert refused.status_code == 409 and "only a clip in review or verified" in refused.json()["detail"]
    staff.post(url("/verify"))
    assert staff.delete(url()).status_code == 204
    assert staff.get(url("/review")).status_code == 404
    assert not (site.data / "reviews" / "s1" / CLIP).exists()
    with site.central.engine.connect() as conn:
        from central import db

        assert db.count(conn, db.review_clips) == 0 and db.count(conn, db.label_versions) == 0


def test_the_labels_api_is_in_the_openapi_document(site):
    paths = site.app.openapi()["paths"]
    assert set(paths["/web/api/analyses/{job_id}/labels"]) == {"get", "put"}
    assert paths["/web/api/analyses/{job_id}/labels"]["put"]["requestBody"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/LabelFile"}  # fmt: skip
    assert "/web/api/analyses/{job_id}/verify" in paths
    assert "LabelFile" in site.app.openapi()["components"]["schemas"]


def test_kept_clips_come_back_after_a_restart(site, central, tmp_path):
    staff, _ = site.client("s1")
    staff.put(url("/labels"), json=edited(staff.get(url("/labels")).json()))
    site.jobs.close()
    again = Site.__new__(Site)  # the same folders, a new server
    again.central, again.work, again.data = central, site.work, site.data
    again.app = create_app(central)
    config = WebConfig(bundles_dir=REPO / "models", default_bundle=REPO / "models" / "demo", work_dir=site.work)
    again.jobs = mount_web(again.app, config, central=central, auth_dependency=principal_dependency(central),
                           reviews=Reviews(central.engine, site.data))  # fmt: skip
    try:
        client, _ = again.client("s1")
        assert client.get(url("/review")).json()["state"] == "in_review"
        assert again.jobs.get(CLIP) is None  # not back in the queue: still outside keep_analyses
    finally:
        again.jobs.close()
