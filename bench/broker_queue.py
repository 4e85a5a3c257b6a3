"""What a consumer's queue costs the broker: its memory and its save file per queued message, measured on Mosquitto
with persistence while central's persistent session is away and a box publishes.

    python bench/broker_queue.py [--messages 100000] [--payload 400 --payload 1024]

Prints, per payload size, the broker's resident memory and save file before and after the messages were queued,
and per message. The provisioned broker keeps up to `max_queued_messages` per absent consumer (see
firmware_config/broker.py): multiply to get what a full queue costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.broker_autosave import Mosquitto, client  # noqa: E402

TOPIC = "shelfwatch/v1/store-with-a-long-name/aisle-1-left/pick"  # a topic of typical length


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def saved(path: Path, since: float, timeout: float = 60) -> int:
    """The save file's size once the broker has written it after `since` (autosave every second; a busy machine may
    take longer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime >= since:
            return path.stat().st_size
        time.sleep(0.1)
    raise SystemExit(f"{path}: the broker wrote no save file within {timeout:g} s")


def measure(folder: Path, messages: int, payload: int) -> dict:
    broker = Mosquitto(folder, "autosave_interval 1\n")
    broker.start()
    try:  # the broker is killed whatever happens: left running, it would hold the caller's output open
        central = client(broker.port, "central", session=True)
        central.subscribe(TOPIC, qos=1)
        time.sleep(0.5)
        central.disconnect()
        central.loop_stop()
        assert broker.proc is not None
        before_file = saved(folder / "mosquitto.db", time.time())
        before_rss = rss(broker.proc.pid)
        acked = threading.Semaphore(0)
        box = client(broker.port, "box")
        box.on_publish = lambda *a: acked.release()
        body = b"x" * payload
        for n in range(messages):
            box.publish(TOPIC, body, qos=1)
            if n % 1000 == 999:  # at most 1000 in flight
                for _ in range(1000):
                    acked.acquire()
        box.disconnect()
        box.loop_stop()
        after_file = saved(folder / "mosquitto.db", time.time() + 0.5)  # a save after the last message
        after_rss = rss(broker.proc.pid)
    finally:
        broker.kill()
    return {"rss": after_rss - before_rss, "file": after_file - before_file}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages queued (default 100,000)")
    parser.add_argument("--payload", type=int, action="append", help="payload bytes (default 400 and 1024)")
    args = parser.parse_args()
    print(f"{args.messages:,} messages queued for an absent consumer on {TOPIC!r} ({len(TOPIC)} bytes)")
    print(f"{'payload':>8} {'memory MB':>10} {'per message':>12} {'save file MB':>13} {'per message':>12}")
    with tempfile.TemporaryDirectory(prefix="shelfwatch-queue-") as tmp:
        for payload in args.payload or [400, 1024]:
            got = measure(Path(tmp) / str(payload), args.messages, payload)
            print(f"{payload:>8} {got['rss'] / 1e6:>10.1f} {got['rss'] / args.messages:>10.0f} B "
                  f"{got['file'] / 1e6:>13.1f} {got['file'] / args.messages:>10.0f} B")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
