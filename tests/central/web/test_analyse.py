"""Analyse a clip in the browser, as a store's analyst would with `shelfwatch web`: upload a synthetic clip
whose truth is known, follow the progress bar, play the annotated video, and check the timeline, the seeking
and the basket against the clip's labels; bad uploads are refused on the page and break nothing."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import load_bundle
from tests.central.web.conftest import REPO, Server, screenshot, web_config
from tests.clips import bars_clip
from training.labels import read_label_file
from training.merl import read_merl_labels
from training.synth.generate import VideoSpec, write_video

LIMIT_MB = 8  # small limits, so that too large and too long are cheap to make
LIMIT_S = 20


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, dict]:
    """Ten seconds in which, say its labels, one shopper takes one can. The page must show what the analysis found,
    right or wrong; how often the box is right is measured on a seeded range (tests/edge/test_agent_run.py)."""
    folder = tmp_path_factory.mktemp("clip")
    labels = write_video(VideoSpec(seed=1000, index=6, frames=300, width=640, height=480), folder)[0]
    return labels.with_name(labels.name.replace(".labels.json", ".mp4")), json.loads(labels.read_text())


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    (folder / "clips").mkdir()
    server = Server("web", "--port", 0, "--web-config", web_config(folder, max_upload_mb=LIMIT_MB,
                    max_video_s=LIMIT_S, clips_dir=folder / "clips"), pattern=r"(http://127\.0\.0\.1:\d+/)",
                    cwd=folder)  # fmt: skip
    server.work, server.clips = folder / "work", folder / "clips"
    yield server
    server.stop()


def upload(page, url: str, video: Path) -> None:
    page.goto(f"{url}/analyse")
    page.set_input_files("#file", str(video))
    page.click("#analyse")


def test_upload_shows_the_annotated_video_and_its_timeline(web, page, clip):
    video, _ = clip
    upload(page, web.url, video)
    page.wait_for_selector("#progress:not([hidden])")
    page.wait_for_url(f"{web.url}/analyses/*", timeout=120_000)
    screenshot(page, "web-analysis.png")

    # The annotated video plays: H.264 the browser decodes, with a duration, and time moves on.
    player = page.locator("#player")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    assert abs(player.evaluate("v => v.duration") - 10.0) < 0.2
    player.evaluate("v => v.play()")
    page.wait_for_function("document.getElementById('player').currentTime > 0.5", timeout=10_000)
    assert player.evaluate("v => v.error") is None

    # What the analysis found, as its events download gives it: the page shows exactly that.
    base = page.url.replace("/analyses/", "/web/api/analyses/") + "/download/"
    jsonl = page.request.get(base + "events.jsonl").text().splitlines()
    found = [json.loads(line) for line in jsonl]
    # Every action event has its segment in its class's lane, at its frames ...
    shown = page.locator(".lane.class .seg").evaluate_all(
        "els => els.map(e => [e.dataset.action, +e.dataset.start, +e.dataset.end])")  # fmt: skip
    actions = [[e["action"], e["start"], e["end"]] for e in found if e["kind"] == "action"]
    assert actions and sorted(shown) == sorted(actions), (shown, actions)
    # ... and again in the shopper's lane.
    assert page.locator(".lane.shopper .seg").count() == len(shown)

    # Clicking a segment seeks the video to its start, and the playhead follows.
    player.evaluate("v => v.pause()")
    target = page.locator(".lane.class .seg").first
    start = int(target.get_attribute("data-start"))
    target.click()
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {start / 30}) < 0.05")
    page.wait_for_function(f"Math.abs(+document.getElementById('playhead').dataset.frame - {start}) <= 1")
    assert page.locator(".lane.changes .mark.pick").count() == sum(e["kind"] == "pick" for e in found)

    # The basket: what the box's last basket events say each shopper took, by the catalogue's names.
    names = {s.sku: s.name for s in load_bundle(REPO / "models" / "demo").detector.catalog}
    last = {e["shopper"]: e["items"] for e in found if e["kind"] == "basket"}
    items = page.locator(".basket li[data-item]").evaluate_all(
        "els => els.map(e => [+e.closest('.basket').dataset.shopper, e.dataset.item, +e.dataset.count])")  # fmt: skip
    assert sorted(map(tuple, items)) == sorted((shopper, names[sku], n) for shopper, basket in last.items()
                                               for sku, n in basket.items() if n)  # fmt: skip

    # Downloads: the events, and the segments in both label formats, readable by training's own readers.
    csv_rows = page.request.get(base + "events.csv").text().splitlines()
    assert csv_rows[0].startswith("seq,kind,ts") and len(csv_rows) == len(jsonl) + 1
    assert {json.loads(line)["kind"] for line in jsonl} >= {"action", "pick", "basket"}
    folder = web.work / page.url.rsplit("/", 1)[1]
    ours = folder / "dl.labels.json"
    ours.write_bytes(page.request.get(base + "labels.json").body())
    merl = folder / "dl_label.mat"
    merl.write_bytes(page.request.get(base + "labels_label.mat").body())
    segments = [(s.label, s.start, s.end) for s in read_label_file(ours).segments]
    assert sorted(segments) == sorted(map(tuple, shown))
    assert [(s.name, s.start, s.end) for s in read_merl_labels(merl, frame_count=300).segments] == sorted(
        segments, key=lambda s: s[1])  # fmt: skip
    mp4 = page.request.get(base + "annotated.mp4")
    assert mp4.ok and mp4.body()[4:8] == b"ftyp"
    # Held-out synthetic footage is like the model's training: no banner, nothing shaded.
    assert page.locator("#unfamiliar").count() == 0 and page.locator(".timeline .shade").count() == 0

    # On a phone (390 px) the page does not scroll sideways and the timeline's seconds do not run together.
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 844})
        page.reload()
        page.wait_for_selector(".axis span")
        wider = page.evaluate("""() => [...document.querySelectorAll('body *')].filter(
            e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible').map(
            e => e.tagName + '.' + e.className)""")  # fmt: skip (what overflows, for the message)
        assert page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"), (
            width, wider)  # fmt: skip
        boxes = page.locator(".axis span").evaluate_all("els => els.map(e => e.getBoundingClientRect())")
        apart = all(a["right"] + 4 <= b["left"] for a, b in itertools.pairwise(boxes))
        assert len(boxes) >= 3 and apart, (width, boxes)


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def long_video(path: Path, seconds: float) -> Path:
    """A tiny, long, valid video: cheap to write, over the length limit."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(int(seconds * 30)):
        writer.write(np.full((48, 64, 3), i % 255, np.uint8))
    writer.release()
    return path


