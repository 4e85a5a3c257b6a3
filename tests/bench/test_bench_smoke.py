"""Every script in bench/ at its smallest meaningful size, run as a user runs it, on inputs made here (`make
bench-smoke`; `make test-long` runs it too). Each test checks that the bench ran to its end and that every figure
it printed lies where it can: a latency in milliseconds under a second, a rate or a ratio above zero, a share
between 0 and 1, and a count equal to what was sent or to what the labels hold. A bench that prints a number is
not enough: the latency that was really a file's age printed one too."""

import ast
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.bench.conftest import DEMO_BUNDLE, ROOT
from training.labels import read_label_file

pytestmark = pytest.mark.long

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"


def grab(pattern: str, text: str) -> tuple[str, ...]:
    """The groups of the one line matching `pattern` (numbers with thousands commas are plain strings here)."""
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"no line matches {pattern!r} in:\n{text}"
    return found.groups()


def num(text: str | float) -> float:
    return float(text.replace(",", "")) if isinstance(text, str) else float(text)


def half_unit(printed: str | float) -> float:
    """Half the last printed digit of a number as printed (what rounding may have moved it by); 0 for an exact one."""
    if not isinstance(printed, str):
        return 0.0
    return 0.5 * 10.0 ** -(len(printed.split(".")[1]) if "." in printed else 0)


def is_quotient(printed: str, top: str | float, bottom: str | float) -> bool:
    """`printed` is top / bottom, up to the rounding of all three as printed (a ratio of two rounded times)."""
    t, b, ht, hb = num(top), num(bottom), half_unit(top), half_unit(bottom)
    low, high = (t - ht) / (b + hb), (t + ht) / max(b - hb, 1e-12)
    return low - half_unit(printed) - 1e-9 <= num(printed) <= high + half_unit(printed) + 1e-9


def ledger(video: Path) -> list:
    return read_label_file(video.with_name(video.name.replace(".mp4", ".labels.json"))).ledger


def test_synth_speed(bench):
    out = bench("synth_speed.py", "--frames", 30, "--size", "160x120", "--repeats", 1)
    rows = re.findall(rf"^(easy|standard|hard)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})$", out, re.MULTILINE)
    assert [r[0] for r in rows] == ["easy", "standard", "hard"], out
    for _, render, encode, realtime in rows:
        assert 0 < num(render) < 1e5 and 0 < num(encode) < 1e5, out
        assert is_quotient(realtime, encode, 30.0), out


def test_action_accuracy(tiny):
    out = tiny["action_accuracy output"]  # the bench trained the tiny action run (tests/bench/conftest.py)
    (minutes,) = grab(rf"^training time ({NUMBER}) min", out)
    seconds = json.loads((tiny["action"] / "metrics.json").read_text())["train_seconds"]
    assert 0 < seconds < 600 and is_quotient(minutes, seconds, 60.0)
    accuracy, verdict = grab(rf"^CNN-LSTM frame_accuracy ({NUMBER}) \(bar 0\.9\): (met|NOT met)$", out)
    assert 0 <= num(accuracy) <= 1 and (verdict == "met") == (num(accuracy) >= 0.9)
    f1, verdict = grab(rf"^CNN-LSTM f1@50 ({NUMBER}) \(bar 85\.0\): (met|NOT met)$", out)
    assert 0 <= num(f1) <= 100 and (verdict == "met") == (num(f1) >= 85)
    lstm, frame, verdict = grab(rf"^CNN-LSTM F1@50 ({NUMBER}) vs per-frame CNN ({NUMBER}): (beats|does NOT beat)$", out)
    assert 0 <= num(frame) <= 100 and (verdict == "beats") == (num(lstm) > num(frame))


