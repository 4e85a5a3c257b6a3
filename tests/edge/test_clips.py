"""The clip keeper on frames handed to it as the frame loop would: a clip around an unsure event from the ring of
recent frames, within its hourly limit and disk budget, whole or not at all, deleted after its retention (on the box
and from the uplink's spool), and with blurring on, no head pixel as it was. An agent killed while it writes a clip
leaves no half clip."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.clips import WRITING, ClipKeeper, FrameRing, Kept, blur_heads, head_boxes, unsure_reason
from edge.config import ClipsConfig
from edge.scene import Shopper
from edge.uplink import Spool
from tests.central.test_cli import wait
from tests.conftest import shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample

FPS, SIZE = 10.0, (160, 120)


def frame(i: int) -> np.ndarray:
    """A picture that says its own index (the clip's frames can be told apart after encoding)."""
    image = np.full((SIZE[1], SIZE[0], 3), 40, np.uint8)
    image[:, : (i * 3) % SIZE[0]] = 200
    return image


def action(event_id: str, start: int, end: int, confidence: float, **extra: object) -> bytes:
    return json.dumps({"kind": "action", "event_id": event_id, "start": start, "end": end, "confidence": confidence,
                       **extra}).encode()  # fmt: skip


class Clock:
    """The keeper's wall clock (a kept clip's age is its file's): now, moved on by the tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def keeper(tmp_path: Path, clock: Clock | None = None, **config: object) -> tuple[ClipKeeper, list, list[str]]:
    sent: list = []
    logged: list[str] = []
    cfg = ClipsConfig(keep=True, before_s=1, after_s=1, **config)
    k = ClipKeeper(cfg, tmp_path / "clips", FPS, SIZE, lambda n, d, c: sent.append((n, d, c)), logged.append,
                   clock=clock or Clock())  # fmt: skip
    return k, sent, logged


def play(k: ClipKeeper, frames: range, events: dict[int, list[bytes]]) -> None:
    for i in frames:
        for payload in events.get(i, []):
            k.heard("action", payload)
        k.update(i, 1_700_000_000 + i / FPS, frame(i), [])


def frames_of(data: bytes, tmp_path: Path) -> list[np.ndarray]:
    path = tmp_path / "decoded.mp4"
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            return out
        out.append(image)


def test_an_unsure_action_keeps_the_seconds_around_it_from_the_ring_and_sends_it_with_its_event_id(tmp_path):
    k, sent, _ = keeper(tmp_path)
    # the segment [40, 45) is heard when it closes, at frame 52: its clip starts a second before it (frame 30)
    play(k, range(60), {52: [action("ev-unsure-1", 40, 45, 0.80), action("ev-sure-1", 45, 50, 0.95)]})
    k.close()
    assert len(sent) == 1
    name, data, covers = sent[0]
    assert covers == ("ev-unsure-1",)  # the sure one overlaps it, but is not what the clip is for
    assert name == f"clip-{round((1_700_000_000 + 30 / FPS) * 1000)}-10-15.mp4"  # the unsure frames within the clip
    decoded = frames_of(data, tmp_path)
    assert len(decoded) == 45 - 1 - 30 + 1 + 10  # frames 30..54: a second before, a second after
    bright = [int((f[SIZE[1] // 2, :, 1] > 120).sum()) for f in decoded]
    assert abs(bright[0] - 90) <= 3 and abs(bright[-1] - (54 * 3) % SIZE[0]) <= 3  # frame 30 first, 54 last
    assert (tmp_path / "clips" / name).read_bytes() == data  # kept on the box too


def test_sure_events_keep_no_clip_and_a_moment_inside_an_open_clip_joins_it(tmp_path):
    k, sent, _ = keeper(tmp_path)
    play(k, range(80), {20: [action("ev-sure-2", 10, 15, 0.95)], 35: [action("ev-a", 28, 32, 0.7)],
                        41: [action("ev-b", 36, 39, 0.7)]})  # fmt: skip
    k.close()
    assert [c for _, _, c in sent] == [("ev-a", "ev-b")]
    assert sent[0][0].endswith("-10-21.mp4")  # from frame 18: the stretch is frames 28..38


def test_the_start_of_an_unfamiliar_stretch_keeps_a_clip_named_so_even_with_no_event(tmp_path):
    k, sent, _ = keeper(tmp_path)
    for i in range(70):
        if 30 <= i < 45:  # the guard finds fifteen frames unfamiliar: one stretch, one clip
            k.unfamiliar(i)
        k.update(i, 1_700_000_000 + i / FPS, frame(i), [])
    k.close()
    assert [(n, c) for n, _, c in sent] == [(f"clip-{round((1_700_000_000 + 20 / FPS) * 1000)}-10-11-unfamiliar.mp4",
                                             ())]  # fmt: skip


def test_at_most_max_per_hour_and_within_the_disk_budget_the_oldest_deleted_first(tmp_path):
    clock = Clock()
    k, sent, _ = keeper(tmp_path, clock, max_per_hour=2)
    events = {i: [action(f"ev-{i}", i - 8, i - 5, 0.5)] for i in (20, 50, 80)}
    play(k, range(100), events)
    k.close()
    assert [c for _, _, c in sent] == [("ev-20",), ("ev-50",)] and k.skipped == 1
    size = len(sent[0][1])
    clock.now += 7200  # an hour later there is room again; the budget holds about one clip
    k2, sent2, logged2 = keeper(tmp_path, clock, max_mb=1.5 * size / 1e6)
    assert len(k2.clips()) == 1 and any("over the clips' disk budget" in m for m in logged2)
    play(k2, range(100, 130), {120: [action("ev-120", 112, 115, 0.5)]})
    k2.close()
    assert [c for _, _, c in sent2] == [("ev-120",)]
    assert [p.name for p in k2.clips()] == [sent2[0][0]]  # the new one stays, the older went


def test_a_clip_is_never_half_there_and_what_a_dead_agent_left_is_deleted(tmp_path):
    k, sent, _ = keeper(tmp_path)
    play(k, range(50), {45: [action("ev-c", 40, 44, 0.5)]})  # open: waiting for the second after it
    folder = tmp_path / "clips"
    assert not list(folder.glob("clip-*")) and not sent  # nothing under a clip's name while it is written
    play(k, range(50, 60), {})
    k.close()
    assert [p.name for p in folder.glob("clip-*")] == [sent[0][0]]
    assert not list(folder.glob(f"{WRITING}*"))
    (folder / f"{WRITING}123.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")  # what a killed agent left
    keeper(tmp_path)
    assert not list(folder.glob(f"{WRITING}*")) and len(list(folder.glob("clip-*"))) == 1


def test_retention_deletes_a_kept_clip_on_the_box_and_from_the_spool(tmp_path):
    clock = Clock()
    spool = Spool(tmp_path / "outgoing", 10_000_000)
    cfg = ClipsConfig(keep=True, before_s=1, after_s=1, retention_days=2)
    k = ClipKeeper(cfg, tmp_path / "clips", FPS, SIZE, lambda n, d, c: spool.put("clip", n, d, c), lambda m: None,
                   clock=clock)  # fmt: skip
    k.on_discard = lambda name: spool.discard("clip", name)
    play(k, range(40), {30: [action("ev-d", 20, 25, 0.5)]})
    k.close()
    assert len(k.clips()) == 1 and [i.name for i in spool.waiting()] == [k.clips()[0].name]
    clock.now += 1.9 * 86400
    k.sweep()
    assert len(k.clips()) == 1  # control: within its retention it stays
    clock.now += 0.2 * 86400
    k.sweep()
    assert k.clips() == [] and spool.waiting() == []


def test_unsure_reasons():
    c = ClipsConfig(keep=True)
    assert unsure_reason("action", {"confidence": 0.8}, c) == "low action confidence"
    assert unsure_reason("action", {"confidence": 0.9}, c) is None
    assert unsure_reason("action", {"confidence": 0.9, "sku_confidence": 0.5}, c) == "low product confidence"
    assert unsure_reason("pick", {"confidence": 0.5}, c) == "low product confidence"
    assert unsure_reason("pick", {"confidence": 0.9, "familiar": False}, c) == "unfamiliar"
    assert unsure_reason("basket", {"confidence": 0.1}, c) is None


def test_the_ring_is_bounded_by_seconds_and_by_memory():
    ring = FrameRing(fps=10, seconds=3, frame_bytes=1000, max_bytes=20_000)
    assert ring.capacity == 20
    for i in range(50):
        ring.push(Kept(i, float(i), np.zeros((1, 1, 3), np.uint8), ()))
    assert [k.index for k in ring.since(0)] == list(range(30, 50))


@pytest.fixture
def textured() -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
    blocks = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)  # a shopper seen from above: patches of 10 pixels
    image[30:90, 50:110] = cv2.resize(blocks, (60, 60), interpolation=cv2.INTER_NEAREST)
    image[55:65, 75:85] = 120  # a flat patch on the head: a blur leaves it as it was
    return image


def test_with_blurring_on_no_head_pixel_of_a_kept_clip_equals_the_original(tmp_path, textured):
    shopper = Shopper(1, (80.0, 60.0), (50, 30, 110, 90), 0, 0, 0)
    ((x0, y0, x1, y1),) = head_boxes([shopper], 1.0, SIZE)
    assert (x0, y0, x1, y1) == (65, 45, 96, 76)
    blurred = blur_heads(textured, [(x0, y0, x1, y1)])
    assert not np.all(blurred[y0:y1, x0:x1] == textured[y0:y1, x0:x1], axis=2).any()  # not one pixel as it was
    assert np.array_equal(blurred[:, :x0], textured[:, :x0])  # the rest of the picture is untouched

    # Through the keeper and the encoder: the clip's heads are far from the original, the rest of it close to it.
    def clip(blur: bool) -> list[np.ndarray]:
        k, sent, _ = keeper(tmp_path / str(blur), blur_heads=blur)
        for i in range(30):
            if i == 25:
                k.heard("action", action("ev-h", 15, 20, 0.5))
            k.update(i, float(i), textured, [shopper])
        k.close()
        return frames_of(sent[0][1], tmp_path)

    def far(frames: list[np.ndarray], region: tuple[slice, slice]) -> float:
        return float(np.mean([np.abs(f[region].astype(int) - textured[region].astype(int)).mean() for f in frames]))

    head, body = (slice(y0, y1), slice(x0, x1)), (slice(30, 42), slice(50, 110))
    plain, hidden = clip(False), clip(True)
    assert far(plain, head) < 12 and far(hidden, body) < 12  # the encoder keeps what it is given close (5, 4)
    assert far(hidden, head) > 3 * far(plain, head)  # 40 against 5
    for f in hidden:
        assert not np.all(f[head] == textured[head], axis=2).any()


@pytest.mark.long  # an agent on a paced ten-second stream, twice
def test_an_agent_killed_while_it_writes_a_clip_leaves_no_half_clip(tmp_path):
    video = sample(tmp_path, 300)
    config = tmp_path / "box.yaml"
    config.write_text(f"store: s1\nbox: b1\ncamera: {{source: {video}}}\nbundle: {DEMO_BUNDLE}\nthreads: 1\n"
                      f"outbox: {{path: {tmp_path / 'state' / 'outbox.sqlite'}}}\n"
                      "clips: {keep: true, before_s: 3, after_s: 30, max_s: 60, review_confidence: 0.99}"
                      "\n")  # fmt: skip
    clips = tmp_path / "state" / "clips"
    command = shelfwatch_command("edge", "run", "--config", config, "--realtime")
    with (tmp_path / "agent.err").open("wb") as err:
        agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    try:
        assert wait(lambda: list(clips.glob(".writing-*")) or agent.poll() is not None, 90)
        assert agent.poll() is None, (tmp_path / "agent.err").read_text()[-2000:]
        time.sleep(0.5)  # in the middle of it: frames are being encoded (for about 3 s)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert list(clips.glob(".writing-*"))  # it was killed mid-write ...
    assert not list(clips.glob("clip-*"))  # ... and no clip is there under a clip's name
    # The next start deletes what was left.
    again = subprocess.run([*command[:-1], "--max-frames", "30"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not list(clips.glob(".writing-*"))
    assert not list(clips.glob("clip-*"))
