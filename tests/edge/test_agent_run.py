"""`shelfwatch edge run` without a broker: the README demo's path, item counts against the video's ledger,
and bad input as one clear line."""

import json
import shutil
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np

from tests.conftest import free_port, shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.edge.test_video import damaged, write_grey_video


def final_baskets(events: list[dict]) -> list[dict]:
    last: dict[int, dict] = {}
    for e in events:
        if e["kind"] == "basket":
            last[e["shopper"]] = e["items"]
    return sorted((items for items in last.values() if items), key=lambda b: sorted(b.items()))


def test_the_agent_on_a_video_with_a_ledger_counts_what_each_shopper_took(tmp_path, shelfwatch):
    # A held-out video (the test set's fourth): a shopper takes two of one SKU and returns one, takes another and
    # returns it.
    video = sample(tmp_path, 900, seed=1000, index=3)
    ledger = json.loads(video.with_name(video.name.replace(".mp4", ".labels.json")).read_text())
    jsonl, annotated = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    result = shelfwatch("edge", "run", "--bundle", DEMO_BUNDLE, "--source", video, "--events-jsonl", jsonl,
                        "--annotate", annotated, "--outbox", tmp_path / "outbox.sqlite")  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    expected = sorted((b["items"] for b in ledger["baskets"] if b["items"]), key=lambda b: sorted(b.items()))
    assert final_baskets(events) == expected
    counted = Counter({k: sum(e["quantity"] for e in events if e["kind"] == k) for k in ("pick", "putback")})
    assert result.stdout.count("basket of shopper") >= len(expected)
    assert f"picks: {counted['pick']}  put-backs: {counted['putback']}" in result.stdout
    assert "fps" in result.stdout and "actions:" in result.stdout
    assert {e["kind"] for e in events} >= {"action", "pick", "basket", "status"}
    cap = cv2.VideoCapture(str(annotated))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 900 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640


def test_two_shoppers_one_after_the_other_get_a_basket_each(tmp_path, shelfwatch):
    # A held-out video (the test set's first): one shopper takes two items and leaves; the next takes one in the
    # clip's last second (counted from the last frames, the shelf never quiet again).
    video = sample(tmp_path, 900, seed=1000, index=0)
    ledger = json.loads(video.with_name(video.name.replace(".mp4", ".labels.json")).read_text())
    jsonl = tmp_path / "events.jsonl"
    result = shelfwatch("edge", "run", "--bundle", DEMO_BUNDLE, "--source", video, "--events-jsonl", jsonl,
                        "--outbox", tmp_path / "outbox.sqlite")  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    expected = sorted((b["items"] for b in ledger["baskets"] if b["items"]), key=lambda b: sorted(b.items()))
    assert len(expected) == 2 and final_baskets(events) == expected
    # The first shopper walked out before the video ended: their basket was closed when they left.
    left = [e["items"] for e in events if e["kind"] == "basket" and e["reason"] == "left" and e["items"]]
    assert left == [ledger["baskets"][0]["items"]]


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, shelfwatch):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    wrong_hash = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, wrong_hash)
    with (wrong_hash / "action_step.onnx").open("ab") as f:
        f.write(b"\0")
    bad_config = tmp_path / "box.yaml"
    bad_config.write_text("store: s1\nbox: b1\ncamera: {source: x.mp4}\nbundle: b\nmqtt: {host: h, prt: 1}\n")
    video = sample(tmp_path, 10)
    grey, still = tmp_path / "grey.avi", tmp_path / "still.png"
    write_grey_video(grey, (1, 1))
    cv2.imwrite(str(still), np.full((480, 640, 3), 128, np.uint8))
    cases = [
        (("--bundle", DEMO_BUNDLE, "--source", corrupt), "corrupt.mp4: "),
        (("--bundle", DEMO_BUNDLE, "--source", tmp_path / "none.mp4"), "none.mp4: no such video file"),
        (("--bundle", tmp_path / "nowhere", "--source", video), "no such model bundle"),
        (("--bundle", wrong_hash, "--source", video), "action_step.onnx does not match its sha256"),
        (("--config", bad_config), "box.yaml: mqtt.prt: Extra inputs are not permitted"),
        (("--config", tmp_path / "missing.yaml"), "missing.yaml: no such config file"),
        (("--bundle", DEMO_BUNDLE), "--bundle needs --source"),
        (("--bundle", DEMO_BUNDLE, "--source", grey), "too small to watch a shelf"),
        (("--bundle", DEMO_BUNDLE, "--source", still), "holds a single picture, not a video"),
        (("--bundle", DEMO_BUNDLE, "--source", video, "--start-time", "9am"), "'9am': not an ISO 8601 time"),
        (("--bundle", DEMO_BUNDLE, "--source", video, "--start-time", "2026-11-25T09:00"), "give its UTC offset"),
        (
            ("--bundle", DEMO_BUNDLE, "--source", "rtsp://127.0.0.1:9/x", "--start-time", "2026-11-25T09:00Z"),
            "--start-time is for video files",
        ),
    ]
    for args, message in cases:
        result = shelfwatch("edge", "run", *args, "--outbox", tmp_path / "o.sqlite", cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_the_agent_runs_without_torch():
    code = (
        "import sys; import shelfwatch.cli as c; c.build_parser(); import edge.agent, edge.cli; "
        "print([m for m in ('torch', 'ultralytics', 'torchvision') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_damaged_file_is_played_with_a_warning(tmp_path, shelfwatch):
    result = shelfwatch("edge", "run", "--bundle", DEMO_BUNDLE, "--source", damaged(tmp_path),
                        "--outbox", tmp_path / "o.sqlite")  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "frames its container lists could be decoded (the file is damaged or truncated)" in result.stderr


def test_a_stream_that_shows_nothing_keeps_the_heartbeat_going_and_sigterm_stops_it_at_once(tmp_path):
    # An MP4 over plain HTTP (no range requests) opens but decodes nothing: the box waits for its camera.
    import signal
    import time

    video = sample(tmp_path / "www", 30)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=video.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    config = tmp_path / "box.yaml"
    config.write_text(f"store: s1\nbox: b1\ncamera: {{source: 'http://127.0.0.1:{port}/{video.name}'}}\n"
                      f"bundle: {DEMO_BUNDLE}\noutbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
                      "heartbeat_s: 1\n")  # fmt: skip
    status_file = tmp_path / "outbox.status.json"
    agent = subprocess.Popen(shelfwatch_command("edge", "run", "--config", config), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(4.5)  # inside the 4 s backoff after the second attempt
        beats = json.loads(status_file.read_text())
        assert beats["state"] == "running" and beats["source_reconnects"] >= 2 and beats["frames"] == 0
        assert time.time() - status_file.stat().st_mtime < 2.5  # heartbeats go on while the camera is away
        agent.send_signal(signal.SIGTERM)
        started = time.monotonic()
        err = agent.communicate(timeout=10)[1]
        assert time.monotonic() - started < 3
    finally:
        agent.kill()
        server.kill()
    assert agent.returncode == 0 and "Traceback" not in err, err
    assert "no frame could be decoded" in err and "stopped while waiting for the camera" in err
    assert json.loads(status_file.read_text())["state"] == "stopped"
