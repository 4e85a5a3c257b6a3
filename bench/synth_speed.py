"""How fast the synthetic generator renders, side by side in one run: planning + drawing alone, and
drawing + MPEG-4 encoding, per preset at one size. Prints medians over repeats (the machines are noisy)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from training.synth.generate import VideoSpec, render_video, write_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    print(f"{args.frames} frames at {w}x{h}, median of {args.repeats} videos, one process")
    print(f"{'preset':<10} {'render fps':>11} {'render+encode fps':>18} {'x real time (30 fps)':>21}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("easy", "standard", "hard"):
            render, encode = [], []
            for i in range(args.repeats):
                spec = VideoSpec(seed=0, index=i, frames=args.frames, width=w, height=h, preset=preset)
                start = time.perf_counter()
                render_video(spec)
                render.append(args.frames / (time.perf_counter() - start))
                encode.append(write_video(spec, Path(tmp))[1])
            r, e = statistics.median(render), statistics.median(encode)
            print(f"{preset:<10} {r:>11.0f} {e:>18.0f} {e / 30:>21.1f}")


if __name__ == "__main__":
    main()