def test_a_real_clip_unlike_the_training_gets_the_banner_and_its_stretches_shaded(web, page):
    """Issue 25: a real hand holding a cup (`../shared/real/clips`, never fitted on): the page says the clip is
    unlike the model's training, the timeline shades where, and what little the box reports there is marked."""
    from tests.edge.test_real_footage import CLIPS

    upload(page, web.url, CLIPS / "cup.mp4")
    page.wait_for_url(f"{web.url}/analyses/*", timeout=120_000)
    banner = page.locator("#unfamiliar")
    banner.wait_for()
    assert "unlike the footage the model was trained on" in banner.inner_text()
    assert float(banner.get_attribute("data-share")) >= 0.9
    shaded = page.locator(".timeline .shade").evaluate_all("els => els.map(e => [+e.dataset.start, +e.dataset.end])")
    frames = json.loads(page.locator("#analysis").text_content())["frames"]
    assert shaded and sum(b - a for a, b in shaded) >= 0.8 * frames
    width = page.locator(".timeline .shade").first.evaluate("e => e.getBoundingClientRect().width")
    assert width > 100  # drawn over the tracks, not a sliver
    segments = page.locator(".seg").evaluate_all("els => els.map(e => e.dataset.familiar)")
    assert all(f == "false" for f in segments)  # whatever the box saw here is marked not sure


def test_bad_uploads_get_a_clear_message_and_break_nothing(web, page, clip, tmp_path):
    video, _ = clip
    text = tmp_path / "notes.mp4"
    text.write_text("these are not moving pictures\n" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 3])  # mp4v: the index is at the end
    indexed = bars_clip(tmp_path / "indexed.mp4", 320, 240, 90, noise=True, faststart=True)
    cut_after_index = tmp_path / "cut-after-index.mp4"  # the index at the front still opens: it promises 90 frames
    cut_after_index.write_bytes(indexed.read_bytes()[: indexed.stat().st_size // 2])
    big = tmp_path / "big.mp4"
    big.write_bytes(video.read_bytes() + bytes(LIMIT_MB * 1_000_000))
    expected = {
        text: "this is not a video",
        empty: "the file is empty",
        truncated: "truncated or damaged",
        cut_after_index: "the MP4/MOV file is truncated: it ends before the 90 frames it announces",
        big: f"larger than the limit of {LIMIT_MB} MB",
        long_video(tmp_path / "long.mp4", LIMIT_S + 5): f"the video is 25 s long; the limit is {LIMIT_S} s",
    }

    def kept() -> set[Path]:  # the work folder appears with the server's first analysis
        return set(web.work.iterdir()) if web.work.is_dir() else set()

    before = kept()
    for path, message in expected.items():
        upload(page, web.url, path)
        shown = page.locator("#message")
        shown.wait_for(state="visible")
        assert message in shown.text_content(), (path.name, shown.text_content())
        assert page.url == f"{web.url}/analyse"
    assert kept() == before  # nothing of a refused upload is kept
    # The server goes on: the page still loads and a good clip is still accepted (and analysed).
    upload(page, web.url, video)
    page.wait_for_function("/Analysing|Starting|Waiting/.test(document.getElementById('phase').textContent)")
    assert page.locator("#message").is_hidden()


def test_one_of_the_stores_recent_clips_is_analysed_without_an_upload(web, page, clip):
    import shutil
    import urllib.error
    import urllib.parse
    import urllib.request

    video, _ = clip
    shutil.copy(video, web.clips / "aisle-1 10-00.mp4")
    (web.clips / "notes.txt").write_text("not offered: not a video")
    page.goto(f"{web.url}/analyse")
    assert page.locator("#clip option").all_text_contents() == ["aisle-1 10-00.mp4"]
    page.select_option("#clip", "aisle-1 10-00.mp4")
    page.click("#analyse-clip")
    page.wait_for_url(f"{web.url}/analyses/*", timeout=120_000)
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    assert "aisle-1 10-00.mp4" in page.content()
    # Only the offered clips: a name from elsewhere is refused.
    body = urllib.parse.urlencode({"clip": "../../etc/passwd"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{web.url}/web/api/analyses/clip", body), timeout=10)
    assert refused.value.code == 400 and "no recent clip named" in refused.value.read().decode()
