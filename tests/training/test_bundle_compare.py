"""`shelfwatch eval compare`: two bundles through the agent on the same clips, and the verdict on the new one.

The bundles are the demo bundle and a copy of it made worse on purpose: its classifier leans 4 logits towards "no
action", so the box misses most actions. The clips are the first videos of a seed no other test uses (none chosen
by how they score), 8 s at 320x240; the negative clip is real footage with no shelf (`../shared/real/clips`).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge.bundle import MANIFEST, load_bundle, seal, sha256_of
from edge.classes import ACTION_CLASSES
from tests.edge.test_agent_delivery import DEMO_BUNDLE
from tests.edge.test_real_footage import CLIPS
from training.bundle_compare import DEFAULT_RULES, Measured, NegativeClip, Rules, Verdict, decide, measure
from training.bundle_eval import BundleScore, VideoScore
from training.synth.generate import VideoSpec, write_video


def worse_bundle(out: Path) -> Path:
    """The demo bundle with its action classifier's "no action" bias raised by 4: a bundle that misses actions."""
    shutil.copytree(DEMO_BUNDLE, out)
    step = out / "action_step.onnx"
    model = onnx.load(str(step))
    [bias] = [t for t in model.graph.initializer if t.name == "model.classifier.bias"]
    values = numpy_helper.to_array(bias).copy()
    values[ACTION_CLASSES.index("no_action")] += 4.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    onnx.save(model, str(step))
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["action_step.onnx"] = {"sha256": sha256_of(step), "bytes": step.stat().st_size}
    (out / MANIFEST).write_text(json.dumps(seal(manifest), indent=2))
    load_bundle(out)  # a bundle the agent accepts
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    for i in range(5):
        write_video(VideoSpec(seed=7000, index=i, frames=240, width=320, height=240), root / "standard")
    write_video(VideoSpec(seed=7001, index=0, frames=240, width=320, height=240), root / "other")
    (root / "negatives").mkdir()
    shutil.copy(CLIPS / "cup.mp4", root / "negatives")
    return {"standard": root / "standard", "other": root / "other", "negatives": root / "negatives",
            "worse": worse_bundle(root / "worse")}  # fmt: skip


@pytest.mark.long  # two bundles through the box on several clips (about a minute)
def test_eval_compare_refuses_a_bundle_made_worse_on_purpose(clips, tmp_path, shelfwatch):
    data = ["--data", clips["standard"], "--data", clips["other"], "--negatives", clips["negatives"]]
    result = shelfwatch("eval", "compare", DEMO_BUNDLE, clips["worse"], *data, "--json", tmp_path / "v.json")
    assert result.returncode == 0, result.stderr
    assert "verdict: REFUSE" in result.stdout and "[5/7] synth_standard_s7000_0004.mp4" in result.stderr
    verdict = Verdict.model_validate_json((tmp_path / "v.json").read_text())
    assert verdict.verdict == "refuse"
    assert (verdict.old.bundle_id, verdict.new.bundle_id) == (
        load_bundle(DEMO_BUNDLE).bundle_id,
        load_bundle(clips["worse"]).bundle_id,
    )
    standard = verdict.folders[0]
    assert standard.clips == 5 and standard.frame_accuracy_change_points < -2
    assert standard.new.frame_accuracy < standard.old.frame_accuracy
    failed = [c.rule for c in verdict.checks if not c.passed]
    assert f"frame accuracy on {clips['standard']} up by at least 2 points" in failed
    # Missing actions invents none: on the real clip the worse bundle reports no more than the demo bundle.
    assert not any("negative clips" in rule for rule in failed)
    assert verdict.negatives is not None and verdict.negatives.clips == 1 and verdict.negatives.minutes > 0.1
    assert verdict.fps_ratio > 0


@pytest.mark.long  # two bundles through the box on several clips (about a minute)
def test_a_better_bundle_is_promoted_only_past_the_margin(clips):
    worse, demo = measure([clips["worse"], DEMO_BUNDLE], [clips["standard"], clips["other"]])
    verdict = decide(worse, demo, DEFAULT_RULES)
    assert verdict.verdict == "promote", verdict.checks
    gain = verdict.folders[0].frame_accuracy_change_points
    assert gain >= 2
    # The same measurements under a margin above the measured gain: refused.
    stricter = Rules(margin_points=gain + 0.5, tolerance_points=1, min_clips=5)
    assert decide(worse, demo, stricter).verdict == "refuse"


