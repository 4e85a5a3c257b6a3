"""The agent in-process (`edge.agent.run_agent`): the stages one after the other on a clip, with the progress
hook a CLI or a web worker follows."""

import json

from edge.agent import RunOptions, run_agent
from edge.config import BoxConfig, Camera, OutboxConfig
from edge.telemetry import Progress
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample


def test_a_clip_runs_through_every_stage_and_reports_progress(tmp_path):
    video = sample(tmp_path, 240, seed=1000, index=6)
    jsonl = tmp_path / "events.jsonl"
    config = BoxConfig(store="store-1", box="box-a", camera=Camera(source=str(video)), bundle=DEMO_BUNDLE,
                       outbox=OutboxConfig(path=tmp_path / "outbox.sqlite"), threads=1)  # fmt: skip
    seen: list[Progress] = []
    summary = run_agent(config, RunOptions(events_jsonl=jsonl, max_frames=200, on_progress=seen.append))
    assert summary.frames == 200 and 0 < summary.active_frames <= 200 and summary.detections_run > 0
    assert seen[0].total == 200 and seen[-1].done and seen[-1].frames == 200 and seen[-1].fraction == 1.0
    assert [p.frames for p in seen] == sorted(p.frames for p in seen)
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    kinds = {k: sum(e["kind"] == k for e in events) for k in summary.events}
    assert kinds == summary.events and seen[-1].events == sum(summary.events.values())
    assert summary.events.get("action", 0) >= 1  # the shopper walks in and looks at the shelf
    states = [e["state"] for e in events if e["kind"] == "status"]
    assert states[0] == "running" and states[-1] == "stopped"
