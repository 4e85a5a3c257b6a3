"""A bundle scored through the agent (`training.bundle_eval`): what a box would send, compared with the labels."""

import numpy as np

from edge.segments import segments_to_frames
from tests.edge.test_agent_delivery import DEMO_BUNDLE
from training.bundle_eval import emitted_segments, item_counts, labelled_videos, score_bundle, table
from training.labels import LabelFile, read_label_file
from training.synth.generate import VideoSpec, write_video


def test_the_agents_events_are_scored_frame_by_frame_against_the_labels(tmp_path):
    write_video(VideoSpec(seed=1000, index=6, frames=240, width=640, height=480), tmp_path)
    pairs = labelled_videos(tmp_path)
    assert len(pairs) == 1 and pairs[0][1].name.endswith(".labels.json")
    score = score_bundle(DEMO_BUNDLE, pairs)
    [video] = score.videos
    truth = np.array(read_label_file(pairs[0][1]).frame_classes)
    assert video.frames == len(truth) == 240
    accuracy = video.report["frame_accuracy"]
    assert 0.5 < accuracy <= 1.0 and score.pooled["frame_accuracy"] == accuracy  # one video: pooled is its own
    assert "through the agent: frame accuracy" in table(score)


def test_a_case_worked_out_by_hand(tmp_path, monkeypatch):
    """The box's events replaced by ones written here, on ten labelled frames: what the score must be follows from
    counting frames, not from the scoring code."""
    classes = ["no_action", "reach_to_shelf", "retract_from_shelf", "hand_in_shelf", "inspect_product",
               "inspect_shelf"]  # fmt: skip
    (tmp_path / "v.mp4").write_bytes(b"")  # never read: the box is replaced below
    labels = tmp_path / "v.labels.json"
    labels.write_text(LabelFile.model_validate({
        "format": "shelfwatch-labels", "version": 1, "video": "v.mp4", "fps": 30, "frame_count": 10,
        "classes": classes, "frame_classes": [0, 0, 1, 1, 1, 0, 0, 0, 2, 2],
        "segments": [{"label": "reach_to_shelf", "start": 2, "end": 5, "shopper": 1},
                     {"label": "retract_from_shelf", "start": 8, "end": 10, "shopper": 1}],
        "ledger": [{"frame": 4, "shopper": 1, "sku": "a", "kind": "take"}],
        "baskets": [{"shopper": 1, "items": {"a": 1}}],
    }).model_dump_json())  # fmt: skip
    # The box saw the reach one frame late (frames 3-4, missing frame 2) and never the retract (frames 8-9), so 7 of
    # the 10 frames are right; it counted the one take.
    events = [{"kind": "action", "action": "reach_to_shelf", "start": 3, "end": 5, "confidence": 0.9},
              {"kind": "pick", "sku": "a", "quantity": 1},
              {"kind": "basket", "shopper": 4, "items": {"a": 1}}]  # fmt: skip
    monkeypatch.setattr("training.bundle_eval.run_box", lambda *args, **kwargs: (events, 30.0, 10))
    [video] = score_bundle(DEMO_BUNDLE, [(tmp_path / "v.mp4", labels)]).videos
    assert video.report["frame_accuracy"] == 0.7
    assert (video.net_units, video.unit_errors, video.baskets_exact) == (1, 0, True)


def test_net_items_and_baskets_against_the_ledger():
    labels = LabelFile.model_validate({
        "format": "shelfwatch-labels", "version": 1, "video": "v.mp4", "fps": 30, "frame_count": 10,
        "classes": ["no_action", "reach_to_shelf", "retract_from_shelf", "hand_in_shelf", "inspect_product",
                    "inspect_shelf"],
        "frame_classes": [0] * 10, "segments": [],
        "ledger": [{"frame": 1, "shopper": 1, "sku": "a", "kind": "take"},
                   {"frame": 2, "shopper": 1, "sku": "a", "kind": "take"},
                   {"frame": 3, "shopper": 1, "sku": "b", "kind": "take"},
                   {"frame": 4, "shopper": 1, "sku": "b", "kind": "return"}],
        "baskets": [{"shopper": 1, "items": {"a": 2}}],
    })  # fmt: skip
    events = [{"kind": "pick", "sku": "a", "quantity": 1}, {"kind": "pick", "sku": "c", "quantity": 1},
              {"kind": "basket", "shopper": 7, "items": {"a": 1, "c": 1}}]  # fmt: skip
    # Ledger: net a=2, b=0 -> 2 units. Box: a=1, c=1 -> one a missing, one c too many.
    assert item_counts(events, labels) == (2, 2, False)
    right = [{"kind": "pick", "sku": "a", "quantity": 2}, {"kind": "basket", "shopper": 3, "items": {"a": 2}}]
    assert item_counts(right, labels) == (2, 0, True)


def test_frames_no_event_covers_are_no_action():
    events = [{"kind": "action", "action": "reach_to_shelf", "start": 2, "end": 5, "confidence": 0.9},
              {"kind": "pick", "sku": "a", "quantity": 1}]  # fmt: skip
    assert segments_to_frames(emitted_segments(events), 8).tolist() == [0, 0, 1, 1, 1, 0, 0, 0]


def test_shelfwatch_eval_bundle_prints_the_table_a_store_would_get(tmp_path, shelfwatch):
    write_video(VideoSpec(seed=1000, index=6, frames=240, width=640, height=480), tmp_path / "data")
    result = shelfwatch("eval", "bundle", DEMO_BUNDLE, "--data", tmp_path / "data", "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    assert "through the agent: frame accuracy" in result.stdout and "synth_standard_s1000_0006" in result.stdout
    bad = shelfwatch("eval", "bundle", tmp_path / "nowhere", "--data", tmp_path / "data")
    assert bad.returncode == 2 and "nowhere: no such model bundle" in bad.stderr
