"""The analysis queue: each upload becomes a job with its own folder; `workers` of them run at once, each in a
worker process (`central.web.worker`), the rest wait their turn. The server reads their progress lines; a
finished job's folder (result, downloads) is reloaded after a restart."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from central.web.config import WebConfig
from central.web.worker import ERROR, RESULT, JobSpec

State = Literal["queued", "running", "done", "failed"]
JOB_ID = r"^[0-9a-f]{16}$"


@dataclass
class Job:
    id: str
    folder: Path
    name: str
    created: float
    state: State = "queued"
    frames: int = 0
    total: int | None = None
    events: int = 0
    fps: float = 0.0
    error: str | None = None
    finished: float | None = None
    store: str | None = None  # whose staff asked for it; None: chain-wide (see JobSpec.store)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return min(1.0, self.frames / self.total) if self.total else 0.0


class JobQueue:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.root = config.work_dir  # made on the first upload: a central nobody uploads to leaves no folder
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(config.workers, thread_name_prefix="shelfwatch-analysis")
        self.closed = False
        self._reload()

    def new_folder(self) -> tuple[str, Path]:
        job_id = secrets.token_hex(8)
        folder = self.root / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def submit(self, job_id: str, folder: Path, spec: JobSpec) -> Job:
        (folder / "job.json").write_text(spec.model_dump_json())
        job = Job(job_id, folder, spec.name, time.time(), store=spec.store)
        with self.lock:
            self.jobs[job_id] = job
        self.pool.submit(self._run, job)
        self._forget_old()
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def ahead_of(self, job: Job) -> int:
        """Jobs running or waiting that came before this one: what it waits for."""
        with self.lock:
            return sum(1 for j in self.jobs.values() if j.state in ("queued", "running") and j.created < job.created)

    def recent(self, visible: Callable[[Job], bool] = lambda job: True, n: int = 10) -> list[Job]:
        with self.lock:
            return sorted((j for j in self.jobs.values() if visible(j)), key=lambda j: -j.created)[:n]

    def _run(self, job: Job) -> None:
        if self.closed:
            return
        job.state = "running"
        env = {**os.environ, "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
        with (job.folder / "worker.log").open("w") as log:
            job.process = subprocess.Popen([sys.executable, "-m", "central.web.worker", str(job.folder)],
                                           stdout=subprocess.PIPE, stderr=log, text=True, env=env)  # fmt: skip
            assert job.process.stdout is not None
            for line in job.process.stdout:
                try:
                    p = json.loads(line)
                    job.frames, job.total, job.events, job.fps = p["frames"], p["total"], p["events"], p["fps"]
                except (ValueError, KeyError, TypeError):
                    continue  # not a progress line
            job.process.wait()
        self._settle(job)

    def _settle(self, job: Job) -> None:
        job.finished = time.time()
        if (job.folder / RESULT).exists():
            job.state = "done"
            return
        job.state = "failed"
        try:
            job.error = json.loads((job.folder / ERROR).read_text())["error"]
        except (OSError, ValueError, KeyError):
            job.error = "the analysis stopped before it finished" + (" (the server is shutting down)"
                                                                      if self.closed else "")  # fmt: skip

    def _reload(self) -> None:
        """Analyses finished before a restart are shown again; one cut off by it is marked failed."""
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            spec_file = folder / "job.json"
            if not spec_file.exists() or not folder.name.isalnum():
                continue
            try:
                spec = JobSpec.model_validate_json(spec_file.read_text())
            except ValueError:
                continue
            job = Job(folder.name, folder, spec.name, spec_file.stat().st_mtime, store=spec.store)
            self._settle(job)
            self.jobs[job.id] = job

    def _forget_old(self) -> None:
        with self.lock:
            finished = sorted((j for j in self.jobs.values() if j.state in ("done", "failed")),
                              key=lambda j: -j.created)  # fmt: skip
            old = finished[self.config.keep_analyses :]
            for j in old:
                del self.jobs[j.id]
        for j in old:
            shutil.rmtree(j.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop: running workers get SIGTERM (they finish the frame and flush), queued jobs never start."""
        self.closed = True
        with self.lock:
            running = [j for j in self.jobs.values() if j.process is not None and j.process.poll() is None]
        for j in running:
            j.process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
