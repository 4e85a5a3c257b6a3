"""The result page's labels editor in Chromium, behind central's login, as a store's reviewer uses it: relabel a
segment with the keyboard, drag an edge, add a pick the box missed, save, verify; then `shelfwatch dataset export`
writes exactly what the page showed, frame for frame. Another store's token neither sees nor edits the clip, and
the clip outlives `keep_analyses`."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from edge.classes import ACTION_CLASSES as CLASSES
from tests.central.web.conftest import Server, screenshot, web_config
from tests.central.web.test_dashboard import wait_healthy
from tests.conftest import Broker, free_port, shelfwatch_command
from training.label_files import read_dataset_manifest
from training.labels import Segment, read_label_file, resolve_frames
from training.synth.generate import VideoSpec, write_video

FRAMES = 300


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Ten seconds in which one shopper takes one can."""
    labels = write_video(VideoSpec(seed=1000, index=6, frames=FRAMES, width=640, height=480),
                         tmp_path_factory.mktemp("clip"))[0]  # fmt: skip
    return labels.with_name(labels.name.replace(".labels.json", ".mp4"))


class Central:
    """`shelfwatch central run` with its pages, a broker, and a token for each of two stores."""

    def __init__(self, folder: Path, **web: object) -> None:
        import subprocess

        self.folder, self.db, self.data = folder, f"sqlite:///{folder / 'central.db'}", folder / "data"
        self.broker = Broker(folder / "broker")
        self.broker.start()
        self.tokens = {}
        for store in ("store-1", "store-2"):
            made = subprocess.run(shelfwatch_command("central", "token", "create", "--store", store, "--db", self.db),
                                  capture_output=True, text=True, check=True)  # fmt: skip
            self.tokens[store] = made.stdout.strip()
        self.server = Server("central", "run", "--mqtt", f"mqtt://127.0.0.1:{self.broker.port}", "--db", self.db,
                             "--http", f"127.0.0.1:{free_port()}", "--data-dir", self.data, "--web-config",
                             web_config(folder, **web), pattern=r"pages at (http://\S+/)", cwd=folder)  # fmt: skip
        self.url = self.server.url
        wait_healthy(self.url)

    def stop(self) -> None:
        self.server.stop()
        self.broker.stop()

    def call(self, method: str, path: str, store: str, body: object | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self.tokens[store]}",
                                                  "Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                body = r.read()
                return r.status, json.loads(body or b"null") if "json" in r.headers["Content-Type"] else body
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    c = Central(tmp_path_factory.mktemp("central"))
    yield c
    c.stop()


def log_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/login?next=/analyse")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/analyse")


def analyse(page, url: str, video: Path) -> str:
    """Upload on the analysis page; the result page's address once it is done."""
    page.goto(f"{url}/analyse")
    page.set_input_files("#file", str(video))
    page.click("#analyse")
    page.wait_for_url(f"{url}/analyses/*", timeout=180_000)
    page.wait_for_selector("#editor:not([hidden]) #ed-state", timeout=60_000)
    return page.url


def shown(page) -> tuple[list[tuple[str, int, int]], list[tuple[str, str, int, int]]]:
    """What the editor shows: its segments (class, start, end) and its picks and put-backs that stand."""
    segs = page.locator(".ed-seg").evaluate_all(
        "els => els.map(e => [e.dataset.label, +e.dataset.start, +e.dataset.end])")  # fmt: skip
    marks = page.locator(".ed-mark:not(.wrong)").evaluate_all(
        "els => els.map(e => [e.dataset.kind, e.dataset.sku, +e.dataset.frame, +e.dataset.quantity])")  # fmt: skip
    return sorted(map(tuple, segs), key=lambda s: (s[1], s[2], s[0])), sorted(map(tuple, marks))


def frame_at(page, x: float) -> int:
    """The frame boundary the editor puts at x (its tracks span the whole clip: no zoom)."""
    box = page.locator(".ed-lane .track").first.bounding_box()
    return round((x - box["x"]) / box["width"] * FRAMES)


