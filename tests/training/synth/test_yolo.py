import yaml

from training.splits import split_by_video
from training.synth.generate import VideoSpec, write_video
from training.synth.yolo import write_yolo_dataset


def test_yolo_dataset_has_valid_boxes_and_splits_by_video(tmp_path):
    paths = [write_video(VideoSpec(seed=9, index=i, frames=60, width=160, height=120), tmp_path)[0] for i in range(5)]
    data_yaml = write_yolo_dataset(paths, tmp_path / "yolo", every=10)
    data = yaml.safe_load(data_yaml.read_text())
    assert data["train"] == "images/train" and data["val"] == "images/val" and len(data["names"]) == 10
    names = [p.name.removesuffix(".labels.json") for p in paths]
    split = split_by_video(names)
    for part, videos in (("train", split.train), ("val", split.val)):
        images = sorted((tmp_path / "yolo" / "images" / part).glob("*.jpg"))
        assert {i.name.rsplit("_", 1)[0] for i in images} == set(videos)
        assert len(images) >= 6 * len(videos)
        for image in images:
            rows = (tmp_path / "yolo" / "labels" / part / (image.stem + ".txt")).read_text().split("\n")
            boxes = [list(map(float, r.split())) for r in rows if r]
            assert len(boxes) >= 8  # a full shelf is in view
            for cls, cx, _cy, w, h in boxes:
                assert 0 <= int(cls) < 10 and cls == int(cls)
                assert 0 < w <= 1 and 0 < h <= 1 and 0 <= cx - w / 2 + 1e-6 and cx + w / 2 <= 1 + 1e-6
