"""Per-frame scores to action segments: the step the agent and the evaluation share."""

import numpy as np
import pytest

from edge.segments import ActionSegment, Segmenter, segment_scores, segments_to_frames


def one_hot(labels: list[int], n: int = 6, p: float = 1.0) -> np.ndarray:
    scores = np.full((len(labels), n), (1 - p) / (n - 1))
    scores[np.arange(len(labels)), labels] = p
    return scores


def test_clean_scores_give_exact_segments():
    labels = [0] * 5 + [1] * 6 + [3] * 5
    segments = segment_scores(one_hot(labels), window=1, min_frames=1)
    assert segments == [ActionSegment(0, 0, 5, 1.0), ActionSegment(1, 5, 11, 1.0), ActionSegment(3, 11, 16, 1.0)]
    assert segments_to_frames(segments, 16).tolist() == labels


def test_a_flicker_shorter_than_min_frames_stays_in_the_running_segment():
    scores = one_hot([2, 2, 2, 2, 5, 2, 2, 2], p=0.9)
    scores[4] = [0.02, 0.02, 0.3, 0.02, 0.02, 0.62]
    segments = segment_scores(scores, window=1, min_frames=2)
    assert [(s.label, s.start, s.end) for s in segments] == [(2, 0, 8)]
    assert segments[0].confidence == pytest.approx((7 * 0.9 + 0.3) / 8)


def test_a_change_is_reported_when_confirmed_but_dated_from_its_first_frame():
    segmenter = Segmenter(window=1, min_frames=3)
    closed_at = {}
    for t, row in enumerate(one_hot([0, 0, 0, 0, 1, 1, 1, 1])):
        for seg in segmenter.push(row):
            closed_at[t] = seg
    assert list(closed_at) == [6]  # frames 4, 5 and 6 confirm the reach
    assert closed_at[6] == ActionSegment(0, 0, 4, 1.0)
    assert segmenter.flush() == [ActionSegment(1, 4, 8, 1.0)]


def test_a_change_seen_late_through_the_smoothing_window_is_dated_back_to_where_it_happened():
    # Causal mean over 3 frames: at frame 5 the window holds A, A, B (argmax A); at frame 6 A, B, B: seen one
    # frame late, (3 - 1) / 2, and dated back by as much.
    segments = segment_scores(one_hot([0] * 5 + [4] * 5), window=3, min_frames=1)
    assert [(s.label, s.start, s.end) for s in segments] == [(0, 0, 5), (4, 5, 10)]
    # With the default window of 5 a change is seen two frames late.
    segments = segment_scores(one_hot([0] * 10 + [4] * 10))
    assert [(s.label, s.start, s.end) for s in segments] == [(0, 0, 10), (4, 10, 20)]


def test_a_sharp_change_becomes_the_label_latency_frames_after_it_happened():
    """What the shelf counter waits for before it trusts the label of a frame (edge.shelf: looks are judged by their
    own frames' labels)."""
    segmenter = Segmenter()
    labels = []
    for row in one_hot([0] * 10 + [1] * 10):
        segmenter.push(row)
        labels.append(segmenter.current[0])
    # The default window (5) sees a change 2 frames late (frame 12), and the new label must last 4 frames, that one
    # and 3 more: 2 + 3 = 5 frames late.
    assert labels.index(1) == 15 == 10 + segmenter.latency


def test_skipped_frames_close_the_segment_and_keep_frame_numbers():
    segmenter = Segmenter(window=2, min_frames=1)
    for row in one_hot([5, 5, 5]):
        segmenter.push(row)
    assert segmenter.skip(10) == [ActionSegment(5, 0, 3, 1.0)]
    for row in one_hot([1, 1]):
        segmenter.push(row)
    assert segmenter.flush() == [ActionSegment(1, 13, 15, 1.0)]
