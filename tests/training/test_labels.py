"""Our JSON labels and MERL Shopping's *_label.mat files, read into one in-memory type; the real
release's files (../shared/real/merl-labels) with their overlapping segments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from edge.classes import Action
from training.label_files import read_labels, write_labels
from training.labels import (
    LabelError,
    Overlaps,
    Segment,
    frames_to_segments,
    make_labels,
    read_label_file,
    resolve_frames,
    to_label_file,
    write_label_file,
)
from training.merl import read_merl_labels, write_merl_labels

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "real" / "merl-labels"
REAL_FILES = sorted(REAL.glob("*_label.mat"))


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
        ([[(-3, 5)], [], [], [], []], None, r"\[-3, 5\] is not a 1-based frame range"),
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


# ---------------------------------------------------------------------------------------------------
# Overlapping segments, as MERL Shopping's annotators draw them, and the one policy that resolves them.


def test_overlap_policy_by_hand():
    segments = [
        Segment(1, 10, 20),  # reach 10-19 ...
        Segment(2, 18, 40),  # ... retract starts at 18: frames 18 and 19 are shared -> retract
        Segment(1, 25, 27),  # a 2-frame reach inside the retract keeps its frames
        Segment(4, 50, 70),  # inspect product 50-69 ...
        Segment(2, 50, 55),  # ... with a retract beginning on the same frame: the shorter one first
        Segment(3, 80, 85),  # hand in shelf and retract on identical frames: the lower class
        Segment(2, 80, 85),
    ]
    frames, overlaps = resolve_frames(segments, 90)
    expected = [0] * 10 + [1] * 8 + [2] * 7 + [1] * 2 + [2] * 13 + [0] * 10
    expected += [2] * 5 + [4] * 15 + [0] * 10 + [2] * 5 + [0] * 5
    assert frames.tolist() == expected
    # Shared: 18-19 (2), nested reach 25-26 (2), 50-54 (5), 80-84 (5).
    assert overlaps == Overlaps(frames=14, boundaries=1, nested=3)
    assert "14 frames in overlapping segments" in str(overlaps) and "1 shared boundary," in str(overlaps)
    assert str(resolve_frames([Segment(1, 0, 5), Segment(2, 5, 9)], 9)[1]) == "no overlapping segments"


def test_overlapping_json_segments_are_kept_and_frame_classes_must_follow_the_policy(tmp_path):
    labels = make_labels([Segment(1, 2, 6), Segment(2, 5, 9), Segment(4, 6, 7)], 10, 30.0)
    assert labels.frame_classes.tolist() == [0, 0, 1, 1, 1, 2, 4, 2, 2, 0]
    write_label_file(to_label_file(labels), tmp_path / "a.json")
    back = read_labels(tmp_path / "a.json")
    assert back.segments == labels.segments and back.overlaps == labels.overlaps
    data = json.loads((tmp_path / "a.json").read_text())
    data["frame_classes"][5] = 1  # the shared frame given to the segment that ends there: not the policy
    (tmp_path / "b.json").write_text(json.dumps(data))
    with pytest.raises(LabelError, match="frame 5 is reach_to_shelf in frame_classes but retract_from_shelf"):
        read_labels(tmp_path / "b.json")


def raw_tlabs(path: Path) -> list[tuple[int, int, int]]:
    """(MERL class, first, last) rows straight from the file, 1-based inclusive, without our reader."""
    cells = scipy.io.loadmat(str(path))["tlabs"].reshape(-1)
    return [
        (k + 1, int(a), int(b)) for k, c in enumerate(cells) for a, b in np.asarray(c, dtype=np.int64).reshape(-1, 2)
    ]


def test_the_seven_real_files_are_here():
    names = {p.name for p in REAL_FILES}
    assert {"1_1", "5_2", "5_3", "9_3", "12_3", "14_1", "20_2"} <= {n.removesuffix("_label.mat") for n in names}


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_file_converts_and_keeps_every_segment(tmp_path, path):
    raw = raw_tlabs(path)
    labels = read_labels(path)
    assert labels.frame_count == max(last for _, _, last in raw) and labels.fps == 30.0
    assert sorted((s.label, s.start + 1, s.end) for s in labels.segments) == sorted(raw)
    write_labels(labels, tmp_path / "x.labels.json")
    ours = read_labels(tmp_path / "x.labels.json")
    per_class = np.bincount([k for k, _, _ in raw], minlength=6)
    assert np.array_equal(np.bincount([s.label for s in ours.segments], minlength=6), per_class)
    assert np.array_equal(ours.frame_classes, labels.frame_classes)
    # Every frame of a segment is either its class or that of another segment covering the frame.
    for seg in labels.segments:
        owners = {o.label for o in labels.segments if o.start < seg.end and seg.start < o.end}
        assert set(labels.frame_classes[seg.start : seg.end].tolist()) <= owners


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_nested_segments_and_shared_boundaries_follow_the_policy(path):
    raw = [Segment(k, first - 1, last) for k, first, last in raw_tlabs(path)]
    frames = read_labels(path).frame_classes

    def alone(seg: Segment, *others: Segment) -> bool:
        """No third segment touches `seg`, so the pair alone decides its frames."""
        return not any(o.start < seg.end and seg.start < o.end for o in raw if o != seg and o not in others)

    checked = 0
    for a in raw:
        for b in raw:
            if a is b or not (a.start <= b.start and b.end <= a.end) or (a.start, a.end) == (b.start, b.end):
                continue
            if alone(b, a):  # b lies inside a: b's frames carry b's class
                assert (frames[b.start : b.end] == b.label).all(), (a, b)
                checked += 1
    for a in raw:
        for b in raw:
            if a.start < b.start < a.end < b.end and alone(b, a) and alone(a, b):
                assert (frames[b.start : a.end] == b.label).all(), (a, b)  # shared frames: the later segment
                assert frames[b.start - 1] == a.label
                checked += 1
    assert checked > 0


def test_real_nested_reach_of_12_3():
    frames = read_labels(REAL / "12_3_label.mat").frame_classes
    # MERL rows: retract [397, 437], reach [398, 398] inside it, reach [437, 475] from its last frame on.
    assert frames[396] == Action.RETRACT_FROM_SHELF
    assert frames[397] == Action.REACH_TO_SHELF
    assert (frames[398:436] == Action.RETRACT_FROM_SHELF).all()
    assert (frames[436:475] == Action.REACH_TO_SHELF).all()


def test_real_empty_cell_of_5_3():
    labels = read_labels(REAL / "5_3_label.mat")
    assert not any(s.label == Action.HAND_IN_SHELF for s in labels.segments)
    assert Action.HAND_IN_SHELF not in labels.frame_classes


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_round_trip_json_mat_json_keeps_the_segments(tmp_path, path):
    first = read_labels(path, frame_count=6000)  # padded to a video longer than the labels
    write_labels(first, tmp_path / "a.labels.json")
    write_labels(read_labels(tmp_path / "a.labels.json"), tmp_path / "b_label.mat")
    stored = scipy.io.loadmat(str(tmp_path / "b_label.mat"))["tlabs"]
    assert stored.shape == (5, 1) and all(c.dtype == np.uint16 for c in stored.reshape(-1) if c.size)
    write_labels(read_labels(tmp_path / "b_label.mat", frame_count=6000), tmp_path / "c.labels.json")
    again = read_labels(tmp_path / "c.labels.json")
    assert again.segments == first.segments and np.array_equal(again.frame_classes, first.frame_classes)
    assert json.loads((tmp_path / "a.labels.json").read_text()) == json.loads((tmp_path / "c.labels.json").read_text())


def test_labels_convert_and_show_say_how_many_frames_the_policy_decided(tmp_path, shelfwatch):
    converted = shelfwatch("labels", "convert", REAL / "1_1_label.mat", tmp_path / "1_1.labels.json")
    assert converted.returncode == 0, converted.stderr
    assert "3708 frames, 65 segments" in converted.stdout
    assert "76 frames in overlapping segments decided by the overlap policy" in converted.stdout
    assert "(5 shared boundaries, 2 nested segments)" in converted.stdout
    shown = shelfwatch("labels", "show", tmp_path / "1_1.labels.json")
    assert shown.returncode == 0 and "76 frames in overlapping segments" in shown.stdout
    back = shelfwatch("labels", "convert", tmp_path / "1_1.labels.json", tmp_path / "1_1_label.mat")
    assert back.returncode == 0 and sorted(raw_tlabs(tmp_path / "1_1_label.mat")) == sorted(
        raw_tlabs(REAL / "1_1_label.mat")
    )


@pytest.mark.parametrize(
    ("tlabs", "message"),
    [
        ({"labels": np.zeros((5, 1))}, "has no 'tlabs' variable"),
        ({"tlabs": np.zeros((5, 2))}, "must be a cell array of 5 cells"),
        ({"tlabs": [[np.array([[10, 4]], dtype=np.uint16)], [[]], [[]], [[]], [[]]]}, r"\[10, 4\] is not a 1-based"),
        ({"tlabs": [[np.array([[-2, 4]])], [[]], [[]], [[]], [[]]]}, r"\[-2, 4\] is not a 1-based"),
        ({"tlabs": [[np.array([[1, 2, 3]])], [[]], [[]], [[]], [[]]]}, "must be a K x 2 matrix"),
    ],
)
def test_malformed_mat_is_one_line_and_exit_2(tmp_path, shelfwatch, tlabs, message):
    value = tlabs.get("tlabs")
    if isinstance(value, list):  # a cell array, as MATLAB stores one
        cells = np.empty((5, 1), dtype=object)
        for k, (cell,) in enumerate(value):
            cells[k, 0] = cell if isinstance(cell, np.ndarray) else np.zeros((0, 0))
        tlabs = {"tlabs": cells}
    scipy.io.savemat(str(tmp_path / "bad_label.mat"), tlabs)
    result = shelfwatch("labels", "convert", tmp_path / "bad_label.mat", tmp_path / "out.json")
    assert result.returncode == 2 and not (tmp_path / "out.json").exists()
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("shelfwatch: error: ") and re.search(message, result.stderr)
    assert str(tmp_path / "bad_label.mat") in result.stderr and "Traceback" not in result.stderr
