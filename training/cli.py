"""The training package's subcommands: `synth` and `labels`. Heavy imports wait until a command runs."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError


def register(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser(
        "synth",
        help="render synthetic overhead store videos with exact labels",
        description="Render top-down videos of shoppers at a grocery shelf, each with NAME.labels.json "
        "(per-frame classes, segments, product boxes, item ledger, baskets) and NAME_label.mat "
        "(MERL Shopping format). The same arguments always give the same frames and labels.",
    )
    synth.add_argument("out_dir", type=Path, help="folder to write the videos and labels into")
    synth.add_argument("--videos", type=int, default=1, help="how many videos (default 1)")
    synth.add_argument("--seed", type=int, default=0, help="seed; video i depends on (seed, i) only (default 0)")
    synth.add_argument("--first", type=int, default=0, help="index of the first video (default 0)")
    synth.add_argument("--frames", type=int, default=900, help="frames per video (default 900)")
    synth.add_argument("--size", default="640x480", help="WIDTHxHEIGHT in pixels (default 640x480)")
    synth.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    synth.add_argument(
        "--preset",
        default="standard",
        choices=["easy", "standard", "hard"],
        help="how much scenes, shoppers and the camera vary (default standard)",
    )
    synth.add_argument("--yolo", action="store_true", help="also write an ultralytics dataset to OUT_DIR/yolo")
    synth.add_argument("--yolo-every", type=int, default=10, help="sample every Nth frame for --yolo (default 10)")
    synth.add_argument("--jobs", type=int, default=1, help="videos rendered in parallel (default 1)")
    synth.set_defaults(func=run_synth)

    labels = sub.add_parser(
        "labels",
        help="read, check and convert action label files",
        description="Work with ShelfWatch JSON labels and MERL Shopping *_label.mat files.",
    )
    lsub = labels.add_subparsers(dest="labels_command", required=True, metavar="COMMAND")
    convert = lsub.add_parser(
        "convert",
        help="convert a .mat (MERL Shopping) or .json label file to our JSON",
        description="Convert MERL Shopping or ShelfWatch labels to ShelfWatch JSON.",
    )
    convert.add_argument("input", type=Path, help="a *_label.mat or *.labels.json file")
    convert.add_argument("output", type=Path, help="the JSON file to write")
    convert.add_argument(
        "--frames",
        type=int,
        default=None,
        help="the video's frame count: pads MERL labels and rejects labels past the end",
    )
    convert.add_argument("--fps", type=float, default=None, help="frame rate for MERL labels (default 30)")
    convert.set_defaults(func=run_labels_convert)
    show = lsub.add_parser(
        "show",
        help="summarise a label file: classes, segments, ledger, baskets",
        description="Print a short summary of a label file.",
    )
    show.add_argument("input", type=Path)
    show.set_defaults(func=run_labels_show)
    schema = lsub.add_parser("schema", help="print the JSON Schema of ShelfWatch label files")
    schema.set_defaults(func=run_labels_schema)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ShelfWatchError(f"--size must look like 640x480, got {text!r}") from None
    return w, h


class _Inline:
    """The executor interface without processes: --jobs 1 keeps tracebacks and profiles simple."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    map = staticmethod(map)


def run_synth(args: argparse.Namespace) -> int:
    from training.synth.generate import VideoSpec, check_spec, write_video

    width, height = _size(args.size)
    if args.videos < 1:
        raise ShelfWatchError(f"--videos must be at least 1, got {args.videos}")
    if args.yolo_every < 1 or args.jobs < 1:
        raise ShelfWatchError("--yolo-every and --jobs must be at least 1")
    specs = [
        VideoSpec(args.seed, args.first + i, args.frames, width, height, args.fps, args.preset)
        for i in range(args.videos)
    ]
    check_spec(specs[0])
    paths: list[Path] = []
    rates: list[float] = []
    with ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else _Inline() as pool:
        for n, (path, fps) in enumerate(pool.map(write_video, specs, repeat(args.out_dir)), 1):
            paths.append(Path(path))
            rates.append(fps)
            print(
                f"[{n}/{len(specs)}] {Path(path).name.removesuffix('.labels.json')}.mp4  "
                f"({args.frames} frames, rendered and encoded at {fps:.0f} fps)",
                flush=True,
            )
    if args.yolo:
        from training.synth.yolo import write_yolo_dataset

        data_yaml = write_yolo_dataset(paths, args.out_dir / "yolo", every=args.yolo_every)
        print(f"YOLO dataset: {data_yaml}")
    rates.sort()
    print(
        f"wrote {len(specs)} video(s) to {args.out_dir}; median speed {rates[len(rates) // 2]:.0f} frames/s "
        f"per process at {width}x{height}"
    )
    return 0


def run_labels_convert(args: argparse.Namespace) -> int:
    from training.labels import read_labels, to_label_file, write_label_file

    if args.output.suffix.lower() != ".json":
        raise ShelfWatchError(f"{args.output}: the output must be a .json file")
    labels = read_labels(args.input, frame_count=args.frames, fps=args.fps)
    write_label_file(to_label_file(labels), args.output)
    print(f"{args.input} -> {args.output}: {labels.frame_count} frames, {len(labels.segments)} segments")
    return 0


def run_labels_show(args: argparse.Namespace) -> int:
    from training.labels import read_label_file, read_labels

    labels = read_labels(args.input)
    print(f"{args.input}: {labels.frame_count} frames at {labels.fps:g} fps, {len(labels.segments)} segments")
    counts = Counter(labels.frame_classes.tolist())
    seg_counts = Counter(s.label for s in labels.segments)
    for k, name in enumerate(ACTION_CLASSES):
        share = counts.get(k, 0) / max(1, labels.frame_count)
        print(f"  {name:<20} {counts.get(k, 0):>7} frames ({share:6.1%})  {seg_counts.get(k, 0):>4} segments")
    if args.input.suffix.lower() == ".json":
        full = read_label_file(args.input)
        takes = sum(e.kind == "take" for e in full.ledger)
        print(f"  ledger: {takes} taken, {len(full.ledger) - takes} put back")
        for b in full.baskets:
            print(f"  shopper {b.shopper} basket: {json.dumps(b.items) if b.items else 'empty'}")
    return 0


def run_labels_schema(args: argparse.Namespace) -> int:
    from training.labels import label_file_schema

    print(json.dumps(label_file_schema(), indent=2))
    return 0
