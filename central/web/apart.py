"""Reading an uploaded file in a process of its own, under the analyses' memory limit (`worker_memory_mb`): decoding
a hostile file costs that process, never the server (an 8K frame took 350 MB of the server's memory when the server
decoded it itself). The module run sets the limit itself and prints one JSON line: its answer, or `{"error": ...}`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from edge.errors import ShelfWatchError


def run_apart(module: str, args: Sequence[str], memory_mb: int, timeout_s: float) -> dict[str, Any]:
    """`python -m module args...`'s answer; ShelfWatchError with one line when it errs, runs out or takes too long."""
    env = {**os.environ, "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
    try:
        done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              timeout=timeout_s, env=env)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ShelfWatchError(f"the file could not be read in {timeout_s:g} s") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        ran_out = done.returncode < 0 or "MemoryError" in done.stderr
        raise ShelfWatchError(f"the file could not be read within the memory an analysis may use ({memory_mb} MB, "
                              "worker_memory_mb)" if ran_out else "the file could not be read") from None  # fmt: skip
    if "error" in answer:
        raise ShelfWatchError(answer["error"])
    return answer


def answer_apart(read: Callable[[], Any], memory_mb: int) -> int:
    """The child's side: set the memory limit, run `read` (a dataclass answer), print it or the error as one JSON
    line (what `run_apart` reads). Exit code 0 either way: the line says which."""
    import cv2

    from central.web.worker import limit_memory

    limit_memory(memory_mb)
    try:
        answer = asdict(read())
    except ShelfWatchError as exc:
        answer = {"error": str(exc)}
    except (MemoryError, cv2.error) as exc:  # OpenCV says "Insufficient memory" in its own error
        memory_was_it = isinstance(exc, MemoryError) or "Insufficient memory" in str(exc)
        answer = {"error": f"the file could not be read within the memory an analysis may use ({memory_mb} MB, "
                           "worker_memory_mb)" if memory_was_it else "the file could not be decoded"}  # fmt: skip
    print(json.dumps(answer), flush=True)
    return 0
