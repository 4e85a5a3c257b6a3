"""Issue 21.4: the analysis queue is bounded, against `central run` with two stores' tokens. One store cannot
fill the queue or the work folder (caps per store and in all; waiting analyses count in `keep_analyses`), another
store's analysis does not wait behind it, a picture over the resolution cap is refused at upload, and a clip that
needs more memory than the worker may have ends its own analysis with a clear message, never the server.

A running analysis is held still with SIGSTOP where the test needs the queue to stand still."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.central.hostile import MB, Meter
from tests.central.web.conftest import Server, central_with_pages
from tests.clips import bars_clip
from tests.conftest import Broker


def call(server: Server, store: str, method: str, path: str, body: bytes | None = None,
         content_type: str | None = None) -> tuple[int, dict]:  # fmt: skip
    headers = {"Authorization": f"Bearer {server.tokens[store]}", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(f"{server.url}{path}", body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def upload(server: Server, store: str, video: Path) -> tuple[int, dict]:
    data = video.read_bytes()
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\nContent-Type: video/mp4\r\n\r\n'
            % video.name.encode() + data + b"\r\n--b--\r\n")  # fmt: skip
    return call(server, store, "POST", "/web/api/analyses", body, "multipart/form-data; boundary=b")


def state(server: Server, store: str, job: dict) -> dict:
    return call(server, store, "GET", f"/web/api/analyses/{job['id']}")[1]


def wait_state(server: Server, store: str, job: dict, wanted: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (view := state(server, store, job))["state"] not in wanted:
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    return view


def worker_of(server: Server, job: dict) -> int:
    """The pid of the worker process running `job` (a child of central)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                try:
                    if job["id"] in Path(f"/proc/{pid}/cmdline").read_bytes().decode():
                        return int(pid)
                except OSError:
                    continue
        time.sleep(0.05)
    raise AssertionError(f"no worker for {job['id']}")


def analyses_on_disk(server: Server) -> set[str]:
    return {p.name for p in (server.folder / "work").iterdir() if p.is_dir()}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:  # the 8K clip is 0.3 MB: an attacker's file costs nothing to send
    folder = tmp_path_factory.mktemp("clips")
    return {"small": bars_clip(folder / "small.mp4", 320, 240, 30), "hd": bars_clip(folder / "hd.mp4", 1920, 1080, 10),
            "8k": bars_clip(folder / "8k.mp4", 7680, 4320, 2)}  # fmt: skip


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def test_one_store_can_neither_fill_the_queue_nor_hold_another_store_back(tmp_path, broker, clips):
    server = central_with_pages(tmp_path, broker.port, ("a", "b"), workers=1, max_queued_per_store=2, max_queued=3,
                                keep_analyses=4)  # fmt: skip
    paused = None
    try:
        code, b0 = upload(server, "b", clips["small"])  # store b's earlier analysis, finished
        assert code == 202, b0
        assert wait_state(server, "b", b0, {"done", "failed"})["state"] == "done"
        code, a1 = upload(server, "a", clips["small"])
        assert code == 202, a1
        assert wait_state(server, "a", a1, {"running"})
        paused = worker_of(server, a1)
        os.kill(paused, signal.SIGSTOP)  # a1 runs until the test lets it go on
        a2, a3 = (upload(server, "a", clips["small"]) for _ in range(2))
        assert [a2[0], a3[0]] == [202, 202] and [a2[1]["ahead"], a3[1]["ahead"]] == [1, 2]
        refused = upload(server, "a", clips["small"])  # a third waiting analysis of store a
        assert refused[0] == 429 and "store a already has 2 analyses waiting" in refused[1]["detail"], refused
        code, b1 = upload(server, "b", clips["small"])
        assert code == 202, b1
        # Store b's analysis goes before store a's second and third (its last start is older): one ahead, a1.
        assert b1["ahead"] == 1 and [state(server, "a", j)["ahead"] for j in (a2[1], a3[1])] == [2, 3]
        # Four analyses kept, all waiting or running: b0 (finished) was deleted to make room for b1.
        assert analyses_on_disk(server) == {a1["id"], a2[1]["id"], a3[1]["id"], b1["id"]}
        full = upload(server, "b", clips["small"])
        assert full[0] == 429 and "3 analyses are already waiting" in full[1]["detail"], full
        assert analyses_on_disk(server) == {a1["id"], a2[1]["id"], a3[1]["id"], b1["id"]}  # nothing left behind
        os.kill(paused, signal.SIGCONT)
        paused = None
        assert wait_state(server, "a", a1, {"done", "failed"})["state"] == "done"
        started = wait_state(server, "b", b1, {"running", "done", "failed"})
        assert started["state"] != "queued" and state(server, "a", a2[1])["state"] == "queued"
    finally:
        if paused is not None:
            os.kill(paused, signal.SIGCONT)
        server.stop()


def test_a_picture_over_the_cap_is_refused_and_a_clip_over_the_memory_limit_ends_only_its_analysis(
    tmp_path, broker, clips
):  # fmt: skip
    # The worker's data peaks at about 410 MB for a 320x240 clip; a 1080p one took 635 MB alone but only 459 MB inside
    # a full make test run (measured; the cause of the difference is not known), so the limit sits between 410 and 459.
    limit_mb = 440
    server = central_with_pages(tmp_path, broker.port, workers=1, threads=1, worker_memory_mb=limit_mb)
    try:
        meter = Meter(server.proc.pid)
        central_peak = meter.peak_bytes()
        code, refused = upload(server, "s1", clips["8k"])  # 1.6 MB at 7680x4320 once took a worker to 3.2 GB
        assert code == 400 and "7680x4320, over the 2,073,600 pixels" in refused["detail"], refused
        assert refused["detail"].startswith("8k.mp4: ")
        code, hd = upload(server, "s1", clips["hd"])
        assert code == 202, hd
        worker = Meter(worker_of(server, hd))
        data_peak = 0
        while (view := state(server, "s1", hd))["state"] in ("queued", "running"):
            try:
                status = Path(f"/proc/{worker.pid}/status").read_text()
                data_peak = max(data_peak, int(status.split("VmData:")[1].split()[0]) * 1024)
            except (OSError, IndexError):
                pass
            time.sleep(0.02)
        assert view["state"] == "failed", (view, f"data peak {data_peak // 2**20} MB")
        # Past its limit an allocation fails where it happens: Python's or NumPy's (the worker says so itself) or a
        # native library's, which may end the process with a signal (central says so from the exit). Either way the
        # page names the limit.
        assert view["error"] in (
            f"the clip needed more memory than an analysis may use ({limit_mb} MB, worker_memory_mb): try a shorter "
            "or smaller clip",
            f"the analysis was ended by SIGSEGV: the clip most likely needed more memory than allowed (its limit is "
            f"{limit_mb} MB: worker_memory_mb)",
        ), view["error"]
        assert 0 < data_peak <= limit_mb * 1024 * 1024
        # The server paid for neither: the 8K frame was decoded by a process of its own (350 MB when central did it).
        assert meter.peak_bytes() - central_peak < 10 * MB, meter.peak_bytes() - central_peak
        code, small = upload(server, "s1", clips["small"])  # and goes on analysing
        assert code == 202, small
        assert wait_state(server, "s1", small, {"done", "failed"})["state"] == "done"
    finally:
        server.stop()