def test_a_reviewer_corrects_a_clip_verifies_it_and_the_export_is_what_was_shown(central, browser, clip, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    log_in(page, central.url, central.tokens["store-1"])
    result = analyse(page, central.url, clip)
    clip_id = result.rsplit("/", 1)[1]
    assert page.locator("#ed-state").get_attribute("data-state") == "predicted"
    predicted, _ = shown(page)
    assert predicted, "the box saw no action in a clip where a shopper takes a can"
    assert page.locator(".ed-mark.pick").count() == 1

    # Keyboard: Tab selects the first segment (the playhead jumps to its start); a digit gives it another class (4:
    # an inspection of the product, or 3, a hand in the shelf, if that is what the box said).
    page.focus("#ed-lanes")
    page.keyboard.press("Tab")
    first = page.locator(".ed-seg.selected")
    start, end, was = int(first.get_attribute("data-start")), int(first.get_attribute("data-end")), first.get_attribute(
        "data-label")  # fmt: skip
    assert int(page.locator("#editor").get_attribute("data-frame")) == start
    now = "inspect_product" if was != "inspect_product" else "hand_in_shelf"
    page.keyboard.press(str(CLASSES.index(now)))
    relabelled = page.locator(".ed-seg.selected")
    assert relabelled.get_attribute("data-label") == now != was
    assert (int(relabelled.get_attribute("data-start")), int(relabelled.get_attribute("data-end"))) == (start, end)
    assert page.locator(f".ed-lane[data-class='{now}'] .ed-seg.selected").count() == 1  # in its new class's lane

    # Drag its end 25 pixels to the right: it ends on the frame under the mouse.
    handle = page.locator(".ed-seg.selected .ed-handle.end").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 12, y)
    page.mouse.move(x + 25, y)
    page.mouse.up()
    dragged_end = int(page.locator(".ed-seg.selected").get_attribute("data-end"))
    assert dragged_end == min(FRAMES, frame_at(page, x + 25)) and dragged_end > end
    # ... and, frame by frame, its start two frames later: Home goes to its start, arrows step, [ puts the start at
    # the playhead.
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("[")
    assert int(page.locator(".ed-seg.selected").get_attribute("data-start")) == start + 2
    assert int(page.locator("#editor").get_attribute("data-frame")) == start + 2

    # A pick the box missed: two bottles of green tea, at frame 250, by name from the catalogue.
    tens, ones = divmod(250 - (start + 2), 10)
    for key, times in (("Shift+ArrowRight", tens), ("ArrowRight", ones)):  # ten frames a press, then one
        for _ in range(times):
            page.keyboard.press(key)
    at = int(page.locator("#editor").get_attribute("data-frame"))
    assert at == 250
    page.keyboard.press("p")
    page.select_option("#ed-sku", label="Green tea (sku06)")
    page.fill("#ed-qty", "2")
    page.press("#ed-qty", "Enter")
    assert page.locator("#ed-change").is_hidden()
    added = page.locator(".ed-mark[data-sku='sku06']")
    assert (added.get_attribute("data-kind"), int(added.get_attribute("data-frame")),
            added.get_attribute("data-quantity")) == ("pick", at, "2")  # fmt: skip
    # Undo takes it away, redo brings it back.
    page.keyboard.press("Control+z")
    assert page.locator(".ed-mark[data-sku='sku06']").count() == 0
    page.keyboard.press("Control+Shift+Z")
    assert page.locator(".ed-mark[data-sku='sku06']").count() == 1
    page.click(".ed-keys summary")  # the keys, listed on the page, in the README's picture
    screenshot(page, "web-editor.png")
    page.focus("#ed-lanes")

    # Save (a new version: the prediction stays), then verify.
    page.keyboard.press("Control+s")
    page.wait_for_selector("#ed-state[data-state='in_review']")
    assert "version 1" in page.locator("#ed-version").text_content()
    page.click("#ed-verify")
    page.wait_for_selector("#ed-state[data-state='verified']")
    segments, marks = shown(page)
    page.reload()  # what central kept is what the page shows after a reload too
    page.wait_for_selector("#ed-state[data-state='verified']")
    assert shown(page) == (segments, marks)
    assert (now, start + 2, dragged_end) in segments and ("pick", "sku06", at, 2) in marks
    assert (was, start, end) in predicted and (was, start, end) not in segments
    status, prediction = central.call("GET", f"/web/api/analyses/{clip_id}/labels?version=0", "store-1")
    assert status == 200 and sorted(((s["label"], s["start"], s["end"]) for s in prediction["segments"]),
                                    key=lambda s: (s[1], s[2], s[0])) == predicted  # fmt: skip

    # The export is what was shown, frame for frame.
    out = tmp_path / "dataset"
    exported = _run("dataset", "export", "--db", central.db, "--data-dir", central.data, "--store", "store-1",
                    "--verified", "--out", out)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    (entry,) = read_dataset_manifest(out).clips
    labels = read_label_file(out / f"{entry.name}.labels.json")
    assert sorted(((s.label, s.start, s.end) for s in labels.segments), key=lambda s: (s[1], s[2], s[0])) == segments
    expected, _ = resolve_frames([Segment(CLASSES.index(c), s, e) for c, s, e in segments], FRAMES)
    assert labels.frame_classes == expected.tolist() and labels.frame_count == FRAMES
    units = Counter((("pick" if e.kind == "take" else "putback"), e.sku, e.frame) for e in labels.ledger)
    assert units == Counter({(k, sku, f): n for k, sku, f, n in marks})
    assert labels.review.version == entry.version == 1 and entry.verified_by is not None
    assert (out / f"{entry.name}_label.mat").is_file() and (out / f"{entry.name}.mp4").read_bytes() == clip.read_bytes()

    # Another store's token: the page is not there for it, nor the labels, nor the verification.
    other = browser.new_context()
    stranger = other.new_page()
    log_in(stranger, central.url, central.tokens["store-2"])
    assert stranger.goto(result).status == 404
    for method, tail, body in (("GET", "/labels", None), ("PUT", "/labels", {"segments": []}),
                               ("POST", "/verify", None), ("DELETE", "", None)):  # fmt: skip
        assert central.call(method, f"/web/api/analyses/{clip_id}{tail}", "store-2", body)[0] == 404
    assert central.call("GET", "/web/api/reviews", "store-2")[1] == []
    other.close()
    context.close()