def test_export_speed(bench, tiny):
    out = bench("export_speed.py", "--bundle", tiny["bundle"], "--action", tiny["action"], "--products",
                tiny["products"], "--held-out", tiny["test"], "--rounds", 1)  # fmt: skip
    (precision,) = grab(r"^bundle \w+ \((\w+)\); 2 threads", out)
    for title in ("encoder \\(1 frame\\)", "LSTM step", "detector \\(64px\\)"):
        block = re.search(rf"^{title}\n((?:  .*\n){{3}})", out, re.MULTILINE)
        assert block, out
        rows = re.findall(rf"^  (.+?)\s+({NUMBER}) ms\s+({NUMBER})x ONNX FP32$", block.group(1), re.MULTILINE)
        assert [r[0] for r in rows] == ["pytorch fp32", "onnx fp32", f"onnx {precision}"], block.group(1)
        for _, ms, ratio in rows:
            assert 0 < num(ms) < 1000 and is_quotient(ratio, rows[1][1], ms), block.group(1)
    per_frame = re.findall(rf"^  (.+?)\s+({NUMBER}) ms\s+({NUMBER})x streaming$", out, re.MULTILINE)
    assert len(per_frame) == 3 and num(per_frame[0][2]) == 1.0, out
    # Sixteen encoder passes cost more than one: the clip re-runs are dearer than streaming.
    assert all(0 < num(ms) < 1000 and num(ratio) > 1 for _, ms, ratio in per_frame[1:]), out
    frames, fp32, shipped, drop = grab(rf"^held-out \(2 videos, (\d+) frames\) frame accuracy: FP32 ({NUMBER})  "
                                       rf"{precision} ({NUMBER})  drop ({NUMBER})", out)  # fmt: skip
    assert int(frames) == 180 and 0 <= num(fp32) <= 1 and 0 <= num(shipped) <= 1
    rounding = half_unit(drop) + 100 * (half_unit(fp32) + half_unit(shipped))
    assert abs(num(drop) - 100 * (num(fp32) - num(shipped))) <= rounding + 1e-9
    m32, mq = grab(rf"^held-out detector mAP50: FP32 ({NUMBER})  {precision} ({NUMBER})", out)
    assert 0 <= num(m32) <= 1 and 0 <= num(mq) <= 1


def test_edge_speed_latency_is_delivery_not_the_clips_age(bench, tiny, store_videos, tmp_path):
    """The clip's events are timed on its own clock (a file's clock ends at its modification time): a copy an hour
    old must show the same delivery latency as a fresh one, well under a second on loopback."""
    import os
    import shutil
    import time

    video = tmp_path / "an_hour_old.mp4"
    shutil.copy(store_videos / "synth_standard_s1000_0006.mp4", video)
    os.utime(video, (time.time() - 3600, time.time() - 3600))
    out = bench("edge_speed.py", "--bundle", DEMO_BUNDLE, "--video", video, "--action", tiny["action"],
                "--products", tiny["products"], "--repeats", 1, "--naive-frames", 5)  # fmt: skip
    (frames,) = grab(r"^video an_hour_old\.mp4: (\d+) frames; 2 threads; median of 1$", out)
    assert int(frames) == 240
    (decode,) = grab(rf"^  decode only\s+({NUMBER}) fps$", out)
    agent, realtime, share = grab(rf"^  agent \(bundle, everything\)\s+({NUMBER}) fps\s+({NUMBER})x real time "
                                  rf"\(30 fps\)\s+({NUMBER})x decode-only", out)  # fmt: skip
    naive, faster = grab(rf"^  naive \(PyTorch, every frame\)\s+({NUMBER}) fps\s+agent is\s+({NUMBER})x faster$", out)
    assert num(decode) > 0 and num(agent) > 0 and num(naive) > 0
    assert num(agent) <= 1.5 * num(decode), "the agent decodes every frame too: it cannot outrun decoding"
    assert is_quotient(realtime, agent, 30.0) and is_quotient(share, agent, decode)
    assert is_quotient(faster, agent, naive)
    skipped, detections, of, events = grab(
        r"models skipped \(motion gate\) on (\d+)% of frames; detector ran on (\d+) of (\d+) frames; events (\{.*\})$",
        out)  # fmt: skip
    emitted = ast.literal_eval(events)
    assert 0 <= int(skipped) <= 100 and int(detections) <= int(of) == 240 and sum(emitted.values()) > 0
    peak, torch = grab(rf"^  agent peak memory ({NUMBER}) MB \(VmHWM\); torch imported: (True|False)$", out)
    assert 0 < num(peak) < 4096 and torch == "False"
    arrived, committed, p50, p99 = grab(
        rf"^  event latency, committed to the outbox -> subscriber \(loopback, (\d+) of (\d+) events\): "
        rf"p50 ({NUMBER}) ms, p99 ({NUMBER}) ms$", out)  # fmt: skip
    # Every event the box committed arrived, and the latency run emitted what the timed runs did.
    assert int(arrived) == int(committed) == sum(emitted.values())
    assert 0 < num(p50) <= num(p99) < 1000


