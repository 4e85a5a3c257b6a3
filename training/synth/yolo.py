"""An ultralytics detection dataset (images/, labels/, data.yaml) from synthetic videos and their labels.

Frames are read back from the written MP4, so the detector trains on the same compressed pixels the
edge agent will decode. The split is by video, as for the action model.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import yaml

from edge.errors import ShelfWatchError
from training.labels import LabelFile, read_label_file
from training.splits import split_by_video
from training.synth.catalog import CATALOG

MIN_VISIBLE = 0.4  # a product mostly hidden by an arm or a lamp is not a fair detection target


def write_yolo_dataset(
    label_paths: list[Path], out_dir: Path, every: int = 10, val_fraction: float = 0.2, seed: int = 0
) -> Path:
    """Sample every `every`-th frame (and every third while a product is held); returns data.yaml."""
    videos = {p.name.removesuffix(".labels.json"): p for p in label_paths}
    split = split_by_video(sorted(videos), val_fraction=val_fraction, seed=seed)
    for part, names in (("train", split.train), ("val", split.val)):
        (out_dir / "images" / part).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / part).mkdir(parents=True, exist_ok=True)
        for name in names:
            _write_video_frames(videos[name], read_label_file(videos[name]), out_dir, part, every)
    data = {
        "path": str(out_dir.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {i: sku.id for i, sku in enumerate(CATALOG)},
    }
    yaml_path = out_dir / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return yaml_path


def _write_video_frames(label_path: Path, labels: LabelFile, out_dir: Path, part: str, every: int) -> None:
    if labels.video is None or labels.frames is None:
        raise ShelfWatchError(f"{label_path}: has no video or no per-frame product boxes")
    video = label_path.parent / labels.video
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ShelfWatchError(f"{video}: cannot be opened as a video")
    class_of = {s.id: s.yolo_class for s in labels.skus}
    stem = label_path.name.removesuffix(".labels.json")
    try:
        for i, record in enumerate(labels.frames):
            ok, frame = cap.read()
            if not ok:
                raise ShelfWatchError(f"{video}: ends at frame {i}, its labels have {labels.frame_count}")
            held = any(p.place == "hand" for p in record.products)
            if i % every and not (held and i % max(1, every // 3) == 0):
                continue
            h, w = frame.shape[:2]
            rows = []
            for p in record.products:
                x1, y1, x2, y2 = p.box
                if p.visible < MIN_VISIBLE or x2 - x1 < 2 or y2 - y1 < 2:
                    continue
                rows.append(
                    f"{class_of[p.sku]} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                    f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
                )
            cv2.imwrite(str(out_dir / "images" / part / f"{stem}_{i:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
            (out_dir / "labels" / part / f"{stem}_{i:06d}.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
    finally:
        cap.release()
