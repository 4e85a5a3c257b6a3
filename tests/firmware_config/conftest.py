"""A store provisioned into a temporary folder, and Mosquitto running with exactly the files it wrote."""

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.firmware_config.test_store import copy_example


class ProvisionedBroker:
    """Mosquitto run with the provisioned config as written, plus `user root`: here the tests run as root and the
    files sit in root's private tmp; on a broker host Mosquitto runs as its own user, which must own the folder."""

    def __init__(self, out: Path, tmp: Path) -> None:
        self.conf = tmp / "mosquitto-test.conf"
        self.conf.write_text("user root\n" + (out / "broker" / "mosquitto.conf").read_text())
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert self.proc.poll() is None, self.proc.stderr.read().decode()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def provisioned(tmp_path, shelfwatch):
    store = copy_example(tmp_path)
    text = (store / "store.yaml").read_text().replace("broker.example-store.lan", "127.0.0.1")
    (store / "store.yaml").write_text(text)
    out, box_port, consumer_port = tmp_path / "out", free_port(), free_port()
    result = shelfwatch("provision", store, "--out", out, "--box-port", box_port, "--consumer-port", consumer_port)
    assert result.returncode == 0, result.stderr
    broker = ProvisionedBroker(out, tmp_path)
    broker.start()
    yield {"out": out, "box_port": box_port, "consumer_port": consumer_port, "tmp": tmp_path, "broker": broker}
    broker.stop()