def test_item_counts(bench, store_videos):
    out = bench("item_counts.py", "--bundle", DEMO_BUNDLE, "--videos", store_videos)
    videos = sorted(store_videos.glob("*.mp4"))
    rows = re.findall(r"^(\S+): ledger (\d+) events, found (\d+), right (\d+); net unit errors (\d+); "
                      r"baskets (match|DIFFER)$", out, re.MULTILINE)  # fmt: skip
    assert [r[0] for r in rows] == [v.stem for v in videos], out
    for video, (_, truth, found, right, _, _) in zip(videos, rows, strict=True):
        assert int(truth) == len(ledger(video)) and int(right) <= min(int(truth), int(found))
    n, truth, found, right, recall, precision, exact, of = grab(
        rf"^(\d+) videos: (\d+) ledger events, (\d+) found, (\d+) right -> recall ({NUMBER}), precision ({NUMBER}); "
        r"final baskets exact on (\d+)/(\d+) videos$", out)  # fmt: skip
    assert int(n) == int(of) == len(videos) and int(exact) == sum(r[5] == "match" for r in rows)
    assert [int(truth), int(found), int(right)] == [sum(int(r[i]) for r in rows) for i in (1, 2, 3)]
    assert is_quotient(recall, float(right), float(truth))
    assert is_quotient(precision, float(right), float(max(1, int(found))))
    units, wrong, share = grab(rf"(\d+) in the ledgers, (\d+) unit\(s\) wrong -> ({NUMBER}) right$", out)
    net: dict = {}
    for video in videos:
        for entry in ledger(video):
            net[(video, entry.sku)] = net.get((video, entry.sku), 0) + (1 if entry.kind == "take" else -1)
    assert int(units) == sum(abs(v) for v in net.values()) and int(wrong) == sum(int(r[4]) for r in rows)
    assert 0 <= num(share) <= 1


def test_central_ingest(bench):
    out = bench("central_ingest.py", "--boxes", 2, "--events", 20)
    rows = re.findall(rf"^  (\d) consumer\(s\):\s+({NUMBER}) events/s stored \((\d+)/(\d+)\); publishing ran at "
                      rf"({NUMBER}) events/s$", out, re.MULTILINE)  # fmt: skip
    assert [r[0] for r in rows] == ["1", "2"], out
    for _, rate, stored, total, publishing in rows:
        assert int(stored) == int(total) == 40 and num(rate) > 0 and num(publishing) > 0
    (ratio,) = grab(rf"^  two sharing / one: ({NUMBER})x$", out)
    assert is_quotient(ratio, rows[1][1], rows[0][1])


def test_agent_compare_against_a_worktree_of_head(bench, store_videos, tmp_path):
    """HEAD's agent as the "before": the same events whenever this tree's agent is HEAD's."""
    one = tmp_path / "videos"
    one.mkdir()
    (one / "clip.mp4").symlink_to(store_videos / "synth_standard_s1000_0006.mp4")
    before = tmp_path / "before"
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", before, "HEAD"], check=True, capture_output=True)
    try:
        out = bench("agent_compare.py", "--before", before, "--videos", one, "--bundle", DEMO_BUNDLE)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", before], check=True, capture_output=True)
    events, same, before_fps, after_fps, ratio = grab(
        r"^clip\.mp4: (\d+) events, (identical|DIFFERENT); fps before (\d+), after (\d+) \(x([\d.]+)\)$", out
    )
    assert int(events) > 0 and int(before_fps) > 0 and int(after_fps) > 0 and num(ratio) > 0
    identical, videos, kinds, median = grab(r"^(\d+)/(\d+) videos emit identical events \((\{.*\})\); speed "
                                            r"after/before: median x([\d.]+) ", out)  # fmt: skip
    assert int(videos) == 1 and int(identical) == (same == "identical") and num(median) == num(ratio)
    assert sum(ast.literal_eval(kinds).values()) == int(events)
    unchanged = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "edge", "models"]).returncode == 0
    if unchanged:
        assert same == "identical", out


def test_fault_run_loses_nothing(bench):
    """Every fault at its smallest spacing, 2 s apart: the bench takes them one at a time (central back and caught up
    before the broker dies again), so nothing the boxes sent may be lost."""
    out = bench("fault_run.py", "--seconds", 12, "--rate", 10, timeout=240)
    sent, stored, lost, twice, redelivered = grab(
        r"^sent (\d+)  stored (\d+)  lost (\d+)  stored twice (\d+)  redelivered (\d+) ", out
    )
    assert int(sent) > 0 and int(stored) == int(sent) and int(lost) == 0 and int(twice) == 0
    assert 0 <= int(redelivered) <= int(sent)
    epochs, gaps = grab(r"^epochs (\[.*\])  open gaps (\[.*\])$", out)
    assert ast.literal_eval(epochs) == [("a", 1), ("b", 1), ("b", 2)]  # the re-imaged box started a new epoch
    assert ast.literal_eval(gaps) == [("a", []), ("b", [])]


