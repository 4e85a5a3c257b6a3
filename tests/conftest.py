"""Shared test set-up. In CI (CI=true) a skipped test counts as a failure: nothing may skip there."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shelfwatch.cli import process_environment

process_environment()  # as the `shelfwatch` command does at its start (tests import the components directly)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's agents keep their default outboxes in a folder of the test's own (inherited by subprocesses),
    never in the user's state directory, where runs would share one outbox."""
    monkeypatch.setenv("SHELFWATCH_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def shelfwatch() -> Callable[..., subprocess.CompletedProcess]:
    """Run the `shelfwatch` command as a user would, in a fresh process; arguments may be paths."""

    def run(*args: object, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
        return subprocess.run(
            shelfwatch_command(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
        )

    return run


def shelfwatch_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "shelfwatch", *(str(a) for a in args)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Mosquitto of the test's own, on a free port; it can be stopped and started again (its persistent
    sessions and queued messages survive, as on a real broker)."""

    def __init__(self, folder: Path, extra: str = "") -> None:
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        # `user root`: started as root, Mosquitto otherwise drops to its own user, which cannot write into root's
        # private tmp, and then silently keeps nothing (no persistence, no log); as another user it has no effect.
        self.conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nautosave_interval 1\nlog_dest file {folder}/mosquitto.log\n{extra}"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import socket
        import time

        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto did not start: {self.proc.stderr.read().decode()}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not open its port")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def saved_after(path: Path, since_ns: int, timeout: float = 60) -> Path:
    """A Mosquitto save file (`path`) once an autosave has written it after `since_ns` (time.time_ns()): what the
    broker queued by then survives its kill -9."""
    import time

    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_mtime_ns > since_ns):
        assert time.monotonic() < deadline, f"{path}: no autosave in {timeout} s"
        time.sleep(0.1)
    return path


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A consumer with a persistent session (QoS 1): what is published while it is away waits for it."""

    def __init__(self, port: int, topic: str = "shelfwatch/v1/#", client_id: str = "test-consumer") -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def payloads(self, kind: str | None = None) -> list[dict]:
        import json

        with self.lock:
            out = [json.loads(p) for t, p, _ in self.messages]
        return [m for m in out if kind is None or m["kind"] == kind]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="session")
def seeded_clips(tmp_path_factory: pytest.TempPathFactory):
    """Seeded synthetic clips, each rendered once per session and watched once by the demo bundle (tests/clips.py)."""
    from tests.clips import ClipCache

    return ClipCache(tmp_path_factory.mktemp("seeded-clips"))
