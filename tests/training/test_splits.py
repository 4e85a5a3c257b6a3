from training.splits import merl_subject, split_by_video


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
