"""What a broker kill -9 loses, and what closing the window costs in disk writes: Mosquitto saves its in-memory
database (sessions, queued messages) every `autosave_interval` seconds, or, with `autosave_on_changes true`, after
that many changes (a queued message is one). Whatever it acknowledged and neither delivered nor saved is lost on
kill -9.

    python bench/broker_autosave.py [--rate 1000] [--seconds 10] [--repeats 3] [--payload 400]

For each setting, side by side in each round: a publisher sends QoS 1 messages at --rate (a box's events, --payload
bytes each) to a broker with persistence; central's persistent session is either connected and acknowledging
("central up") or away, its messages queueing ("central away"). After --seconds the broker is killed (-9) and
started again, central's session reconnects, and every acknowledged message it never receives is lost. Printed:
the medians over the rounds of lost messages, bytes the broker wrote to disk per second, and the rate it
acknowledged at (a broker busy saving acknowledges slower).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETTINGS = {  # name -> mosquitto.conf lines
    "autosave_interval 1 (every second)": "autosave_interval 1\n",
    "autosave_on_changes, every 1 change": "autosave_on_changes true\nautosave_interval 1\n",
    "autosave_on_changes, every 10 changes": "autosave_on_changes true\nautosave_interval 10\n",
    "autosave_on_changes, every 100 changes": "autosave_on_changes true\nautosave_interval 100\n",
}
TOPIC = "shelfwatch/v1/bench/box/pick"


class Mosquitto:
    def __init__(self, folder: Path, setting: str) -> None:
        from tests.conftest import free_port

        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True)
        (folder / "mosquitto.conf").write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nmax_queued_messages 0\nmax_inflight_messages 1000\n{setting}"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import socket

        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.folder / "mosquitto.conf")],
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)

    def written(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
        return 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def client(port: int, client_id: str, on_message=None, session: bool = False):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    if on_message is not None:
        c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600 if session else 0
    c.connect("127.0.0.1", port, clean_start=False if session else True, properties=props)
    c.loop_start()
    assert connected.wait(10)
    return c


def one_run(folder: Path, setting: str, central_up: bool, args: argparse.Namespace) -> dict:
    broker = Mosquitto(folder, setting)
    broker.start()
    received: set[int] = set()
    lock = threading.Lock()

    def got(c, u, msg) -> None:
        with lock:
            received.add(int(msg.payload[:10]))

    central = client(broker.port, "central", got, session=True)
    central.subscribe(TOPIC, qos=1)
    time.sleep(0.5)
    if not central_up:
        central.disconnect()
        central.loop_stop()
    # A PUBACK may come back before publish() returns its mid: acknowledged mids are noted as they come and matched
    # to messages afterwards (mids are not reused within a run: fewer than 65,535 messages).
    assert args.rate * args.seconds < 65_000
    acked_mids: list[int] = []
    mids: dict[int, int] = {}
    box = client(broker.port, "box")
    box.on_publish = lambda c, u, mid, rc, props: acked_mids.append(mid) if rc.value < 0x80 else None
    filler = b"x" * max(0, args.payload - 11)
    started, written = time.monotonic(), broker.written()
    n = 0
    while (elapsed := time.monotonic() - started) < args.seconds:
        target = int(elapsed * args.rate)
        while n < target:
            mids[box.publish(TOPIC, b"%010d " % n + filler, qos=1).mid] = n
            n += 1
        time.sleep(0.001)
    wrote = broker.written() - written
    took = time.monotonic() - started
    broker.kill()  # mid-stream: the publisher is still sending
    acked_at_kill = {mids[m] for m in list(acked_mids)}
    box.loop_stop()
    if central_up:
        central.loop_stop()
    broker.start()
    after = client(broker.port, "central", got, session=True)
    quiet = time.monotonic()
    last = -1
    while time.monotonic() - quiet < 2:  # until nothing more comes for 2 s
        with lock:
            if len(received) != last:
                last, quiet = len(received), time.monotonic()
        time.sleep(0.1)
    after.disconnect()
    after.loop_stop()
    broker.kill()
    return {"lost": len(acked_at_kill - received), "acked_rate": len(acked_at_kill) / took,
            "written_per_s": wrote / took, "sent": n}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="messages per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=10, help="publishing time before the kill (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are printed (default 3)")
    parser.add_argument("--payload", type=int, default=400, help="bytes per message (default 400, an event)")
    args = parser.parse_args()
    results: dict[tuple[str, bool], list[dict]] = {}
    runs = 0
    with tempfile.TemporaryDirectory(prefix="shelfwatch-autosave-") as tmp:
        for round_ in range(args.repeats):
            for central_up in (True, False):
                for name, setting in SETTINGS.items():
                    runs += 1
                    run = one_run(Path(tmp) / f"run-{runs}", setting, central_up, args)
                    results.setdefault((name, central_up), []).append(run)
                    print(f"round {round_ + 1}, central {'up' if central_up else 'away'}, {name}: {run}", flush=True)
    print(f"\n{args.rate:g} messages/s of {args.payload} bytes for {args.seconds:g} s, then kill -9; medians of "
          f"{args.repeats}")  # fmt: skip
    print(f"{'setting':<40} {'central':<7} {'lost':>7} {'acked/s':>8} {'disk MB/s':>10}")
    for (name, central_up), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("lost", "acked_rate", "written_per_s")}
        print(f"{name:<40} {'up' if central_up else 'away':<7} {med['lost']:>7.0f} {med['acked_rate']:>8.0f} "
              f"{med['written_per_s'] / 1e6:>10.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
