"""Our JSON labels and MERL Shopping's *_label.mat files, read into one in-memory type."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from edge.classes import Action
from training.labels import (
    LabelError,
    Segment,
    frames_to_segments,
    make_labels,
    read_label_file,
    read_labels,
    to_label_file,
    write_label_file,
)
from training.merl import read_merl_labels, write_merl_labels


def write_tlabs(path: Path, cells: list[list[tuple[int, int]]], shape: tuple[int, int] = (5, 1)) -> None:
    """A label file built as MATLAB stores MERL Shopping's: a cell array of N x 2 double matrices."""
    tlabs = np.empty(shape, dtype=object)
    for k, rows in enumerate(cells):
        tlabs.flat[k] = np.asarray(rows, dtype=np.float64).reshape(-1, 2) if rows else np.zeros((0, 0))
    scipy.io.savemat(str(path), {"tlabs": tlabs})


def test_merl_file_reads_as_1_based_inclusive_ranges(tmp_path):
    path = tmp_path / "1_1_label.mat"
    # reach 1-10, retract 21-25 and 40-41, hand in shelf 11-20, inspect shelf 30-35.
    write_tlabs(path, [[(1, 10)], [(21, 25), (40, 41)], [(11, 20)], [], [(30, 35)]])
    labels = read_merl_labels(path, frame_count=50)
    assert labels.frame_count == 50 and labels.fps == 30.0
    assert labels.frame_classes[0] == Action.REACH_TO_SHELF
    assert labels.frame_classes[9] == Action.REACH_TO_SHELF
    assert labels.frame_classes[10] == Action.HAND_IN_SHELF
    assert labels.frame_classes[25] == Action.NO_ACTION  # MERL frame 26: between segments
    assert labels.frame_classes[40] == Action.RETRACT_FROM_SHELF  # MERL frame 41, the last labelled one
    assert labels.frame_classes[41] == Action.NO_ACTION
    assert [(s.label, s.start, s.end) for s in labels.segments] == [
        (1, 0, 10),
        (3, 10, 20),
        (2, 20, 25),
        (5, 29, 35),
        (2, 39, 41),
    ]


def test_merl_row_vector_cell_array_and_unknown_length(tmp_path):
    path = tmp_path / "2_3_label.mat"
    write_tlabs(path, [[(5, 6)], [], [], [(8, 9)], []], shape=(1, 5))
    labels = read_merl_labels(path)
    assert labels.frame_count == 9  # the last labelled frame, when the video's length is not given
    assert labels.frame_classes.tolist() == [0, 0, 0, 0, 1, 1, 0, 4, 4]


def test_merl_round_trip_through_our_writer(tmp_path):
    segments = [Segment(1, 3, 9), Segment(3, 9, 20), Segment(2, 20, 31), Segment(4, 31, 60), Segment(5, 70, 90)]
    labels = make_labels(segments, 100, 30.0)
    write_merl_labels(labels, tmp_path / "x_label.mat")
    back = read_merl_labels(tmp_path / "x_label.mat", frame_count=100)
    assert np.array_equal(back.frame_classes, labels.frame_classes)
    assert [(s.label, s.start, s.end) for s in back.segments] == [(s.label, s.start, s.end) for s in segments]


def test_json_round_trip_keeps_segments_and_shoppers(tmp_path):
    segments = [Segment(5, 0, 40, shopper=1), Segment(1, 40, 52, shopper=1), Segment(3, 52, 60, shopper=2)]
    labels = make_labels(segments, 75, 25.0)
    write_label_file(to_label_file(labels, video="a.mp4"), tmp_path / "a.labels.json")
    back = read_labels(tmp_path / "a.labels.json")
    assert np.array_equal(back.frame_classes, labels.frame_classes)
    assert back.segments == labels.segments and back.fps == 25.0
    assert back.segments[2].shopper == 2


