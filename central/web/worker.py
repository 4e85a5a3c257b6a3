"""One analysis in its own process (`python -m central.web.worker JOB_DIR`): the edge agent, exactly as a box
runs it (`edge.agent.run_agent`, the chosen bundle, ONNX Runtime), on the uploaded video, then the result and
its downloads. A process, not a thread: the agent owns the process's signals (SIGTERM finishes the frame and
flushes), a decoder crash on a hostile file takes only this process down, and the server's event loop is never
starved by the models.

Progress goes to stdout, one JSON object a line; the outcome is `result.json` or `error.json` in JOB_DIR."""

from __future__ import annotations

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


def run(job_dir: Path) -> None:
    from central.web.results import build_analysis, read_events, write_label_files
    from edge.agent import RunOptions, run_agent
    from edge.bundle import load_bundle
    from edge.config import BoxConfig, Camera, OutboxConfig, load_box_config
    from edge.telemetry import Progress

    spec = JobSpec.model_validate_json((job_dir / "job.json").read_text())
    outbox = OutboxConfig(path=job_dir / "outbox.sqlite")
    if spec.box_config is not None:  # the store's zones, catalogue and thresholds; never its broker
        base = load_box_config(spec.box_config)
        config = base.model_copy(update={"camera": base.camera.model_copy(update={"source": str(spec.video),
                                 "realtime": False}), "bundle": spec.bundle, "mqtt": None, "outbox": outbox,
                                 "threads": spec.threads})  # fmt: skip
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
    analysis = build_analysis(read_events(job_dir / EVENTS), video=spec.name, fps=spec.fps, frames=summary.frames,
                              width=spec.width, height=spec.height, took_s=took, names=names, notes=notes)  # fmt: skip
    write_label_files(analysis, job_dir / LABELS_JSON, job_dir / LABELS_MAT)
    tmp = job_dir / (RESULT + ".tmp")
    tmp.write_text(analysis.model_dump_json())
    tmp.replace(job_dir / RESULT)


def main(argv: list[str]) -> int:
    job_dir = Path(argv[0])
    try:
        run(job_dir)
    except ShelfWatchError as exc:
        (job_dir / ERROR).write_text(json.dumps({"error": str(exc)}))
        return 2
    except Exception as exc:  # the page says what failed; the traceback goes to the worker's log
        import traceback

        traceback.print_exc()
        (job_dir / ERROR).write_text(json.dumps({"error": f"the analysis failed ({type(exc).__name__}: {exc})"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
