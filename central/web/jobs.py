"""The analysis queue: each upload becomes a job with its own folder; `workers` of them run at once, each in a
worker process (`central.web.worker`, under a hard memory limit), the rest wait their turn. The server reads
their progress lines; a finished job's folder (result, downloads) is reloaded after a restart.

What one caller can take is bounded before a byte of an upload is read (`reserve`): at most
`max_queued_per_store` analyses waiting per store (a chain-wide token counts as one more store) and
`max_queued` in all, and at most `keep_analyses` analyses on disk, whatever their state, uploads in progress
included (the oldest finished ones are deleted to make room; when none is finished, the upload is refused).
Waiting jobs start in turn by store: the store that started one least recently goes next, so one store's
queue never holds another's back."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from central.web.config import WebConfig
from central.web.worker import ERROR, RESULT, JobSpec

State = Literal["queued", "running", "done", "failed"]
JOB_ID = r"^[0-9a-f]{16}$"


class QueueFull(Exception):
    """No room for another analysis now (the message says which limit, for the page)."""


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
    memory_mb: int | None = None  # the worker's memory limit, for the message when it is killed
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return min(1.0, self.frames / self.total) if self.total else 0.0


@dataclass(frozen=True)
class Ticket:
    """Room held for one analysis while its upload arrives: `submit` turns it into a job, `release` gives it up."""

    id: str
    folder: Path
    store: str | None


def _who(store: str | None) -> str:
    return f"store {store}" if store is not None else "the chain-wide token"


class JobQueue:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.root = config.work_dir  # made on the first upload: a central nobody uploads to leaves no folder
        self.jobs: dict[str, Job] = {}
        self.reserved: dict[str, Ticket] = {}
        self.lock = threading.Condition()
        self.started = 0  # jobs started so far; `last_start[store]` is the count when the store's last one started
        self.last_start: dict[str | None, int] = {}
        self.closed = False
        self._reload()
        self.workers = [threading.Thread(target=self._work, name=f"shelfwatch-analysis-{n}", daemon=True)
                        for n in range(config.workers)]  # fmt: skip
        for worker in self.workers:
            worker.start()

    # -- room -------------------------------------------------------------------------------------------------

    def reserve(self, store: str | None) -> Ticket:
        """Room for one more analysis of `store`, or QueueFull saying which limit is reached."""
        with self.lock:
            if self.closed:
                raise QueueFull("the server is shutting down")
            waiting = [j.store for j in self.jobs.values() if j.state == "queued"]
            waiting += [t.store for t in self.reserved.values()]
            if len(waiting) >= self.config.max_queued:
                raise QueueFull(f"{len(waiting)} analyses are already waiting, the most this server queues "
                                "(max_queued); try again when one has finished")  # fmt: skip
            mine = waiting.count(store)
            if mine >= self.config.max_queued_per_store:
                raise QueueFull(f"{_who(store)} already has {mine} analyses waiting, the most one store may queue "
                                "(max_queued_per_store); try again when one has started")  # fmt: skip
            finished = sorted((j for j in self.jobs.values() if j.state in ("done", "failed")), key=lambda j: j.created)
            excess = len(self.jobs) + len(self.reserved) + 1 - self.config.keep_analyses
            if excess > len(finished):
                raise QueueFull(f"{self.config.keep_analyses} analyses are waiting, running or being uploaded, all "
                                "this server keeps (keep_analyses); try again when one has finished")  # fmt: skip
            evicted = finished[: max(0, excess)]
            for j in evicted:
                del self.jobs[j.id]
            job_id = secrets.token_hex(8)
            ticket = Ticket(job_id, self.root / job_id, store)
            self.reserved[ticket.id] = ticket
        for j in evicted:
            shutil.rmtree(j.folder, ignore_errors=True)
        ticket.folder.mkdir(parents=True)
        return ticket

    def release(self, ticket: Ticket) -> None:
        """The upload failed or was refused: its room and whatever it wrote are given back."""
        with self.lock:
            self.reserved.pop(ticket.id, None)
        shutil.rmtree(ticket.folder, ignore_errors=True)

    def submit(self, ticket: Ticket, spec: JobSpec) -> Job:
        (ticket.folder / "job.json").write_text(spec.model_dump_json())
        job = Job(ticket.id, ticket.folder, spec.name, time.time(), store=spec.store, memory_mb=spec.memory_mb)
        with self.lock:
            self.reserved.pop(ticket.id, None)
            self.jobs[job.id] = job
            self.lock.notify()
        return job

    # -- views ------------------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def take(self, job_id: str) -> Job | None:
        """Hand a finished analysis over to whoever keeps it from now on (`central.review`, once a correction of it
        is saved): it leaves the queue, so it never counts toward keep_analyses and is never deleted to make room.
        None if it is not here (deleted to make room, or never finished)."""
        with self.lock:
            job = self.jobs.get(job_id)
            return self.jobs.pop(job_id) if job is not None and job.state == "done" else None

    def forget(self, job_id: str) -> None:
        """Delete a finished analysis now (the clip it was made of is past its retention); one still running or
        waiting is left alone, and goes when keep_analyses needs its room."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.state not in ("done", "failed"):
                return
            del self.jobs[job_id]
        shutil.rmtree(job.folder, ignore_errors=True)

    def restore(self, job: Job) -> None:
        """An analysis `take` handed over that could not be kept after all: back in the queue, as it was."""
        with self.lock:
            self.jobs.setdefault(job.id, job)

    def ahead_of(self, job: Job) -> int:
        """Analyses that start before this one: those running, and those waiting that go first."""
        with self.lock:
            place = next((n for n, j in enumerate(self._order()) if j is job), None)
            running = sum(1 for j in self.jobs.values() if j.state == "running")
        return 0 if place is None else running + place

    def recent(self, visible: Callable[[Job], bool] = lambda job: True, n: int = 10) -> list[Job]:
        with self.lock:
            return sorted((j for j in self.jobs.values() if visible(j)), key=lambda j: -j.created)[:n]

    # -- running ----------------------------------------------------------------------------------------------

    def _order(self) -> list[Job]:
        """The waiting jobs in the order they will start: each turn goes to the store whose last job started
        longest ago (a store that never started one first), and within a store to its oldest job."""
        waiting = sorted((j for j in self.jobs.values() if j.state == "queued"), key=lambda j: j.created)
        last, turn, order = dict(self.last_start), self.started, []
        while waiting:
            heads: dict[str | None, Job] = {}
            for j in waiting:
                heads.setdefault(j.store, j)
            job = min(heads.values(), key=lambda j: (last.get(j.store, -1), j.created))
            order.append(job)
            waiting.remove(job)
            turn += 1
            last[job.store] = turn
        return order

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.closed and not (order := self._order()):
                    self.lock.wait()
                if self.closed:
                    return
                job = order[0]
                job.state = "running"
                self.started += 1
                self.last_start[job.store] = self.started
                self._start(job)  # under the lock: `close` sees every process that was started
            self._follow(job)

    def _start(self, job: Job) -> None:
        env = {**os.environ, "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
        with (job.folder / "worker.log").open("w") as log:
            job.process = subprocess.Popen([sys.executable, "-m", "central.web.worker", str(job.folder)],
                                           stdout=subprocess.PIPE, stderr=log, text=True, env=env)  # fmt: skip

    def _follow(self, job: Job) -> None:
        assert job.process is not None and job.process.stdout is not None
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
        try:
            error = json.loads((job.folder / ERROR).read_text())["error"]
        except (OSError, ValueError, KeyError):
            error = self._stopped(job)
        # The reason before the state: pages read the state first (another thread), and a failed analysis must never
        # be shown without its reason.
        job.error = error
        job.state = "failed"

    def _stopped(self, job: Job) -> str:
        """Why a worker that left no word ended."""
        if self.closed:
            return "the analysis stopped before it finished (the server is shutting down)"
        code = job.process.returncode if job.process is not None else None
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            limit = f" (its limit is {job.memory_mb} MB: worker_memory_mb)" if job.memory_mb else ""
            return f"the analysis was ended by {name}: the clip most likely needed more memory than allowed{limit}"
        return "the analysis stopped before it finished"

    def _reload(self) -> None:
        """Analyses finished before a restart are shown again; one cut off by it is marked failed. Beyond
        keep_analyses (lowered since), the oldest are deleted."""
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
        for job in sorted(self.jobs.values(), key=lambda j: -j.created)[self.config.keep_analyses :]:
            del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop: running workers get SIGTERM (they finish the frame and flush), queued jobs never start."""
        with self.lock:
            self.closed = True
            self.lock.notify_all()
            running = [j for j in self.jobs.values() if j.process is not None and j.process.poll() is None]
        for j in running:
            j.process.terminate()
        for worker in self.workers:
            worker.join()