def test_merl_to_json_conversion_agrees_frame_by_frame(tmp_path):
    write_tlabs(tmp_path / "3_1_label.mat", [[(2, 4)], [(9, 12)], [(5, 8)], [(13, 20)], [(25, 30)]])
    merl = read_labels(tmp_path / "3_1_label.mat", frame_count=32)
    write_label_file(to_label_file(merl), tmp_path / "3_1.json")
    ours = read_labels(tmp_path / "3_1.json", frame_count=32)
    assert np.array_equal(ours.frame_classes, merl.frame_classes)
    assert frames_to_segments(ours.frame_classes) == list(ours.segments)


@pytest.mark.parametrize(
    ("cells", "frame_count", "message"),
    [
        ([[(10, 5)], [], [], [], []], None, "not a 1-based frame range"),
        ([[(0, 5)], [], [], [], []], None, "not a 1-based frame range"),
        ([[(1.5, 5)], [], [], [], []], None, "not integers"),
        ([[(1, 10)], [(5, 12)], [], [], []], None, "overlaps"),
        ([[(1, 10)], [], [], [], []], 8, "ends after the video's 8 frames"),
    ],
)
def test_malformed_merl_segments_name_the_file_and_problem(tmp_path, cells, frame_count, message):
    path = tmp_path / "bad_label.mat"
    write_tlabs(path, cells)
    with pytest.raises(LabelError, match=message) as err:
        read_labels(path, frame_count=frame_count)
    assert str(path) in str(err.value)


def test_merl_file_with_wrong_structure(tmp_path):
    scipy.io.savemat(str(tmp_path / "a_label.mat"), {"labels": np.zeros((3, 2))})
    with pytest.raises(LabelError, match="no 'tlabs' variable"):
        read_labels(tmp_path / "a_label.mat")
    cells = np.empty((4, 1), dtype=object)
    for k in range(4):
        cells[k, 0] = np.zeros((0, 2))
    scipy.io.savemat(str(tmp_path / "b_label.mat"), {"tlabs": cells})
    with pytest.raises(LabelError, match="cell array of 5 cells"):
        read_labels(tmp_path / "b_label.mat")
    (tmp_path / "c_label.mat").write_bytes(b"this is not a MATLAB file at all")
    with pytest.raises(LabelError, match="not a readable MATLAB file"):
        read_labels(tmp_path / "c_label.mat")


def _valid_json(tmp_path: Path) -> dict:
    labels = make_labels([Segment(1, 2, 5), Segment(3, 5, 8)], 10, 30.0)
    write_label_file(to_label_file(labels), tmp_path / "ok.json")
    return json.loads((tmp_path / "ok.json").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(frame_classes=d["frame_classes"][:-1]), "frame_classes has 9 entries for frame_count 10"),
        (lambda d: d["frame_classes"].__setitem__(0, 4), "frame 0 is inspect_product in frame_classes"),
        (lambda d: d["frame_classes"].__setitem__(0, 9), "not a class index"),
        (lambda d: d.update(classes=["a", "b"]), "classes must be"),
        (lambda d: d.update(colour="red"), "Extra inputs are not permitted"),
        (lambda d: d["segments"].append({"label": "dancing", "start": 8, "end": 9}), "not an action class"),
        (lambda d: d["segments"].append({"label": "reach_to_shelf", "start": 9, "end": 12}), "ends after"),
        (lambda d: d.pop("fps"), "fps: Field required"),
    ],
)
def test_malformed_json_labels_name_the_file_and_problem(tmp_path, change, message):
    data = _valid_json(tmp_path)
    change(data)
    path = tmp_path / "bad.labels.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LabelError, match=message) as err:
        read_label_file(path)
    assert str(path) in str(err.value)


def test_broken_json_and_mismatched_video_length(tmp_path):
    (tmp_path / "cut.json").write_text('{"format": "shelfwatch-labels", ')
    with pytest.raises(LabelError, match=r"is not JSON \(line 1"):
        read_labels(tmp_path / "cut.json")
    _valid_json(tmp_path)
    with pytest.raises(LabelError, match="has 10 frames but its video has 12"):
        read_labels(tmp_path / "ok.json", frame_count=12)
    with pytest.raises(LabelError, match=r"neither a \.json"):
        read_labels(tmp_path / "labels.csv")