def test_encoder_speed(bench, tiny):
    out = bench("encoder_speed.py", "--videos", tiny["test"], "--rounds", 1)
    rows = re.findall(rf"^  (.+?)\s+({NUMBER}) ms  x\s*({NUMBER}) the scratch encoder's time  \(({NUMBER}) MB\)$",
                      out, re.MULTILINE)  # fmt: skip
    assert [r[0].split(" (")[0] for r in rows] == ["scratch", "mobilenet_v2 fp32", "mobilenet_v2 shipped"], out
    for _, ms, ratio, megabytes in rows:
        assert 0 < num(ms) < 1000 and is_quotient(ratio, ms, rows[0][1]) and num(megabytes) > 0


@pytest.fixture
def postgres_database():
    """A database name of this test's own on the machine's PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"shelfwatch_bench_smoke_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_insights_speed(bench, postgres_database):
    out = bench("insights_speed.py", "--database", postgres_database, "--events", 20000, "--stores", 2, "--boxes", 2,
                "--days", 31, "--runs", 1, "--ingest-visits", 30)  # fmt: skip
    (loaded,) = grab(rf"^loaded ({NUMBER}) events in", out)
    events, month = grab(rf"^rows: events ({NUMBER}),.*; store s01 over 30 days: ({NUMBER}) events$", out)
    assert 20000 <= num(loaded) == num(events) < 20100 and 0 < num(month) < num(events)
    rows = {name: (num(ms), int(n)) for name, ms, n in
            re.findall(rf"^(/insights/.+?|plain SQL .+?)\s+({NUMBER})\s+(\d+)$", out, re.MULTILINE)}  # fmt: skip
    assert len(rows) == 15, out
    assert all(0 < ms < 10_000 and n > 0 for ms, n in rows.values()), rows
    # Two boxes of two zones of six SKUs in each store; the plain queries count what the rollups count.
    daily = rows["/insights/traffic: daily"][1]
    assert 28 <= daily <= 30 and rows["/insights/funnel: per SKU"][1] == 24
    assert rows["/insights/traffic: per box, daily"][1] == 2 * daily
    for label in ("events' own indexes", "+ index (store, kind, ts)"):
        assert rows[f"plain SQL on events ({label}): traffic, daily"][1] == daily
        assert rows[f"plain SQL on events ({label}): funnel per SKU"][1] == 24
    with_rollups, without, sent, stored = grab(
        rf"^ingest through Central\.events: ({NUMBER}) events/s with the rollups, ({NUMBER}) without; ({NUMBER}) "
        rf"events sent, ({NUMBER}) stored as new$", out)  # fmt: skip
    assert num(with_rollups) > 0 and num(without) > 0 and num(sent) == num(stored) > 0


def shelfless_clips(folder: Path) -> Path:
    """Two clips with no shelf in view, as the real clips bundle_compare reads: a blob crossing a noisy floor (one
    named as the walkers' clip, vtest.avi, at 10 fps) and the same at 30 fps."""
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, fourcc, fps, frames in (("vtest.avi", "MJPG", 10, 40), ("floor.mp4", "mp4v", 30, 60)):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter.fourcc(*fourcc), fps, (320, 240))
        for t in range(frames):
            image = rng.integers(90, 110, (240, 320, 3), dtype=np.uint8)
            cv2.circle(image, (10 + 300 * t // frames, 160), 25, (40, 60, 160), -1)
            writer.write(image)
        writer.release()
    return folder


def test_bundle_compare(bench, tiny, store_videos, tmp_path):
    """Through its command line only (its measuring may move into training/)."""
    out = bench("bundle_compare.py", DEMO_BUNDLE, tiny["bundle"], "--held-out", store_videos, "--clips",
                shelfless_clips(tmp_path / "clips"))  # fmt: skip
    lines = out.strip().splitlines()
    header = lines.index(next(line for line in lines if line.startswith("bundle ")))
    rows = lines[header + 1 :]
    assert len(rows) == 2 and rows[0].strip().startswith(str(DEMO_BUNDLE)[-28:].strip()), out
    for row in rows:
        cells = row[28:].split()
        assert len(cells) == 3 + 5, row
        accuracy, f1, items, fps, walkers, everything, picks, negative = cells
        assert 0 <= num(accuracy) <= 1 and 0 <= num(f1) <= 100 and (items == "-" or 0 <= num(items) <= 1), row
        assert num(fps) > 0 and num(walkers) >= 0 and num(everything) >= 0 and int(picks) >= 0, row
        assert int(negative) == 0, "no basket ever goes below zero"


def test_shopper_reid(bench, store_videos):
    out = bench("shopper_reid.py", "--videos", store_videos, "--side", 0.2, "--every", 5, "--gap", 1)
    crops, people, videos = grab(r": (\d+) crops of (\d+) people in (\d+) videos", out)
    # The labels hold three people: a shopper in each video and a second one walking in at the bottom of one.
    assert int(videos) == 2 and int(people) == 3 and int(crops) > 0
    rows = re.findall(rf"^  (colour histogram \(HSV 8x8x4\)|MobileNetV2 ImageNet \(1280\))\s+({NUMBER})\s+({NUMBER})"
                      r"\s+(\d+)$", out, re.MULTILINE)  # fmt: skip
    assert len(rows) == 2, out
    for _, auc, rank1, queries in rows:
        assert 0 < num(auc) <= 1 and 0 <= num(rank1) <= 1 and 0 < int(queries) <= int(crops)


def test_broker_queue(bench):
    out = bench("broker_queue.py", "--messages", 2000)
    assert grab(rf"^({NUMBER}) messages queued for an absent consumer", out) == ("2,000",)
    rows = re.findall(rf"^\s+(\d+)\s+({NUMBER})\s+(\d+) B\s+({NUMBER})\s+(\d+) B$", out, re.MULTILINE)
    assert [int(r[0]) for r in rows] == [400, 1024], out
    for payload, _, memory, _, saved in rows:
        # A queued message costs at least its payload, in memory and in the save file, and not a hundred times it.
        assert int(payload) <= int(memory) < 100 * int(payload) and int(payload) <= int(saved) < 10 * int(payload)


def test_request_bodies(bench):
    out = bench("request_bodies.py", "--mb", 20)
    rows = re.findall(rf"^(no token|token), (.+?)\s+(\d{{3}})\s+({NUMBER}) MB\s+(\d+) kB\s+({NUMBER}) kB\s+(\d+)$", out,
                      re.MULTILINE)  # fmt: skip
    assert len(rows) == 7, out
    for who, what, answer, _, memory, written, left in rows:
        assert int(left) == 0, (what, out)  # nothing stays on disk after a refusal
        if who == "no token":
            # What a client without a token costs: nothing written, memory near zero (the first request pays
            # for some imports), and the answer before the body is read.
            assert int(answer) in (400, 401, 413) and num(written) < 1 and int(memory) < 5_000, (what, out)
        elif "/pos" in what:
            assert int(answer) == 413 and num(written) < 1, out
        else:
            assert num(written) <= 20_001 and int(answer) in (400, 413), out  # at most the body, then deleted


def test_broker_autosave(bench):
    out = bench("broker_autosave.py", "--seconds", 3, "--repeats", 1)
    rows = re.findall(rf"^(autosave_[^\n]*?)\s+(up|away)\s+(\d+)\s+(\d+)\s+({NUMBER})$", out, re.MULTILINE)
    assert len(rows) == 8, out
    for setting, central, lost, acked, disk in rows:
        assert 0 < int(acked) <= 1050 and num(disk) >= 0, out
        if central == "up":
            # Central takes each message within milliseconds, so only those acknowledged to the box and not yet
            # written to central's socket at the kill can go: a tenth of a second at most, and never more than N
            # under "every N changes" (one CI run lost 9 under every 10).
            every_n = re.search(r"every (\d+) change", setting)
            assert int(lost) <= (int(every_n.group(1)) if every_n else 100), out
    every = re.findall(r"^autosave_on_changes, every (\d+) changes?\s+away\s+(\d+)", out, re.MULTILINE)
    assert [int(n) for n, _ in every] == [1, 10, 100] and all(int(lost) <= int(n) for n, lost in every), out
    (interval_lost,) = grab(r"^autosave_interval 1 \(every second\)\s+away\s+(\d+)", out)
    assert int(interval_lost) <= 3000  # at most about one save interval of the 1,000 a second (slow saves: three)


def test_review_flow(bench):
    out = bench("review_flow.py", "--clips", 1, "--seconds", 2, "--pace", 0, timeout=600)
    assert "wrote 1 verified clip of store store-1" in out, out
    line = (
        rf"^1 clip of 2 s, (\d+) actions at 0 s each: ({NUMBER}) min from the first upload to the training folder "
        rf"\(machine ({NUMBER}) s: uploads, analyses, export; watching ({NUMBER}) s; acting ({NUMBER}) s\)$"
    )
    actions, minutes, machine, watching, acting = grab(line, out)
    assert int(actions) == 3 + 14 + 1 and num(acting) == 0  # logging in, one clip, the export command
    assert 1.5 <= num(watching) < 60 and 0 < num(machine) < 600  # the 2 s clip played once at its speed
    total = 60 * num(minutes)
    assert total + 3 >= num(machine) + num(watching) - 1, out  # the parts fit in the whole (each rounded)


def test_familiarity(bench, store_videos):
    cup = ROOT.parent / "shared" / "real" / "clips" / "cup.mp4"
    first = sorted(store_videos.glob("*.mp4"))[0]
    out = bench("familiarity.py", DEMO_BUNDLE, "--synthetic", store_videos, "--real", cup, "--splice",
                f"{first}={cup}", timeout=900)  # fmt: skip
    (threshold,) = grab(rf"^bundle \w+: threshold ({NUMBER}) on 1 s windows$", out)
    assert num(threshold) > 0
    flagged, judged, before, after, f1_before, f1_after = grab(
        rf"^  \S+: ({NUMBER}) % of (\d+) judged frames flagged .*frame accuracy ({NUMBER}) -> ({NUMBER}), "
        rf"F1@50 ({NUMBER}) -> ({NUMBER})$", out)  # fmt: skip
    assert 0 <= num(flagged) <= 100 and 0 < int(judged) <= 480, out
    assert all(0 <= num(v) <= 1 for v in (before, after)) and all(0 <= num(v) <= 100 for v in (f1_before, f1_after))
    guard, frame, share = grab(rf"^cost: the guard ({NUMBER}) µs a judged frame against ({NUMBER}) ms a frame .*: "
                               rf"({NUMBER}) %$", out)  # fmt: skip
    assert 0 < num(guard) < 1e6 and 0 < num(frame) < 1e4, out
    low, high = (num(guard) - 0.5) / 10 / (num(frame) + 0.005), (num(guard) + 0.5) / 10 / (num(frame) - 0.005)
    assert low - 0.005 <= num(share) <= high + 0.005, out  # µs over ms, as a percentage, up to the printed rounding
    line = rf"^  cup\.mp4\s+\d+ frames\s+({NUMBER}) / ({NUMBER})\s+flagged ({NUMBER}) %.*\s(OK|NOT OK.*)$"
    per_frame, per_window, real_flagged, verdict = grab(line, out)
    assert 0 <= num(per_frame) <= 1 and 0 <= num(per_window) <= 1 and 0 <= num(real_flagged) <= 100
    assert verdict == "OK", out  # nothing sure about a shelf came from a real clip
    (flip,) = grab(rf"flips ({NUMBER}) s after the cut", out)
    assert 0 <= num(flip) < 60, out


def test_visits(bench):
    """The demo's video (index 6: a shopper takes products) of each preset, short and small; the same bundle again
    beside it (`--against`): a box that runs the same way twice flips no pair."""
    out = bench("visits.py", "--first", 6, "--videos", 1, "--frames", 240, "--size", "320x240", "--against",
                DEMO_BUNDLE, timeout=600)  # fmt: skip
    rows = re.findall(r"^synth_(standard|hard)_s1000_0006: (\d+) visit event\(s\), (\d+) SKU\(s\): visits exact "
                      r"(\d+), pick events exact (\d+), visits agree with them: (yes|NO), products left out (\d+)$",
                      out, re.MULTILINE)  # fmt: skip
    assert [r[0] for r in rows] == ["standard", "hard"], out
    for _, _, pairs, exact, events_exact, _, _ in rows:
        assert int(exact) <= int(pairs) and int(events_exact) <= int(pairs), out
    right, total, share = grab(rf"^visits exact: (\d+)/(\d+) = ({NUMBER})$", out)
    assert int(total) == sum(int(r[2]) for r in rows) > 0 and is_quotient(share, right, total), out
    low, high = grab(rf"^  95 % interval \(Wilson\): ({NUMBER})-({NUMBER}); a SKU's pairs in one video are", out)
    assert 0 <= float(low) <= float(share) <= float(high) <= 1, out
    split = (
        rf"^  of them, with a take or return the clip's end cuts \(the arm still in the shelf\): (\d+)/(\d+) exact; "
        rf"the pairs the clip shows whole: (\d+)/(\d+) = ({NUMBER})$"
    )
    end_right, end, rest_right, rest, rest_share = grab(split, out)
    assert int(end_right) + int(rest_right) == int(right) and int(end) + int(rest) == int(total), out
    assert int(end_right) <= int(end) and is_quotient(rest_share, rest_right, rest), out
    assert grab(r"^videos whose visits agree with their pick and put-back events: (\d+)/(\d+)$", out) == ("2", "2")
    assert grab(r"^products left out of visit events: (\d+)$", out) == ("0",)
    assert len(re.findall(r"^  against: synth_(standard|hard)_s1000_0006: ", out, re.MULTILINE)) == 2, out
    same = rf"^against {re.escape(str(DEMO_BUNDLE))} on the same (\d+) \(video, SKU\) pairs: this bundle (\d+), that "
    same += (
        r"one (\d+); exact only with this bundle (\d+), only with that one (\d+) \(two-sided sign test: p = 1\.000\)$"
    )
    assert grab(same, out) == (total, right, right, "0", "0"), out


def test_visits_before_another_checkout(bench):
    """The same checkout as its own "before": the same box twice flips no pair."""
    out = bench("visits.py", "--first", 6, "--videos", 1, "--frames", 240, "--size", "320x240", "--before", ROOT,
                timeout=600)  # fmt: skip
    assert len(re.findall(r"^  before: synth_(standard|hard)_s1000_0006: ", out, re.MULTILINE)) == 2, out
    right, total, _ = grab(rf"^visits exact: (\d+)/(\d+) = ({NUMBER})$", out)
    same = rf"^against the agent of {re.escape(str(ROOT))} on the same (\d+) \(video, SKU\) pairs: this box (\d+), "
    same += (
        r"that one (\d+); exact only with this box (\d+), only with that one (\d+) \(two-sided sign test: p = 1\.000\)$"
    )
    assert grab(same, out) == (total, right, right, "0", "0"), out


def test_adapt(bench, tiny, tmp_path):
    """Adapted after 1 and 2 tiny store-b clips, full and timestamp labels, against the tiny bundle (two held-out
    clips: fewer than eval compare's five, so every verdict is 'not enough clips')."""
    out = bench("adapt.py", "--source", tiny["action"], "--shipped", tiny["bundle"], "--replay", tiny["train"],
                "--original", tiny["test"], "--work", tmp_path, "--clips", 1, 2, "--frames", 300, "--held-out", 2,
                "--held-out-frames", 150, "--size", "160x120", "--precision", "fp32", "--calibration-frames", 16, "--",
                "--steps", 2, "--eval-every", 1, "--clip-len", 16, "--batch", 2, "--encoder-steps", 2,
                "--frame-batch", 4, timeout=900)  # fmt: skip
    assert grab(r"^held out: store-b (\d+) videos of 150 frames \(seed 3000\); original (\d+) videos", out) == (
        "2",
        "2",
    )
    silent_b, silent_o = grab(rf"^a box reporting no action at all scores ({NUMBER}) on store B, ({NUMBER}) on the "
                              r"original set", out)  # fmt: skip
    for shown, folder in ((silent_b, tmp_path / "store_b_held_out"), (silent_o, tiny["test"])):
        # The frames no labelled action covers, counted from the segments (the bench reads per-frame classes).
        covered, frames = 0, 0
        for labels in (read_label_file(p) for p in folder.glob("*.labels.json")):
            mask = np.zeros(labels.frame_count, bool)
            for segment in labels.segments:
                mask[segment.start : segment.end] |= segment.label != 0
            covered, frames = covered + mask.sum(), frames + labels.frame_count
        assert num(shown) == pytest.approx(1 - covered / frames, abs=5e-4), out
    row = (rf"^(shipped|adapted, full|adapted, timestamps)\s+(-|\d+)\s+(-|{NUMBER})\s+({NUMBER})\s+({NUMBER})\s+"
           rf"(-|{NUMBER})\s+({NUMBER})\s+({NUMBER})\s+(-|{NUMBER})\s+(\S+)$")  # fmt: skip
    rows = re.findall(row, out, re.MULTILINE)
    assert [(r[0], r[1]) for r in rows] == [("shipped", "-"), ("adapted, full", "1"), ("adapted, full", "2"),
                                           ("adapted, timestamps", "1"), ("adapted, timestamps", "2")], out  # fmt: skip
    for _, _, minutes, b_acc, b_f1, b_items, o_acc, o_f1, o_items, verdict in rows:
        assert minutes == "-" or 0 < num(minutes) < 15, out
        assert 0 <= num(b_acc) <= 1 and 0 <= num(o_acc) <= 1 and 0 <= num(b_f1) <= 100 and 0 <= num(o_f1) <= 100
        assert all(v == "-" or 0 <= num(v) <= 1 for v in (b_items, o_items)), out
        assert verdict in ("-", "not_enough_clips"), out
    for labels in ("full", "timestamps"):  # each printed time is the adaptation's, as the run itself measured it
        for n in (1, 2):
            assert (tmp_path / f"bundle_{labels}_{n}" / "manifest.json").is_file()
            (minutes,) = grab(rf"^adapted with {n} {labels}-labelled clip\(s\) in ({NUMBER}) min$", out)
            trained = json.loads((tmp_path / f"run_{labels}_{n}" / "metrics.json").read_text())["train_seconds"]
            assert trained / 60 <= num(minutes) + 0.005, out


def test_gpu_recipe(bench, tmp_path):
    """The GPU recipe's whole chain at its smallest, on the CPU: rendered data, a MobileNetV2 run, its bundle with
    models/demo's detector, the learning curve from that run; then called again, which keeps what was finished (about 3
    minutes on 2 cores)."""
    out = bench("gpu_recipe.py", "--tiny", "--work", tmp_path, "--jobs", 2, "--device", "cpu", timeout=900)
    assert grab(r"^python \S+, torch \S+, CUDA GPU: .+; --device (\w+); (\w+) size; work in ", out) == ("cpu", "tiny")
    metrics = json.loads((tmp_path / "action" / "metrics.json").read_text())
    assert metrics["model"]["encoder"] == "mobilenet_v2" and metrics["device"] == "cpu"
    minutes, lstm_acc, lstm_f1, frame_acc = grab(
        rf"^trained on cpu: ({NUMBER}) min of training; validation CNN-LSTM frame accuracy ({NUMBER}), F1@50 "
        rf"({NUMBER}); per-frame CNN ({NUMBER})$",
        out,
    )
    assert is_quotient(minutes, metrics["train_seconds"], 60.0), out
    assert num(lstm_acc) == pytest.approx(metrics["val"]["cnn_lstm"]["frame_accuracy"], abs=5e-4)
    assert 0 <= num(lstm_f1) <= 100 and 0 <= num(frame_acc) <= 1
    # The new bundle: this run's action model, models/demo's detector file as it is.
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    detector = manifest["detector"]["model"]
    assert (tmp_path / "bundle" / detector).read_bytes() == (DEMO_BUNDLE / detector).read_bytes()
    assert manifest["provenance"]["checkpoint_sha256"] == metrics["checkpoint"]["sha256"]
    assert grab(r"^exported (\S+) \((\w+) asked; held-out frame accuracy through ONNX: fp32 ", out) == (
        str(tmp_path / "bundle"),
        "fp32",
    )
    # The learning curve, with that bundle as the shipped one and the run as the source.
    rows = re.findall(rf"^(shipped|adapted, full)\s+(-|\d+)\s+(-|{NUMBER})\s+({NUMBER})\s", out, re.MULTILINE)
    assert [(r[0], r[1]) for r in rows] == [("shipped", "-"), ("adapted, full", "1")], out
    adapted = json.loads((tmp_path / "adapt" / "run_full_1" / "metrics.json").read_text())
    assert adapted["source"]["sha256"] == metrics["checkpoint"]["sha256"] and adapted["device"] == "cpu"
    assert adapted["guard"]["folder"] == str(tmp_path / "data" / "guard") and len(adapted["guard"]["videos"]) == 2
    assert grab(r"^adaptations ran on: (.+)$", out) == ("cpu",)
    steps = dict(re.findall(rf"(synth train|synth test|synth guard|train action|export|learning curve) ({NUMBER})",
                            out))  # fmt: skip
    assert list(steps) == ["synth train", "synth test", "synth guard", "train action", "export", "learning curve"], out
    (total,) = grab(rf"^minutes: .*; all ({NUMBER})$", out)
    assert sum(num(v) for v in steps.values()) <= num(total) + 0.05 * len(steps), out
    # Called again (a GPU call cut short by its time limit): what was finished is kept, only the curve runs again.
    again = bench("gpu_recipe.py", "--tiny", "--work", tmp_path, "--jobs", 2, "--device", "cpu", timeout=900)
    assert re.findall(rf"(synth train|synth test|train action|export|learning curve) {NUMBER}", again) == [
        "learning curve"
    ], again
    assert json.loads((tmp_path / "action" / "metrics.json").read_text()) == metrics


def test_gpu_recipe_refuses_cuda_where_there_is_none(bench_env):
    env = dict(bench_env, CUDA_VISIBLE_DEVICES="")  # no GPU for PyTorch, also on a machine that has one
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_recipe.py"), "--device", "cuda", "--tiny"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert re.fullmatch(r"gpu_recipe: --device cuda: PyTorch \S+ sees no CUDA GPU here", done.stderr.strip())
