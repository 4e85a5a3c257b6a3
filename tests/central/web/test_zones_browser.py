"""The zone editor in Chromium. On a laptop (`shelfwatch web`): an installer uploads a still, draws two zones with the
mouse, sees a self-crossing one in red with its reason and Save refused, undoes it, moves a zone with a drag and the
keys, draws a slot with its product chosen by name, renames a zone, and saves; the YAML validates. Through the real
processes (long): a provisioned store, its broker and `central run` over HTTPS, an agent on the box: the installer
asks the box for a snapshot, draws, tries the zones on a clip, saves, provisions again, and the restarted agent
watches exactly the zones drawn."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest
import yaml

from central.web.zones import Layout
from firmware_config.store import load_store
from tests.central.test_channel import LEFT, STORE, Channel, run
from tests.central.test_cli import CentralProcess, wait
from tests.central.web.conftest import Server, screenshot, web_config
from tests.conftest import shelfwatch_command
from tests.edge.test_agent_delivery import sample
from tests.firmware_config.test_store import copy_example
from training.synth.generate import VideoSpec, write_video

EDITOR = f"/zones/{STORE}/{LEFT}"
# The synthetic shelf is the top 36% of a 640x480 picture: two zones side by side, the second with a slot.
ZONE_A = [(8, 8), (316, 8), (316, 168), (8, 168)]
ZONE_B = [(324, 8), (632, 8), (632, 168), (324, 168)]
BOW_TIE = [(100, 250), (300, 400), (300, 250), (100, 400)]
SLOT = [(20, 20), (80, 20), (80, 100), (20, 100)]


def click_at(page, x: float, y: float) -> None:
    """A click at (x, y) of the picture's pixels."""
    box = page.locator("#canvas").bounding_box()
    width, height = page.evaluate("[document.getElementById('picture').naturalWidth, "
                                  "document.getElementById('picture').naturalHeight]")  # fmt: skip
    page.mouse.click(box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height)


def draw(page, corners: list[tuple[int, int]]) -> None:
    page.locator("#canvas").focus()
    page.keyboard.press("n")
    for x, y in corners:
        click_at(page, x, y)
    page.keyboard.press("Enter")


def drawn(page) -> Layout:
    return Layout.model_validate(page.evaluate("window.zoneEditor.layout()"))


def settled(page) -> None:
    """The server's check has answered the latest change."""
    page.wait_for_timeout(200)  # the check is sent 120 ms after the last change
    page.wait_for_function("document.getElementById('status').textContent !== 'checking…'")


def draw_two_and_refuse_a_bow_tie(page, shot: str | None = None) -> None:
    draw(page, ZONE_A)
    draw(page, ZONE_B)
    settled(page)
    assert page.locator(".zone.invalid").count() == 0 and page.locator("#save").is_enabled()
    draw(page, BOW_TIE)
    page.wait_for_selector(".zone.invalid")
    problem = page.locator("#problems li").first.text_content()
    assert problem == ("zone 'shelf-3': crosses itself (the edge from corner 1 to 2 meets the edge from corner 3 "
                       "to 4)")  # fmt: skip
    assert page.locator(".zone.invalid title").text_content().startswith("crosses itself")
    assert page.locator("#save").is_disabled() and "1 problem" in page.locator("#status").text_content()
    if shot:
        screenshot(page, shot)
    page.keyboard.press("Control+z")  # undo: the bow tie is gone, and so is the problem
    page.wait_for_function("document.querySelectorAll('#problems li').length === 0")
    settled(page)
    assert [z.polygon for z in drawn(page).zones] == [ZONE_A, ZONE_B] and page.locator("#save").is_enabled()


@pytest.fixture
def laptop(tmp_path):
    store = copy_example(tmp_path / "stores")
    server = Server("web", "--port", 0, "--web-config", web_config(tmp_path, stores_dir=store.parent),
                    pattern=r"(http://127\.0\.0\.1:\d+/)", cwd=tmp_path)  # fmt: skip
    server.store = store
    yield server
    server.stop()


def ready(page) -> None:
    """The editor has fetched its layout and listens (window.zoneEditor is set last): a file chosen before that would
    go unseen (a test is faster than any installer; one CI run on a loaded machine chose it first)."""
    page.wait_for_function("window.zoneEditor !== undefined")