def test_timestamp_mode_split_merge_and_the_keys_a_reviewer_needs(central, browser, clip):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    log_in(page, central.url, central.tokens["store-1"])
    result = analyse(page, central.url, clip)
    # Opened at a stretch (what a review queue links to): the playhead there, the lanes zoomed to it.
    page.goto(f"{central.url}/analyse")
    page.goto(f"{result}#frame=100&to=160")
    page.wait_for_selector("#editor[data-frame='100']")
    assert page.locator(".ed-lanes .axis span").first.text_content() == "2.8 s"  # frame 85: a quarter before
    page.goto(f"{central.url}/analyse")
    page.goto(result)
    page.wait_for_selector("#editor:not([hidden]) #ed-state")
    page.focus("#ed-lanes")
    before = len(shown(page)[0])

    # N adds a segment at the playhead in the selected lane; S splits it; M merges it back.
    page.keyboard.press("Shift+ArrowRight")  # frame 10: nobody is there yet
    page.keyboard.press("2")  # nothing selected: nothing to relabel, says so
    assert "Select a segment first" in page.locator("#ed-message").text_content()
    page.keyboard.press("n")
    new = page.locator(".ed-seg.selected")
    assert (new.get_attribute("data-label"), new.get_attribute("data-start"), new.get_attribute("data-end")) == (
        "reach_to_shelf", "10", "25")  # fmt: skip
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("s")
    assert [(s[1], s[2]) for s in shown(page)[0] if s[0] == "reach_to_shelf" and s[1] < 30] == [(10, 15), (15, 25)]
    page.keyboard.press("m")
    assert [(s[1], s[2]) for s in shown(page)[0] if s[0] == "reach_to_shelf" and s[1] < 30] == [(10, 25)]
    page.keyboard.press("Delete")
    assert len(shown(page)[0]) == before
    # The box's pick marked wrong: struck out, and left out of what is saved.
    page.locator(".ed-mark.pick").click()
    page.keyboard.press("w")
    assert page.locator(".ed-mark.pick.wrong").count() == 1

    # Timestamp mode: one key per action at the playhead.
    page.keyboard.press("Escape")
    page.keyboard.press("Home")  # nothing selected: the clip's first frame
    page.keyboard.press("t")
    assert page.locator("#editor").get_attribute("data-mode") == "timestamps"
    for frame_key in ("0", "1", "3"):
        page.keyboard.press("Shift+ArrowRight")
        page.keyboard.press(frame_key)
    stamps = page.locator(".ed-stamp").evaluate_all("els => els.map(e => [+e.dataset.frame, e.dataset.label])")
    assert stamps == [[10, "no_action"], [20, "reach_to_shelf"], [30, "hand_in_shelf"]]
    page.keyboard.press("+")  # zoomed in around the playhead, for the README's picture
    page.keyboard.press("+")
    editor_picture(page, "web-editor-timestamps.png")
    page.keyboard.press("-")
    page.keyboard.press("-")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#ed-state[data-state='in_review']")
    clip_id = page.url.rsplit("/", 1)[1]
    status, labels = central.call("GET", f"/web/api/analyses/{clip_id}/labels", "store-1")
    assert status == 200 and labels["segments"] == [] and labels["ledger"] == []
    assert [(t["frame"], t["label"]) for t in labels["timestamps"]] == [tuple(s) for s in stamps]
    # Someone saves meanwhile (a script, another reviewer): this page's next save is refused with the reason, and
    # its edit is not lost.
    script = {k: v for k, v in labels.items() if k not in ("frame_classes", "review")}
    assert central.call("PUT", f"/web/api/analyses/{clip_id}/labels", "store-1", script)[0] == 200
    page.keyboard.press("t")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#ed-message.error")
    assert "version 2 was saved since version 1 was opened" in page.locator("#ed-message").text_content()
    assert "unsaved changes" in page.locator("#ed-version").text_content()
    assert page.locator("#editor").get_attribute("data-mode") == "segments"
    # Deleting is explicit: the clip, its versions and its files go.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#ed-delete")
    page.wait_for_url(f"{central.url}/analyse")
    assert central.call("GET", f"/web/api/analyses/{clip_id}/review", "store-1")[0] == 404
    context.close()


