"""Shared test set-up. In CI (CI=true) a skipped test counts as a failure: nothing may skip there."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"


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
