"""The health gate a staged bundle passes before the box switches to it (`edge.switch`), in order:

1. its models load on the box's configured execution provider (and run there: a graph that TensorRT cannot take and
   ONNX Runtime quietly hands to the CPU fails here, not in the store);
2. on its reference clip (`edge.reference`) they give the outputs recorded at export, within the export's own
   precision rules; a bundle without a reference clip is run on frames of the box's own camera instead, where it
   must give finite outputs (its parity with the export cannot be checked, and the verdict says so);
3. the agent's frame rate with it on that clip is at least FPS_FLOOR of the running bundle's on the same clip,
   measured side by side: each frame is run by both, one after the other (which goes first alternates), PASSES
   times, and each frame's median time counts. On the CPU the time is the gate thread's CPU time, with
   single-threaded sessions: what the box's cores spend on a frame, which the rest of the box's load does not change
   (wall time on a busy 2-core machine varied by 10 % between two copies of one bundle; CPU time by 1-3 %). On a GPU
   provider it is wall time, since the device does the work.

The gate runs beside the frame loop, on its own sessions: the running bundle goes on analysing frames meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle import Manifest
from edge.errors import ShelfWatchError
from edge.providers import ProviderChoice, choose_providers
from edge.reference import DETECT_EVERY, REFERENCE_FRAMES, Clip, Models, clip_from_frames, compare, load, run

FPS_FLOOR = 0.9
PASSES = 5
CameraFrames = Callable[[int], "list[np.ndarray] | None"]  # n frames from the box's camera, or None if it has none


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str  # one line: what passed, or the first thing that failed
    fps_ratio: float | None = None


def _short(provider: str) -> str:
    return provider.removesuffix("ExecutionProvider")


def check(candidate: Path, manifest: Manifest, running: Path, running_manifest: Manifest, provider: ProviderChoice,
          threads: int, camera: CameraFrames) -> Verdict:  # fmt: skip
    """The gate for the bundle in `candidate` against the one the box runs from `running`."""
    try:
        chosen = choose_providers(provider, cache_dir=candidate / "trt-cache")
        on_cpu = chosen[0][0] == "CPUExecutionProvider"
        threads = 1 if on_cpu else threads  # CPU time is then the whole of a frame's work
        models = Models(manifest, candidate, chosen, threads)
    except (ShelfWatchError, ValueError) as exc:
        return Verdict(False, f"its models do not load on provider {provider}: {exc}")
    wanted = chosen[0][0]
    for session in models.sessions():
        if session.get_providers()[0] != wanted:
            return Verdict(False, f"its models run on {_short(session.get_providers()[0])}, not on {_short(wanted)} "
                           f"(provider {provider})")  # fmt: skip
    try:
        return _outputs_and_speed(candidate, manifest, running, running_manifest, provider, threads, camera, models,
                                  f"loads on {_short(wanted)}", on_cpu)  # fmt: skip
    except Exception as exc:  # ONNX Runtime's own errors: a graph that loads but cannot run on these inputs
        text = (str(exc).splitlines() or [type(exc).__name__])[0]
        return Verdict(False, f"its models fail on the clip ({text if len(text) <= 150 else '…' + text[-149:]})")


def _outputs_and_speed(candidate: Path, manifest: Manifest, running: Path, running_manifest: Manifest,
                       provider: ProviderChoice, threads: int, camera: CameraFrames, models: Models, loaded: str,
                       on_cpu: bool) -> Verdict:  # fmt: skip
    if manifest.reference is not None:
        try:
            clip, recorded = load(candidate / manifest.reference.file, manifest)
        except ShelfWatchError as exc:
            return Verdict(False, str(exc))
        parity = compare(recorded, run(models, clip))
        if not parity.ok:
            return Verdict(False, parity.detail)
        outputs = parity.detail
    else:
        frames = camera(REFERENCE_FRAMES)
        if not frames:
            return Verdict(False, "it has no reference clip, and the camera gave no frames to try it on")
        clip = clip_from_frames(frames, manifest)
        if not np.isfinite(run(models, clip).probs).all():
            return Verdict(False, "no reference clip; on the camera's frames its action model gives non-finite scores")
        outputs = f"no reference clip: run on {len(frames)} camera frames, parity with the export not checked"
    try:
        before = Models(running_manifest, running, choose_providers(provider, cache_dir=running / "trt-cache"),
                        threads)  # fmt: skip
    except (ShelfWatchError, ValueError) as exc:  # the running bundle loaded at start; say so rather than guess
        return Verdict(False, f"the running bundle's models do not load beside it to compare frame rates: {exc}")
    new, old = frame_rates(models, before, clip, clock=time.thread_time if on_cpu else time.perf_counter)
    ratio = new / old
    speed = f"{100 * ratio:.0f} % of the running bundle's frame rate on the same clip"
    if ratio < FPS_FLOOR:
        return Verdict(False, f"it runs at {speed} (at least {100 * FPS_FLOOR:.0f} %)", ratio)
    return Verdict(True, f"{loaded}; {speed}; {outputs}", ratio)


def frame_rates(a: Models, b: Models, clip: Clip, passes: int = PASSES, clock: Callable[[], float] = time.perf_counter
                ) -> tuple[float, float]:  # fmt: skip
    """Frames per second of `a` and `b` on the clip, as the agent runs the models on a frame (the action model on
    each, the detector on every DETECT_EVERY-th), by `clock`. Each frame is run by both, one right after the other
    (which goes first changes with every frame and pass), `passes` times; each frame's median counts."""
    times = np.zeros((2, passes, len(clip.frames)))
    pair = (a, b)
    for p in range(passes):
        for m in pair:
            m.action.reset()
        for i, small in enumerate(clip.frames):
            image = clip.images[i // DETECT_EVERY] if i % DETECT_EVERY == 0 and i // DETECT_EVERY < len(clip.images) \
                else None  # fmt: skip
            for k in (0, 1) if (i + p) % 2 == 0 else (1, 0):
                m = pair[k]
                started = clock()
                m.frame(small)
                if image is not None and m.detector is not None:
                    m.image(image)
                times[k, p, i] = clock() - started
    seconds = np.median(times, axis=1).sum(axis=1)
    return len(clip.frames) / seconds[0], len(clip.frames) / seconds[1]