def test_an_installer_draws_zones_on_an_uploaded_still_and_saves_them(laptop, page, tmp_path):
    still = tmp_path / "aisle.jpg"
    cv2.imwrite(str(still), np.full((480, 640, 3), 140, np.uint8))
    page.goto(f"{laptop.url}/zones")
    page.click(f"a[href='{EDITOR}']")
    ready(page)
    page.set_input_files("#upload", str(still))
    page.wait_for_function("document.getElementById('picture').naturalWidth === 640")
    assert page.locator("#snapshot").is_disabled()  # a laptop has no box to ask
    page.locator("#canvas").focus()
    page.keyboard.press("Tab")  # the box's saved zone (the whole top of the picture) is selected: delete it
    page.keyboard.press("Delete")
    draw_two_and_refuse_a_bow_tie(page)
    # A drag moves the selected zone; keys nudge it; the overlap this makes is red until undone.
    box = page.locator("#canvas").bounding_box()
    s = box["width"] / 640
    page.mouse.move(box["x"] + 480 * s, box["y"] + 100 * s)
    page.mouse.down()
    page.mouse.move(box["x"] + 400 * s, box["y"] + 100 * s, steps=5)
    page.mouse.up()
    page.wait_for_selector(".zone.invalid")
    assert "overlaps zone 'shelf-1'" in page.locator("#problems").text_content()
    page.keyboard.press("Control+z")
    page.keyboard.press("Shift+ArrowDown")  # 10 px down
    settled(page)
    assert drawn(page).zones[1].polygon == [(x, y + 10) for x, y in ZONE_B]
    page.keyboard.press("Control+z")
    # A slot in the first zone, its product chosen by name; the second zone renamed.
    click_at(page, 150, 120)
    page.keyboard.press("s")
    for x, y in SLOT:
        click_at(page, x, y)
    page.keyboard.press("Enter")
    page.select_option("select[aria-label='zone shelf-1 slot 1 product']", label="Corn flakes")
    page.locator(".zone-name").nth(1).fill("endcap")
    page.locator(".zone-name").nth(1).press("Enter")
    settled(page)
    assert page.locator(".slot").count() == 1 and page.locator(".invalid").count() == 0
    page.click("#save")
    page.wait_for_selector("text=Saved in example-store/boxes/aisle1-left.yaml")
    assert page.locator("#status").text_content() == "saved"
    check = subprocess.run(shelfwatch_command("config", "validate", laptop.store), capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stderr
    config = load_store(laptop.store)[0][LEFT]
    assert [(z.name, z.polygon) for z in config.zones] == [("shelf-1", ZONE_A), ("endcap", ZONE_B)]
    assert [(s.sku, s.polygon) for s in config.zones[0].slots] == [("4000000000005", SLOT)]  # Corn flakes
    assert "# the shelf as seen by this camera" in (laptop.store / "boxes" / f"{LEFT}.yaml").read_text()


def test_on_a_tablet_zones_are_drawn_by_touch_with_the_buttons_alone(laptop, browser, tmp_path):
    """No keyboard and no mouse: taps on the picture draw (the first corner tapped again closes the shape), taps
    select, and the buttons do what the keys do (new zone, delete, undo, redo)."""
    still = tmp_path / "aisle.jpg"
    cv2.imwrite(str(still), np.full((480, 640, 3), 140, np.uint8))
    context = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(f"{laptop.url}{EDITOR}")
        ready(page)
        page.set_input_files("#upload", str(still))
        page.wait_for_function("document.getElementById('picture').naturalWidth === 640")
        assert page.evaluate("matchMedia('(pointer: coarse)').matches")  # the page is seen as a touch screen

        def tap(x: float, y: float) -> None:
            box = page.locator("#canvas").bounding_box()
            page.touchscreen.tap(box["x"] + x * box["width"] / 640, box["y"] + y * box["height"] / 480)

        before = len(drawn(page).zones)  # the box's saved zone
        page.locator("#new-zone").tap()
        for x, y in [*ZONE_B, ZONE_B[0]]:  # the first corner again closes it
            tap(x, y)
        settled(page)
        zones = drawn(page).zones
        assert len(zones) == before + 1 and zones[-1].polygon == ZONE_B
        page.locator("#undo").tap()
        page.wait_for_function(f"window.zoneEditor.layout().zones.length === {before}")
        page.locator("#redo").tap()
        page.wait_for_function(f"window.zoneEditor.layout().zones.length === {before + 1}")
        tap(500, 100)  # inside the new zone: selected
        page.locator("#delete").tap()
        page.wait_for_function(f"window.zoneEditor.layout().zones.length === {before}")
    finally:
        context.close()


class ZoneChannel(Channel):
    """The channel's provisioned store, with central serving the pages too (the zone editor on the store folder)."""

    def start_central(self) -> CentralProcess:
        ca = self.out / "broker" / "ca.crt"
        web = web_config(self.tmp, stores_dir=self.tmp, work_dir=self.tmp / "work")
        central = CentralProcess(
            self.tmp, "--mqtt", f"mqtts://central@127.0.0.1:{self.consumer_port}?ca={ca}", "--mqtt-password-file",
            self.out / "consumers" / "central.password", "--db", self.db, "--http", f"127.0.0.1:{self.http_port}",
            "--tls-cert", self.tmp / "central.crt", "--tls-key", self.tmp / "central.key", "--data-dir", self.data,
            "--bundles-dir", self.bundles, "--web-config", web, "--files-reserve-mb", 0,
        )  # fmt: skip
        central.wait_consuming()
        assert wait(lambda: self.request("GET", "/health")[0] == 200, 30)
        return central


@pytest.mark.long
def test_zones_from_a_box_snapshot_tried_on_a_clip_saved_and_run_by_the_box(tmp_path, browser):
    c = ZoneChannel(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    page = context.new_page()
    try:
        camera = sample(c.tmp, 450, seed=21)  # 15 s of the aisle, played at its own pace
        agent = c.agent(LEFT, camera)
        url = f"https://127.0.0.1:{c.http_port}"
        page.goto(f"{url}/dashboard")  # the store's staff log in; the box's row leads to its zone editor
        page.fill("input[name=token]", c.staff)
        page.click("button[type=submit]")
        page.click(f"tr[data-box='{STORE}/{LEFT}'] a[href='{EDITOR}']")
        page.wait_for_url(f"{url}{EDITOR}")
        # The snapshot: asked of the box over MQTT, uploaded by it over HTTPS, shown here.
        page.click("#snapshot")
        page.wait_for_function("document.getElementById('picture').naturalWidth === 640", timeout=90_000)
        option = page.locator("#pictures option").first.text_content()
        assert option.startswith("snapshot snapshot-") and (option.endswith("-busy.jpg (people in view)") ==
                                                             ("-busy" in option))  # fmt: skip
        page.locator("#canvas").focus()
        page.keyboard.press("Tab")
        page.keyboard.press("Delete")
        draw_two_and_refuse_a_bow_tie(page, "zone-editor-refused.png")
        # Try it on a clip of this camera: ten seconds in which a shopper takes a can.
        folder = tmp_path / "clip"
        labels = write_video(VideoSpec(seed=1000, index=6, frames=300, width=640, height=480), folder)[0]
        page.set_input_files("#upload", str(labels.with_name(labels.name.replace(".labels.json", ".mp4"))))
        page.wait_for_function("document.getElementById('clips').options.length > 0")
        settled(page)
        page.click("#try")
        page.wait_for_selector(".try-counts", timeout=180_000)
        rows = [r.locator("td").all_text_contents() for r in page.locator(".try-counts tbody tr").all()]
        assert rows and {r[0] for r in rows} <= {"shelf-1", "shelf-2", "(no zone)"}
        assert sum(int(r[2]) for r in rows) >= 1  # the can taken was counted
        assert page.locator(".try-timeline .seg").count() >= 1
        tried = yaml.safe_load(next((tmp_path / "work").glob("*/box.yaml")).read_text())
        assert [z["polygon"] for z in tried["zones"]] == [[list(p) for p in ZONE_A], [list(p) for p in ZONE_B]]
        screenshot(page, "zone-editor-try.png")
        page.click("#save")
        page.wait_for_selector("text=Saved in example-store/boxes/aisle1-left.yaml")
        store = tmp_path / STORE
        assert run(["config", "validate", store]).returncode == 0
        # The box runs the saved zones: provisioned again (the box's new token imported), the agent restarted.
        agent.terminate()
        agent.wait(30)
        run(["provision", store, "--out", c.out, "--box-port", c.box_port, "--consumer-port", c.consumer_port])
        run(["central", "token", "import", c.out / "central" / "box-tokens.json", "--db", c.db])
        log = tmp_path / f"agent-{LEFT}.err"
        before = log.read_text()
        c.agent(LEFT, camera, "--max-frames", 30)
        assert wait(lambda: "watching 2 shelf zone(s)" in log.read_text()[len(before) :], 60), log.read_text()
        line = next(x for x in log.read_text()[len(before) :].splitlines() if "watching 2 shelf zone(s)" in x)
        assert line.endswith(f"shelf-1 {[list(p) for p in ZONE_A]}; shelf-2 {[list(p) for p in ZONE_B]}")
    finally:
        context.close()
        c.close()
