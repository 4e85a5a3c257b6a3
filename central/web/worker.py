"""One analysis in its own process (`python -m central.web.worker JOB_DIR`): the edge agent, exactly as a box
runs it (`edge.agent.run_agent`, the chosen bundle, ONNX Runtime), on the uploaded video, then the result and
its downloads. A process, not a thread: the agent owns the process's signals (SIGTERM finishes the frame and
flushes), a decoder crash on a hostile file takes only this process down, and the server's event loop is never
starved by the models.

Progress goes to stdout, one JSON object a line; the outcome is `result.json` or `error.json` in JOB_DIR."""

from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path

from pydantic import Field

from edge.errors import ShelfWatchError
from edge.schema import Strict

RESULT, ERROR, VIDEO_OUT, EVENTS = "result.json", "error.json", "annotated.mp4", "events.jsonl"
LABELS_JSON, LABELS_MAT = "labels.json", "labels_label.mat"


class JobSpec(Strict):
    """What the server asks of the worker (`job.json`)."""

    video: Path
    name: str = Field(max_length=256)
    bundle: Path
    box_config: Path | None = None
    threads: int = Field(default=0, ge=0, le=256)
    fps: float
    frames: int
    width: int
    height: int
    store: str | None = None  # whose staff asked for it (None: a chain-wide token, or no login): who may see it
    memory_mb: int | None = None  # the hard limit on this process's memory (RLIMIT_DATA)


def run(job_dir: Path) -> None:
    from central.web.results import build_analysis, familiarity_result, read_events, write_label_files
    from edge.agent import RunOptions, run_agent
    from edge.bundle import load_bundle
    from edge.config import BoxConfig, Camera, OutboxConfig, load_box_config
    from edge.telemetry import Progress

    spec = JobSpec.model_validate_json((job_dir / "job.json").read_text())
    outbox = OutboxConfig(path=job_dir / "outbox.sqlite")
    if spec.box_config is not None:  # the store's zones, catalogue and thresholds; never its broker nor its clips
        base = load_box_config(spec.box_config)
        config = base.model_copy(update={"camera": base.camera.model_copy(update={"source": str(spec.video),
                                 "realtime": False}), "bundle": spec.bundle, "mqtt": None, "outbox": outbox,
                                 "threads": spec.threads,
                                 "clips": base.clips.model_copy(update={"keep": False})})  # fmt: skip
    else:
        config = BoxConfig(store="web", box="upload", camera=Camera(source=str(spec.video)), bundle=spec.bundle,
                           outbox=outbox, threads=spec.threads)  # fmt: skip

    def progress(p: Progress) -> None:
        print(json.dumps({"frames": p.frames, "total": p.total, "events": p.events, "fps": p.fps}), flush=True)

    started = time.perf_counter()
    summary = run_agent(config, RunOptions(events_jsonl=job_dir / EVENTS, annotate=job_dir / VIDEO_OUT,
                                           annotate_codec="h264", on_progress=progress))  # fmt: skip
    took = time.perf_counter() - started
    manifest = load_bundle(spec.bundle)
    names = {s.sku: s.name for s in (manifest.detector.catalog if manifest.detector else [])}
    names.update({s.sku: s.name for s in config.catalog if s.name})
    notes = []
    if not config.zones:
        notes.append("No shelf zones were given: the demo store's layout was assumed (the top 36% of the picture). "
                     "Choose a box config to use a real store's shelves.")  # fmt: skip
    if summary.frames < spec.frames * 0.98:
        notes.append(f"Only {summary.frames} of the {spec.frames} frames the file announces could be decoded.")
    familiarity = None
    if summary.familiarity is not None:
        f = summary.familiarity
        familiarity = familiarity_result(f.scored_frames, f.unfamiliar_frames, f.spans, spec.fps)
    else:
        notes.append("This model bundle has no familiarity guard: whether this clip is like the footage the model was "
                     "trained on is unknown (`shelfwatch bundle familiarity` adds one).")  # fmt: skip
    analysis = build_analysis(read_events(job_dir / EVENTS), video=spec.name, fps=spec.fps, frames=summary.frames,
                              width=spec.width, height=spec.height, took_s=took, names=names, notes=notes,
                              familiarity=familiarity)  # fmt: skip
    write_label_files(analysis, job_dir / LABELS_JSON, job_dir / LABELS_MAT)
    tmp = job_dir / (RESULT + ".tmp")
    tmp.write_text(analysis.model_dump_json())
    tmp.replace(job_dir / RESULT)


def limit_memory(megabytes: int) -> None:
    """A hard limit on this process's data (heap, anonymous mappings, thread stacks: RLIMIT_DATA, which unlike
    RLIMIT_AS does not count the address space libraries reserve without using): past it, allocations fail and the
    analysis ends here, with the server untouched."""
    import resource

    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def out_of_memory(exc: BaseException, megabytes: int) -> bool:
    """Whether a failure was the memory limit. A failed allocation surfaces in many ways (MemoryError from Python and
    NumPy, std::bad_alloc from ONNX Runtime, an error code from x264 or FFmpeg, a thread that could not get its
    stack), so besides those the process's data is looked at: still within a tenth of the limit (at least 64 MB)
    when the error is caught, the limit is what stopped it."""
    if isinstance(exc, MemoryError) or "bad_alloc" in str(exc) or "out of memory" in str(exc).lower():
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOMEM, errno.EAGAIN):
        return True
    try:
        status = Path("/proc/self/status").read_text()
        data = int(status.split("VmData:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return False
    limit = megabytes * 1024 * 1024
    return data >= limit - max(64 * 1024 * 1024, limit // 10)


def private(message: str, spec: JobSpec | None, job_dir: Path) -> str:
    """A message for the page: the server's paths become the names the user knows (the clip's, the bundle's)."""
    if spec is not None:
        known = [(spec.video, spec.name), (spec.bundle, spec.bundle.name)]
        known += [(spec.box_config, spec.box_config.name)] if spec.box_config else []
        for path, name in known:
            message = message.replace(str(path), name)
    return message.replace(str(job_dir.resolve()) + "/", "").replace(str(job_dir) + "/", "")


def main(argv: list[str]) -> int:
    job_dir = Path(argv[0])
    spec = None
    try:
        spec = JobSpec.model_validate_json((job_dir / "job.json").read_text())
        if spec.memory_mb:
            limit_memory(spec.memory_mb)
        run(job_dir)
    except Exception as exc:  # the page says what failed; the traceback goes to the worker's log
        expected = isinstance(exc, ShelfWatchError)
        if not expected:
            import traceback

            traceback.print_exc()
        if spec is not None and spec.memory_mb and out_of_memory(exc, spec.memory_mb):
            error = (f"the clip needed more memory than an analysis may use ({spec.memory_mb} MB, worker_memory_mb): "
                     "try a shorter or smaller clip")  # fmt: skip
        else:
            said = str(exc) if expected else f"the analysis failed ({type(exc).__name__}: {exc})"
            error = private(said, spec, job_dir)
        (job_dir / ERROR).write_text(json.dumps({"error": error}))
        return 2 if expected else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
