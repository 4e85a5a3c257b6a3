"""The committed demo bundle: verified, small, accurate on held-out video, and decoded like ultralytics."""

import numpy as np

from edge.action import ActionRecognizer, ActionStream
from edge.bundle import load_bundle
from edge.detector import ProductDetector
from edge.segments import Segmenter, segments_to_frames
from edge.video import VideoSource
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.export.test_bundle import assert_within_precision_limits
from training.label_files import read_labels


def test_the_demo_bundle_is_verified_and_small():
    manifest = load_bundle(DEMO_BUNDLE)
    assert manifest.precision == "int8" and manifest.detector is not None
    assert sum(f.bytes for f in manifest.files.values()) <= 25 * 1024 * 1024
    # What the export measured on its held-out videos (the benchmark re-measures on more).
    assert_within_precision_limits(manifest)


def test_streaming_int8_actions_on_a_held_out_video(tmp_path):
    video = sample(tmp_path, 600, seed=3000)
    truth = read_labels(video.with_name(video.name.replace(".mp4", ".labels.json"))).frame_classes
    manifest = load_bundle(DEMO_BUNDLE)
    stream = ActionStream(ActionRecognizer(manifest, DEMO_BUNDLE), Segmenter())
    segments = []
    for frame in VideoSource(str(video)).frames():
        segments += stream.frame(frame.index, frame.image)
    segments += stream.close(len(truth))
    pred = segments_to_frames(segments, len(truth))
    assert np.mean(pred == truth) >= 0.8


def test_detections_match_ultralytics_predictions_on_the_same_graph(tmp_path):
    from ultralytics import YOLO

    manifest = load_bundle(DEMO_BUNDLE)
    ours = ProductDetector(manifest, DEMO_BUNDLE, conf=0.25, iou=0.7)
    theirs = YOLO(str(DEMO_BUNDLE / manifest.detector.model), task="detect")
    frames = [f.image for f in VideoSource(str(sample(tmp_path, 120, seed=3001))).frames()][::30]
    compared = 0
    for frame in frames:
        mine = sorted(ours(frame), key=lambda d: -d.confidence)
        result = theirs.predict(frame, imgsz=manifest.detector.imgsz, conf=0.25, iou=0.7, verbose=False)[0]
        assert len(mine) == len(result.boxes)
        order = np.argsort(-result.boxes.conf.numpy(), kind="stable")
        for d, i in zip(mine, order, strict=True):
            assert d.class_index == int(result.boxes.cls[i])
            assert np.allclose(d.box, result.boxes.xyxy[i].numpy(), atol=0.5)
            assert abs(d.confidence - float(result.boxes.conf[i])) < 1e-4
            compared += 1
    assert compared >= 40  # a shelf full of products, on every frame
