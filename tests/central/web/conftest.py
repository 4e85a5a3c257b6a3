"""The pages in a real browser: Debian's Chromium (`apt-get install chromium`, as .ci/run does) driven by
Playwright for Python; Playwright's own browser download is never used. Servers are started as a user would,
with the `shelfwatch` command, and tests read the address it prints."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, shelfwatch_command

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
REPO = Path(__file__).resolve().parents[3]
# SHELFWATCH_SCREENSHOTS=docs makes the tests refresh the README's screenshots.
SCREENSHOTS = os.environ.get("SHELFWATCH_SCREENSHOTS")


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


class Server:
    """A `shelfwatch` server process; `url` is the address it printed."""

    def __init__(self, *args: object, pattern: str, cwd: Path, timeout: float = 30, env: dict | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen(shelfwatch_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=cwd, env=env)  # fmt: skip
        self.output: list[str] = []
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            self.output.append(line)
            found = re.search(pattern, line)
            if found:
                self.url = found.group(1).rstrip("/")
                return
        self.stop()
        raise RuntimeError("the server did not start: " + "".join(self.output))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def web_config(folder: Path, **settings: object) -> Path:
    path = folder / "web.yaml"
    values = {"bundles_dir": REPO / "models", "default_bundle": REPO / "models" / "demo", "work_dir": folder / "work",
              **settings}  # fmt: skip
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    return path


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / SCREENSHOTS / name), full_page=True)


def central_with_pages(folder: Path, broker_port: int, stores: tuple[str, ...] = ("s1",), **settings: object) -> Server:
    """`shelfwatch central run` serving the pages with `settings` as its web config, and an API token for each of
    `stores` (`server.tokens`); its temporary files go to `folder/tmp`."""
    from central import auth
    from central.db import connect

    db = f"sqlite:///{folder / 'central.db'}"
    engine = connect(db)  # what `shelfwatch central token create` does, without a process start per token
    tokens = {store: auth.create(engine, store, "tests")[1] for store in stores}
    engine.dispose()
    (folder / "tmp").mkdir(exist_ok=True)
    server = Server("central", "run", "--mqtt", f"mqtt://127.0.0.1:{broker_port}", "--db", db, "--http",
                    f"127.0.0.1:{free_port()}", "--web-config", web_config(folder, **settings),
                    pattern=r"pages at (http://\S+/)", cwd=folder, env={"TMPDIR": str(folder / "tmp")})  # fmt: skip
    server.tokens, server.folder = tokens, folder
    return server
