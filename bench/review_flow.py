"""From uploaded clips to a training folder, timed: how long a store's reviewer spends getting N clips verified and
exported, with the real pages (`shelfwatch central run` with its broker, Chromium driven by Playwright, Debian's
/usr/bin/chromium) and a reviewer who acts at a person's pace.

The reviewer, per clip: chooses the file and clicks Analyse (2 actions), waits for the analysis, watches the clip
once at normal speed (Space), then makes the corrections a typical clip needs here: selects a segment and gives it
another class (Tab, a digit), moves one edge frame by frame (Home, two arrows, [), adds a pick the box missed (P,
the product by its name, the quantity, Enter), saves and verifies (Ctrl+S, Verify): 14 actions, each followed by
--pace seconds (default 1.0: a person at a keyboard). Logging in is 3 actions, once. Then one command:
`shelfwatch dataset export`. Printed: the whole time, and how much of it was the machine (upload and analysis,
export), watching, and acting.

    python bench/review_flow.py --clips 3 --seconds 10 --pace 1.0
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.central.web.test_editor import Central  # noqa: E402
from training.synth.generate import VideoSpec, write_video  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds a person takes per action")
    args = parser.parse_args()
    if args.clips < 1 or args.seconds < 1 or args.pace < 0:
        raise SystemExit("--clips and --seconds must be at least 1, --pace at least 0")
    from playwright.sync_api import sync_playwright

    os.environ["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = []
        for i in range(args.clips):  # held-out store A clips: seed 1000, each with a shopper at the shelf
            labels = write_video(VideoSpec(seed=1000, index=6 + i, frames=round(args.seconds * 30), width=640,
                                           height=480), folder / "clips")[0]  # fmt: skip
            clips.append(labels.with_name(labels.name.replace(".labels.json", ".mp4")))
        central = Central(folder / "central")
        spent = {"machine": 0.0, "watching": 0.0, "acting": 0.0}
        actions = 0

        def act(n: int = 1) -> None:
            nonlocal actions
            actions += n
            time.sleep(args.pace * n)
            spent["acting"] += args.pace * n

        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                began = time.perf_counter()
                page.goto(f"{central.url}/login?next=/analyse")
                page.fill("input[name=token]", central.tokens["store-1"])
                page.click("button[type=submit]")
                page.wait_for_url(f"{central.url}/analyse")
                act(3)
                for video in clips:
                    page.goto(f"{central.url}/analyse")
                    page.set_input_files("#file", str(video))
                    page.click("#analyse")
                    act(2)
                    t = time.perf_counter()
                    page.wait_for_url(f"{central.url}/analyses/*", timeout=600_000)
                    page.wait_for_selector("#editor:not([hidden]) #ed-state", timeout=60_000)
                    spent["machine"] += time.perf_counter() - t
                    page.focus("#ed-lanes")
                    t = time.perf_counter()
                    page.keyboard.press(" ")
                    page.wait_for_function("document.getElementById('player').ended", timeout=600_000)
                    spent["watching"] += time.perf_counter() - t
                    for key in ("Tab", "5", "Home", "ArrowRight", "ArrowRight", "["):
                        page.keyboard.press(key)
                        act()
                    page.keyboard.press("p")
                    act()
                    page.select_option("#ed-sku", label="Green tea (sku06)")
                    act()
                    page.fill("#ed-qty", "1")
                    act()
                    page.press("#ed-qty", "Enter")
                    act()
                    page.keyboard.press("Control+s")
                    page.wait_for_selector("#ed-state[data-state='in_review']")
                    act()
                    page.click("#ed-verify")
                    page.wait_for_selector("#ed-state[data-state='verified']")
                    act()
                browser.close()
            t = time.perf_counter()
            out = folder / "dataset"
            done = subprocess.run([sys.executable, "-m", "shelfwatch", "dataset", "export", "--db", central.db,
                                   "--data-dir", central.data, "--store", "store-1", "--verified", "--out", out],
                                  capture_output=True, text=True)  # fmt: skip
            spent["machine"] += time.perf_counter() - t
            total = time.perf_counter() - began
            if done.returncode:
                raise SystemExit(done.stderr)
            act(1)  # typing the command
            total += args.pace
        finally:
            central.stop()
    print(done.stdout.strip())
    plural = "s" if args.clips != 1 else ""
    print(f"{args.clips} clip{plural} of {args.seconds:g} s, {actions} actions at {args.pace:g} s each: "
          f"{total / 60:.1f} min from the first upload to the training folder (machine {spent['machine']:.0f} s: "
          f"uploads, analyses, export; watching {spent['watching']:.0f} s; acting {spent['acting']:.0f} s)",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