@pytest.mark.long
@pytest.mark.timeout(1500)  # 60 analyses through the browser: 260 s on idle cores, 590 s beside two trainings
def test_a_verified_clip_is_still_there_60_analyses_later(browser, clip, tmp_path):
    """keep_analyses at its default, 50: 60 more analyses delete the oldest plain ones, never the verified clip."""
    short = tmp_path / "short.mp4"
    write_video(VideoSpec(seed=1000, index=6, frames=60, width=320, height=240), tmp_path / "s")
    shutil.copy(next((tmp_path / "s").glob("*.mp4")), short)
    central = Central(tmp_path / "central")
    try:
        context = browser.new_context()
        page = context.new_page()
        log_in(page, central.url, central.tokens["store-1"])
        result = analyse(page, central.url, clip)
        clip_id = result.rsplit("/", 1)[1]
        page.click("#ed-verify")
        page.wait_for_selector("#ed-state[data-state='verified']")
        first = None
        for _ in range(60):
            url = analyse(page, central.url, short)
            first = first or url
        assert page.goto(first).status == 404  # the oldest plain analysis made room
        assert page.goto(result).status == 200
        page.wait_for_selector("#ed-state[data-state='verified']")
        assert central.call("GET", f"/web/api/analyses/{clip_id}/verified/labels.json", "store-1")[0] == 200
        status, video = central.call("GET", f"/web/api/analyses/{clip_id}/video", "store-1")
        assert status == 200 and video[4:8] == b"ftyp"
        context.close()
    finally:
        central.stop()


def editor_picture(page, name: str) -> None:
    """The editor alone (SHELFWATCH_SCREENSHOTS=docs refreshes the README's pictures)."""
    from tests.central.web.conftest import REPO, SCREENSHOTS

    if SCREENSHOTS:
        page.locator("#editor").screenshot(path=str(REPO / SCREENSHOTS / name))


def _run(*args: object):
    import subprocess

    return subprocess.run(shelfwatch_command(*args), capture_output=True, text=True, timeout=300)
