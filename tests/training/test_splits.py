import pytest

from training.splits import merl_split, merl_subject, split_by_video


def test_split_is_80_20_by_video_and_ignores_input_order():
    videos = [f"v{i:02d}" for i in range(20)]
    split = split_by_video(videos, seed=3)
    assert len(split.train) == 16 and len(split.val) == 4
    assert set(split.train).isdisjoint(split.val)
    assert set(split.train) | set(split.val) == set(videos)
    assert split_by_video(list(reversed(videos)), seed=3) == split


def test_different_seeds_give_different_splits():
    videos = [f"v{i:02d}" for i in range(20)]
    assert split_by_video(videos, seed=1).val != split_by_video(videos, seed=2).val


def test_a_merl_subject_never_straddles_the_split():
    videos = [f"{subject}_{session}" for subject in range(1, 11) for session in (1, 2, 3)]
    split = split_by_video(videos, val_fraction=0.2, group=merl_subject)
    train_subjects = {merl_subject(v) for v in split.train}
    val_subjects = {merl_subject(v) for v in split.val}
    assert train_subjects.isdisjoint(val_subjects)
    assert len(val_subjects) == 2


def test_two_videos_still_get_a_validation_video():
    split = split_by_video(["a", "b"], val_fraction=0.2)
    assert len(split.val) == 1 and len(split.train) == 1


def test_merl_split_is_the_published_one_by_subject():
    videos = [f"{subject}_{session}" for subject in range(1, 42) for session in (1, 2, 3)]
    parts = merl_split(videos)
    assert {merl_subject(v) for v in parts["train"]} == {str(s) for s in range(1, 21)}
    assert {merl_subject(v) for v in parts["val"]} == {str(s) for s in range(21, 27)}
    assert {merl_subject(v) for v in parts["test"]} == {str(s) for s in range(27, 42)}
    assert len(parts["train"]) == 60 and len(parts["val"]) == 18 and len(parts["test"]) == 45
    assert merl_split(["20_3", "21_1", "27_2", "26_1"]) == {
        "train": ("20_3",),
        "val": ("21_1", "26_1"),
        "test": ("27_2",),
    }


@pytest.mark.parametrize("name", ["synth_standard_s0_0001", "42_1", "0_2", "3_1_crop"])
def test_merl_split_refuses_names_outside_the_release(name):
    with pytest.raises(ValueError, match="not a MERL Shopping video name"):
        merl_split(["1_1", name])
