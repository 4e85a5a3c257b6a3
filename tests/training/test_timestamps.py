"""Timestamp labels: the file format's rules, and how they spread to every frame for training (arXiv 2103.06669)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.label_files import read_labels
from training.labels import LabelError, Timestamp, make_labels, read_label_file, to_label_file, write_label_file
from training.merl import write_merl_labels
from training.timestamps import boundary, spread_to_boundaries, spread_to_midpoints

STAMPS = [Timestamp(5, 0), Timestamp(30, 1, shopper=2), Timestamp(52, 3), Timestamp(80, 0)]


def test_timestamp_labels_round_trip_with_every_other_frame_unknown(tmp_path):
    labels = make_labels([], 100, 30.0, STAMPS)
    assert labels.partial and labels.segments == ()
    assert labels.frame_classes[[5, 30, 52, 80]].tolist() == [0, 1, 3, 0]
    assert (np.delete(labels.frame_classes, [5, 30, 52, 80]) == -1).all()
    path = tmp_path / "clip.labels.json"
    write_label_file(to_label_file(labels, video="clip.mp4"), path)
    again = read_labels(path, frame_count=100)
    assert again.timestamps == labels.timestamps and again.frame_classes.tolist() == labels.frame_classes.tolist()
    with pytest.raises(LabelError, match="timestamp labels have no MERL Shopping form"):
        write_merl_labels(labels, tmp_path / "clip_label.mat")


@pytest.mark.parametrize("change, message", [
    ({"timestamps": [{"frame": 100, "label": "no_action"}]}, "timestamp at frame 100 is outside the video's 100"),
    ({"timestamps": [{"frame": 3, "label": "waving"}]}, "timestamp label 'waving' at frame 3 is not a class"),
    ({"timestamps": [{"frame": 3, "label": "no_action"}, {"frame": 3, "label": "reach_to_shelf"}]},
     "two timestamps at frame 3"),
    ({"segments": [{"label": "reach_to_shelf", "start": 0, "end": 4}]}, "segments or timestamps, not both"),
    ({"frame_classes": [0] * 100}, "frame 0 is no_action in frame_classes but unlabelled by the timestamps"),
])  # fmt: skip
def test_broken_timestamp_labels_name_the_problem(tmp_path, change, message):
    good = json.loads(to_label_file(make_labels([], 100, 30.0, STAMPS)).model_dump_json())
    path = tmp_path / "bad.labels.json"
    stamps = change.get("timestamps")
    if stamps is not None:  # frame classes that agree, so that the timestamps' own problem is the one named
        good["frame_classes"] = [-1] * 100
    path.write_text(json.dumps({**good, **change}))
    with pytest.raises(LabelError, match=message):
        read_label_file(path)


def test_a_frame_of_segment_labels_cannot_be_unknown(tmp_path):
    data = json.loads(to_label_file(make_labels([], 10, 30.0)).model_dump_json())
    path = tmp_path / "x.labels.json"
    path.write_text(json.dumps({**data, "frame_classes": [-1] * 10}))
    with pytest.raises(LabelError, match="frame_classes holds -1, not a class index 0-5"):
        read_label_file(path)


def test_midpoints_split_halfway_between_timestamps():
    frames = spread_to_midpoints(STAMPS, 100)
    # 5|30 -> 18, 30|52 -> 41, 52|80 -> 66: each frame takes its nearest timestamp's class.
    assert frames.tolist() == [0] * 18 + [1] * 23 + [3] * 25 + [0] * 34


def test_boundaries_follow_the_features_not_the_midpoints():
    """Features that change at frame 12 and at frame 44: the boundaries land there, however far from the midpoint
    between the timestamps, and even with noise."""
    rng = np.random.default_rng(0)
    features = np.concatenate([np.zeros((12, 8)), np.ones((32, 8)) * 3, -np.ones((56, 8))])
    features += rng.normal(0, 0.3, features.shape)
    stamps = [Timestamp(2, 0), Timestamp(40, 1), Timestamp(90, 4)]
    frames = spread_to_boundaries(features, stamps)
    assert frames.tolist() == [0] * 12 + [1] * 32 + [4] * 56
    assert boundary(np.zeros((9, 4))) == 4  # nothing to go by: the middle
    # Consecutive timestamps of one class: no boundary between them.
    assert spread_to_boundaries(features, [Timestamp(2, 1), Timestamp(90, 1)]).tolist() == [1] * 100