@pytest.mark.long  # two bundles through the box on several clips (about a minute)
def test_too_few_clips_is_no_verdict_however_much_better(tmp_path, clips, shelfwatch):
    for clip in sorted(clips["standard"].glob("*_000[0-3].*")):  # four of the five
        (tmp_path / "four").mkdir(exist_ok=True)
        shutil.copy(clip, tmp_path / "four")
    result = shelfwatch("eval", "compare", clips["worse"], DEMO_BUNDLE, "--data", tmp_path / "four", "--json")
    assert result.returncode == 0, result.stderr
    verdict = Verdict.model_validate_json(result.stdout)  # --json alone: stdout is the JSON, the table on stderr
    assert verdict.verdict == "not_enough_clips" and verdict.folders[0].clips == 4
    assert verdict.folders[0].frame_accuracy_change_points >= 2  # the demo bundle is better, but on 4 clips
    assert "verdict: NOT ENOUGH CLIPS" in result.stderr


def test_bad_input_is_one_line(tmp_path, clips, shelfwatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["eval", "compare", tmp_path / "nowhere", DEMO_BUNDLE, "--data", clips["standard"]], "no such model bundle"),
        (["eval", "compare", DEMO_BUNDLE, DEMO_BUNDLE, "--data", empty], "no labelled videos"),
        (["eval", "compare", DEMO_BUNDLE, DEMO_BUNDLE, "--data", clips["standard"], "--negatives", empty],
         "no video"),
        (["eval", "compare", DEMO_BUNDLE, DEMO_BUNDLE, "--data", clips["standard"], "--min-clips", 0],
         "--min-clips at least 1"),
        (["eval", "compare", DEMO_BUNDLE, DEMO_BUNDLE, "--data", clips["standard"], "--data", clips["standard"]],
         "given twice"),
    ]  # fmt: skip
    for args, message in cases:
        result = shelfwatch(*args)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- the rules, on scores given by hand --------------------------------------------------------------------------------
def scored(bundle: Path, accuracies: dict[str, float], clips: int = 5, negatives: int | None = None) -> Measured:
    folders = {
        Path(name): BundleScore(
            [VideoScore(f"v{i}", 100, 50.0, {"frame_accuracy": acc}) for i in range(clips)],
            {"frame_accuracy": acc, "f1@50": 80.0},
        )
        for name, acc in accuracies.items()
    }
    found = [NegativeClip("cup.mp4", 1.0, 50.0, negatives, 0, 0)] if negatives is not None else []
    return Measured(bundle, folders, found)


NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"b": 0.70, "a": 0.90}, {"b": 0.72, "a": 0.89}, "promote"),  # +2 points exactly, -1 exactly
        ({"b": 0.70, "a": 0.90}, {"b": 0.719, "a": 0.90}, "refuse"),  # +1.9 points
        ({"b": 0.70, "a": 0.90}, {"b": 0.80, "a": 0.888}, "refuse"),  # much better first, -1.2 points elsewhere
        ({"b": 0.70}, {"b": 0.60}, "refuse"),
    ],
)
def test_the_verdict_rules(old, new, expected):
    verdict = decide(scored(DEMO_BUNDLE, old), scored(DEMO_BUNDLE, new), DEFAULT_RULES, now=NOW)
    assert verdict.verdict == expected, verdict.checks


def test_more_invented_actions_on_negatives_refuse_and_few_clips_give_no_verdict():
    better = {"b": 0.90}
    same_negatives = decide(scored(DEMO_BUNDLE, {"b": 0.5}, negatives=2), scored(DEMO_BUNDLE, better, negatives=2),
                            DEFAULT_RULES, now=NOW)  # fmt: skip
    assert same_negatives.verdict == "promote"
    more = decide(scored(DEMO_BUNDLE, {"b": 0.5}, negatives=2), scored(DEMO_BUNDLE, better, negatives=3),
                  DEFAULT_RULES, now=NOW)  # fmt: skip
    assert more.verdict == "refuse" and [c.passed for c in more.checks][-3:] == [False, True, True]
    few = decide(scored(DEMO_BUNDLE, {"b": 0.5}, clips=4), scored(DEMO_BUNDLE, better, clips=4), DEFAULT_RULES, now=NOW)
    assert few.verdict == "not_enough_clips"


def test_the_verdict_is_strict_json_with_a_published_schema(shelfwatch):
    verdict = decide(scored(DEMO_BUNDLE, {"b": 0.5}), scored(DEMO_BUNDLE, {"b": 0.9}), DEFAULT_RULES, now=NOW)
    data = json.loads(verdict.model_dump_json())
    assert Verdict.model_validate(data) == verdict
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Verdict.model_validate({**data, "approved_by": "me"})
    result = shelfwatch("schema", "verdict")
    schema = json.loads(result.stdout)
    assert result.returncode == 0 and schema["additionalProperties"] is False
    assert schema["properties"]["verdict"]["enum"] == ["promote", "refuse", "not_enough_clips"]
    assert np.isclose(data["folders"][0]["frame_accuracy_change_points"], 40.0)
