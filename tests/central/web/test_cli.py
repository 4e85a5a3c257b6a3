"""`shelfwatch web` listens before it prints its address: whoever reads the address may connect at once, even while
the server has not started serving (one CI run's browser was refused by a socket bound but not yet listening)."""

from __future__ import annotations

import os
import signal
import socket
from urllib.parse import urlsplit

from tests.central.web.conftest import Server
from tests.central.web.test_dashboard import wait_healthy


def test_the_printed_address_takes_connections_before_the_server_serves(tmp_path):
    server = Server("web", "--port", 0, pattern=r"analysis page: (http://\S+/)", cwd=tmp_path)
    os.kill(server.proc.pid, signal.SIGSTOP)  # frozen right after printing: only the kernel can take the connection
    try:
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname, address.port), timeout=5):
            pass  # a socket bound but not listening refuses here
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    try:
        wait_healthy(server.url)
    finally:
        server.stop()
