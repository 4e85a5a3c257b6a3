"""What a request body can cost `shelfwatch central run`, measured on the real process: its peak resident memory
(VmHWM) and the bytes it wrote (wchar: files and sockets alike) while large bodies are sent at it, chunked
(no Content-Length to refuse them by) and without, with no token and with one.

    python bench/request_bodies.py [--mb 200]

Each line: the request, the answer, how much of the body the server took before it answered, the growth of the
server's peak memory, the bytes it wrote, and what was left on disk (its temporary folder and the analyses' work
folder). Upload limit: 20 MB (the web config's max_upload_mb here).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.central.hostile import MB, Meter, filler, folder_bytes, multipart, request  # noqa: E402
from tests.central.web.conftest import central_with_pages  # noqa: E402
from tests.conftest import Broker  # noqa: E402

FORM = "multipart/form-data; boundary=xyz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="body size in MB (default 200)")
    args = parser.parse_args()
    size = args.mb * MB
    with tempfile.TemporaryDirectory(prefix="shelfwatch-bodies-") as tmp:
        folder = Path(tmp)
        broker = Broker(folder / "broker")
        broker.start()
        central = central_with_pages(folder, broker.port, max_upload_mb=20)
        token = {"Authorization": f"Bearer {central.tokens['s1']}"}
        meter = Meter(central.proc.pid)
        pos_body = b'{"type": "item", "sku": "'
        cases = [
            ("no token, /web/api/analyses/clip, multipart, chunked", "/web/api/analyses/clip", {"Content-Type": FORM},
             lambda: multipart("xyz", {"clip": "c.mp4"}, "file", size), True),
            ("no token, /web/api/analyses (upload), chunked", "/web/api/analyses", {"Content-Type": FORM},
             lambda: multipart("xyz", {}, "file", size), True),
            ("no token, /pos, JSON, chunked", "/pos", {"Content-Type": "application/json"},
             lambda: filler(size, pos_body), True),
            ("no token, /pos, JSON, Content-Length 100 (a lie)", "/pos",
             {"Content-Type": "application/json", "Content-Length": "100"}, lambda: filler(size, pos_body), False),
            ("no token, /login form, chunked", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
             lambda: filler(size, b"token="), True),
            ("token, /web/api/analyses (upload), chunked", "/web/api/analyses", {**token, "Content-Type": FORM},
             lambda: multipart("xyz", {}, "file", size), True),
            ("token, /pos, JSON, chunked", "/pos", {**token, "Content-Type": "application/json"},
             lambda: filler(size, pos_body), True),
        ]  # fmt: skip
        print(f"{args.mb} MB bodies at central run (pid {central.proc.pid})")
        print(f"{'request':<52} {'answer':>6} {'sent':>10} {'memory':>9} {'written':>10} {'left':>6}")
        try:
            for name, path, headers, body, chunked in cases:
                peak, written = meter.peak_bytes(), meter.written_bytes()
                answer = request(central.url, "POST", path, headers, body(), chunked=chunked)
                grown, wrote = meter.peak_bytes() - peak, meter.written_bytes() - written
                left = folder_bytes(folder / "tmp") + folder_bytes(folder / "work")
                print(f"{name:<52} {answer.status:>6} {answer.sent / MB:>7.1f} MB {grown / 1e3:>6.0f} kB "
                      f"{wrote / 1e3:>7.1f} kB {left:>6}")  # fmt: skip
        finally:
            central.stop()
            broker.stop()
    print("sent: what the client got into the connection before the answer (most of it waits in the kernel's socket "
          "buffers; the server reads none of a body it refuses)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
