"""The box's side of the channel, piece by piece: the spool keeps files whole and within its budget (oldest
dropped first, counted), a control message the agent does not know is refused with one line in its status, and a
download central cuts short (a restart mid-answer) is resumed, not refused."""

import hashlib
import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge.config import UplinkConfig
from edge.control import CONTROL_VERSION, FileRef, SnapshotRequest, encode_control
from edge.times import as_utc
from edge.uplink import Away, Spool, Uplink


def test_the_spool_keeps_files_whole_oldest_first_and_drops_the_oldest_beyond_its_budget(tmp_path):
    spool = Spool(tmp_path / "out", max_bytes=2500)
    for i in range(4):
        spool.put("clip", f"clip-{i}.mp4", bytes([i]) * 1000, (f"evt-{i}",))
    (tmp_path / "out" / ".in-half-written").write_bytes(b"x" * 10)  # what a crash mid-write leaves: never listed
    waiting = spool.waiting()
    assert [w.name for w in waiting] == ["clip-2.mp4", "clip-3.mp4"]  # 4000 bytes > 2500: the two oldest went
    assert spool.dropped() == 2
    assert waiting[0].path.read_bytes() == bytes([2]) * 1000 and waiting[0].covers == ("evt-2",)
    spool.remove(waiting[0])
    assert [w.name for w in Spool(tmp_path / "out", 2500).waiting()] == ["clip-3.mp4"]  # as a restart finds it


def uplink(tmp_path: Path, emitted: list, url: str = "https://127.0.0.1:9") -> Uplink:
    token = tmp_path / "token"
    token.write_text("swt_000000000000_" + "a" * 43)
    config = UplinkConfig(url=url, token_file=token)
    return Uplink(config, "s1", "b1", tmp_path / "state", lambda kind, **f: emitted.append((kind, f)))


def test_a_control_message_of_a_newer_version_is_refused_in_one_line(tmp_path):
    emitted: list = []
    box = uplink(tmp_path, emitted)
    newer = {"v": CONTROL_VERSION + 1, "name": "snapshot", "issued": "2026-12-06T00:00:00Z", "request_id": "r1"}
    box.control("snapshot", json.dumps(newer).encode())
    problem = box.status()["problem"]
    assert problem == "control/snapshot: control version '2'; this agent knows version 1: upgrade the agent"
    assert box.snapshot_wanted is None
    box.control("snapshot", b"\x00not json")
    assert box.status()["problem"] == "control/snapshot: not JSON"


def test_a_retained_snapshot_request_is_answered_once(tmp_path):
    """Control messages are retained: the same request comes again at every reconnect."""
    emitted: list = []
    box = uplink(tmp_path, emitted)
    request = encode_control(SnapshotRequest(issued=as_utc(datetime(2026, 12, 6)), request_id="r7"))
    box.control("snapshot", request)
    assert box.snapshot_due(quiet=True) and not box.snapshot_due(quiet=False)
    box.take_snapshot(b"\xff\xd8\xff jpeg", quiet=True)
    assert [w.name for w in box.spool.waiting()] == ["snapshot-r7.jpg"]
    assert emitted == [("control", {"name": "snapshot", "state": "done", "detail": "snapshot-r7.jpg"})]
    box.control("snapshot", request)  # the broker hands the retained request over again
    assert box.snapshot_wanted is None and len(box.spool.waiting()) == 1


class Restarting(BaseHTTPRequestHandler):
    """Central's file answer, but the first one stops halfway and the connection closes, as when central restarts
    in the middle of sending a bundle; later ones honour the Range header."""

    body = bytes(range(256)) * 400
    answered = 0

    def do_GET(self) -> None:
        start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").rstrip("-"))
        part = self.body[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        type(self).answered += 1
        self.wfile.write(part[: len(part) // 2] if type(self).answered == 1 else part)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_a_download_cut_short_by_a_central_restart_is_resumed_not_refused(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Restarting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        emitted: list = []
        box = uplink(tmp_path, emitted, url=f"http://127.0.0.1:{server.server_port}")
        body = Restarting.body
        ref = FileRef(name="bundle.tar", size=len(body), sha256=hashlib.sha256(body).hexdigest())
        with pytest.raises(Away, match=r"interrupted: bundle\.tar at 51200 of 102400 bytes"):
            box.fetch("bundle", ref)
        assert emitted == []  # nothing refused
        got = box.fetch("bundle", ref)  # the next try asks for the rest only
        assert got is not None and got.read_bytes() == body and Restarting.answered == 2
    finally:
        server.shutdown()
