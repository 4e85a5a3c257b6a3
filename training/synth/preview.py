"""Frames of synthetic stores side by side, for a person to see what differs (the README's picture of store A and
store B is made with it):

    python -m training.synth.preview docs/stores.png --presets standard store-b --seed 1000 --index 1 --frame 400

One frame of video `index` of each preset, rendered as `shelfwatch synth --seed SEED` renders it (the same
pixels), with its shelf outline from the labels drawn over it and the preset's name written above it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from training.synth.generate import VideoSpec, render_video


def preview(presets: list[str], seed: int, index: int, frame: int, width: int, height: int) -> np.ndarray:
    """One row of frames (BGR), each under a caption bar naming its preset."""
    tiles = []
    for preset in presets:
        rendered = render_video(VideoSpec(seed, index, frame + 1, width, height, preset=preset))
        image = rendered.frames[frame].copy()
        if rendered.labels.shelf:
            outline = np.round(np.array(rendered.labels.shelf) * 16).astype(np.int32)
            cv2.polylines(image, [outline], True, (0, 255, 255), 1, cv2.LINE_AA, shift=4)
        caption = np.full((28, width, 3), 255, np.uint8)
        cv2.putText(caption, f"--preset {preset}  (seed {seed}, video {index}, frame {frame})", (8, 19),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
        tiles.append(np.vstack([caption, image]))
        tiles.append(np.full((height + 28, 6, 3), 255, np.uint8))
    return np.hstack(tiles[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--presets", nargs="+", default=["standard", "store-b"])
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--index", type=int, default=1)
    parser.add_argument("--frame", type=int, default=400)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of each frame")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    image = preview(args.presets, args.seed, args.index, args.frame, width, height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), image, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"cannot write {args.out}")
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
