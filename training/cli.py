"""The training package's subcommands: `synth` and `labels`. Heavy imports wait until a command runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import repeat
from pathlib import Path

from pydantic.fields import FieldInfo

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.preprocess import InputSpec
from training.options import AdaptOptions, ModelConfig, TrainOptions
from training.synth.presets import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser(
        "synth",
        help="render synthetic overhead store videos with exact labels",
        description="Render top-down videos of shoppers at a grocery shelf, each with NAME.labels.json "
        "(per-frame classes, segments, product boxes, item ledger, baskets) and NAME_label.mat "
        "(MERL Shopping format). The same arguments always give the same frames and labels.",
    )
    synth.add_argument("out_dir", type=Path, help="folder to write the videos and labels into")
    synth.add_argument("--videos", type=int, default=None, help="how many videos (default 1)")
    synth.add_argument("--seed", type=int, default=0, help="seed; video i depends on (seed, i) only (default 0)")
    synth.add_argument("--first", type=int, default=0, help="index of the first video (default 0)")
    synth.add_argument("--frames", type=int, default=900, help="frames per video (default 900)")
    synth.add_argument(
        "--size", default=None, help="WIDTHxHEIGHT in pixels (default 640x480; 920x680 with --merl-layout)"
    )
    synth.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    synth.add_argument(
        "--preset",
        default="standard",
        choices=list(PRESETS),
        help="easy, standard, hard: the demo store, varied more or less (noise, blur, light, tempo, distractors); "
        "store-b: a second store (another camera height and tilt, shelf layout, surfaces, light, shoppers) with "
        "standard's variation (default standard)",
    )
    synth.add_argument("--yolo", action="store_true", help="also write an ultralytics dataset to OUT_DIR/yolo")
    synth.add_argument("--yolo-every", type=int, default=10, help="sample every Nth frame for --yolo (default 10)")
    synth.add_argument("--jobs", type=int, default=1, help="videos rendered in parallel (default 1)")
    synth.add_argument(
        "--merl-layout",
        action="store_true",
        help="a stand-in for the MERL Shopping release: OUT_DIR/Videos_MERL_Shopping_Dataset/<s>_<k>_crop.mp4 "
        "and OUT_DIR/Labels_MERL_Shopping_Dataset/<s>_<k>_label.mat only, labels drawn as MERL's annotators "
        "draw them (shared boundary frames, nested segments, empty cells)",
    )
    synth.add_argument(
        "--subjects",
        default="1,21,27",
        help="with --merl-layout: subjects to write, e.g. 1-41 (default 1,21,27: one of each part of the split)",
    )
    synth.add_argument(
        "--sessions", type=int, default=1, help="with --merl-layout: sessions per subject (default 1; the release: 3)"
    )
    synth.set_defaults(func=run_synth)

    labels = sub.add_parser(
        "labels",
        help="read, check and convert action label files",
        description="Work with ShelfWatch JSON labels and MERL Shopping *_label.mat files.",
    )
    lsub = labels.add_subparsers(dest="labels_command", required=True, metavar="COMMAND")
    convert = lsub.add_parser(
        "convert",
        help="convert a .mat (MERL Shopping) or .json label file to our JSON (or back to .mat)",
        description="Convert MERL Shopping or ShelfWatch labels to ShelfWatch JSON, or ShelfWatch labels to "
        "MERL Shopping's .mat. Segments are kept as annotated; where they overlap, the frame classes follow "
        "one policy (a frame in several segments goes to the one that began last), and the command says how "
        "many frames it decided.",
    )
    convert.add_argument("input", type=Path, help="a *_label.mat or *.labels.json file")
    convert.add_argument("output", type=Path, help="the .json (or MERL .mat) file to write")
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

    train = sub.add_parser(
        "train",
        help="train the action model or the product detector",
        description="Train models on labelled videos (see `shelfwatch synth`).",
    )
    tsub = train.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    action = tsub.add_parser(
        "action",
        help="train the CNN-LSTM action model (or a baseline head)",
        description="Train a per-frame CNN encoder with an LSTM over time on clips from labelled videos, split "
        "by video. Writes RUN_DIR/last.pt (resumable), best.pt, metrics.json, curves.png, confusion.png and "
        "timeline.png.",
    )
    action.add_argument("data_dir", type=Path, help="folder of NAME.mp4 + NAME.labels.json (or MERL) videos")
    action.add_argument("--out", type=Path, required=True, help="run folder to write")
    # The run's options come from their one typed definition (training.options); --size stands for the
    # input's width and height.
    _add_options(action, ModelConfig)
    default = InputSpec()
    action.add_argument(
        "--size", default=f"{default.width}x{default.height}", help=f"model input WIDTHxHEIGHT (default "
        f"{default.width}x{default.height}, from 32x32 to 640x480)"
    )  # fmt: skip
    _add_options(action, InputSpec, skip={"width", "height"})
    _add_options(action, TrainOptions)
    action.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt")
    _device_arg(action)
    action.set_defaults(func=run_train_action)
    adapt = tsub.add_parser(
        "adapt",
        help="fine-tune a trained action model on a store's verified clips (warm start, replay, early stopping)",
        description="Start from a training run (its best.pt), a checkpoint, or a model bundle with the checkpoint "
        "export left in it (checkpoint.pt, checked against the manifest's sha256); fine-tune the LSTM and the "
        "classifier (--train head) or also the encoder's last blocks (--train last-blocks) on the verified clips "
        "in --data (full or timestamp labels), with --replay-share of each batch from the original domain's "
        "videos (--replay); stop early on held-out verified clips, keeping no step that loses more than "
        "--max-forgetting on held-out original-domain videos (--guard). Writes RUN_DIR/best.pt, metrics.json and "
        "videos/ (links to the clips trained on, for export's --calibration and --familiarity-fit); `shelfwatch "
        "export` takes RUN_DIR as it is.",
    )
    adapt.add_argument("--from", dest="source", type=Path, required=True, metavar="RUN_OR_BUNDLE",
                       help="a training run folder, a checkpoint file, or a bundle holding checkpoint.pt")  # fmt: skip
    adapt.add_argument("--data", type=Path, required=True, metavar="VERIFIED_DIR",
                       help="the store's verified clips: NAME.mp4 + NAME.labels.json (full or timestamps)")  # fmt: skip
    adapt.add_argument("--replay", type=Path, default=None, metavar="DIR",
                       help="labelled videos of the original training domain to replay (e.g. data/train)")  # fmt: skip
    adapt.add_argument("--guard", type=Path, default=None, metavar="DIR",
                       help="held-out labelled videos of the original domain, never trained on (e.g. data/calib): "
                       "a step that loses more than --max-forgetting on them is not kept")  # fmt: skip
    adapt.add_argument("--out", type=Path, required=True, help="run folder to write")
    _add_options(adapt, AdaptOptions)
    _device_arg(adapt)
    adapt.set_defaults(func=run_train_adapt)
    products = tsub.add_parser(
        "products",
        help="train the YOLO product detector (ultralytics, offline)",
        description="Train an ultralytics YOLOv8 detector built from its yaml (nothing is downloaded) on the "
        "dataset `shelfwatch synth --yolo` writes. Reports mAP50 and mAP50-95 per SKU in RUN_DIR/metrics.json.",
    )
    products.add_argument("data", type=Path, help="the dataset folder (or its data.yaml)")
    products.add_argument("--out", type=Path, required=True, help="run folder to write")
    products.add_argument(
        "--scale",
        default="n",
        choices=["p", "n", "s"],
        help="YOLOv8 scale: p (a quarter of nano's width, ours), n or s (default n)",
    )
    products.add_argument("--imgsz", type=int, default=320, help="training image size (default 320)")
    products.add_argument("--epochs", type=int, default=30)
    products.add_argument("--batch", type=int, default=16)
    products.add_argument("--weights", type=Path, default=None, help="local weights to start from")
    products.add_argument("--seed", type=int, default=0)
    products.set_defaults(func=run_train_products)

    evaluate = sub.add_parser(
        "eval",
        help="score trained models on held-out videos",
        description="Score models side by side on labelled videos they never saw.",
    )
    esub = evaluate.add_subparsers(dest="eval_command", required=True, metavar="MODEL")
    eaction = esub.add_parser(
        "action",
        help="score action-model runs on labelled videos",
        description="Frame accuracy, macro F1, edit, F1@{10,25,50}, mAP at temporal IoU {0.1,0.25,0.5} and "
        "by MERL Shopping's midpoint rule, and per-class frame precision and recall, after the edge's own "
        "segmentation step: the measures the MERL Shopping paper and the segmentation literature report.",
    )
    eaction.add_argument("runs", type=Path, nargs="+", help="run folders (their best.pt) or checkpoint files")
    _held_out_args(eaction)
    eaction.set_defaults(func=run_eval_action)
    ebundle = esub.add_parser(
        "bundle",
        help="score a model bundle by what a box sends: the agent's own events against the labels",
        description="Run the edge agent (as `shelfwatch edge run --bundle` does: motion gate, model delay, segmenter, "
        "confidence floor) on labelled videos and score the action events it emits, frames no event covers "
        "counting as no action, and its picks, put-backs and baskets against each video's ledger. This is "
        "the number a store gets; `eval action` scores a PyTorch run on every frame.",
    )
    ebundle.add_argument("bundle", type=Path, help="a model bundle folder (made by `shelfwatch export`)")
    _held_out_args(ebundle)
    ebundle.set_defaults(func=run_eval_bundle)
    ecompare = esub.add_parser(
        "compare",
        help="two bundles side by side through the agent, and whether the new one may replace the old",
        description="Run both bundles through the edge agent on the same clips (one clip at a time, each bundle in "
        "turn) and print them side by side per folder: frame accuracy, F1@50, net items right; shelf actions a "
        "minute, picks and put-backs and negative baskets on --negatives clips; the fps ratio. Then the verdict: "
        "promote when NEW is better on the first --data folder by at least --margin points of frame accuracy over "
        "at least --min-clips labelled clips (with fewer: not enough clips), at most --tolerance points worse on "
        "every other folder, and invents no more on the negative clips. The exit status is 0 whatever the verdict "
        "(2: bad input); the verdict is in the output and in --json (`shelfwatch schema verdict`).",
    )
    ecompare.add_argument("old", type=Path, help="the bundle the boxes run now")
    ecompare.add_argument("new", type=Path, help="the candidate bundle")
    ecompare.add_argument("--data", type=Path, action="append", required=True,
                          help="a folder of labelled held-out clips; repeat it: the first decides, the others "
                          "guard against losses elsewhere")  # fmt: skip
    ecompare.add_argument("--negatives", type=Path, default=None,
                          help="a folder of clips in which nothing happens at a shelf: anything reported there is "
                          "invented (e.g. ../shared/real/clips)")  # fmt: skip
    ecompare.add_argument("--margin", type=float, default=2.0,
                          help="frame-accuracy points NEW must gain on the first --data (default 2)")  # fmt: skip
    ecompare.add_argument("--tolerance", type=float, default=1.0,
                          help="frame-accuracy points NEW may lose on each other --data (default 1)")  # fmt: skip
    ecompare.add_argument("--min-clips", type=int, default=5,
                          help="labelled clips the first --data needs for a verdict (default 5)")  # fmt: skip
    ecompare.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                          help="write the verdict as JSON to FILE; without FILE, print only the JSON on stdout "
                          "(progress and table on stderr)")  # fmt: skip
    ecompare.set_defaults(func=run_eval_compare)
    eproducts = esub.add_parser(
        "products",
        help="score a product-detector run on held-out images",
        description="mAP50 and mAP50-95 per SKU of RUN_DIR/weights/best.pt on every image "
        "of a dataset made by `shelfwatch synth --yolo` from videos it never saw; "
        "writes RUN_DIR/test_metrics.json.",
    )
    eproducts.add_argument("run", type=Path, help="a `train products` run folder")
    eproducts.add_argument("--data", type=Path, required=True, help="the held-out dataset folder (or data.yaml)")
    eproducts.add_argument("--imgsz", type=int, default=320)
    eproducts.set_defaults(func=run_eval_products)


def _device_arg(parser: argparse.ArgumentParser) -> None:
    # Not one of the run's options (training.options): a run is the same run on any device, so its checkpoints and
    # `--resume` must not depend on where it trained. Checked when the command runs (training.device), in one line.
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda",
                        help="where to train: auto (cuda when PyTorch sees a CUDA GPU, else cpu), cpu or cuda; "
                        "checkpoints are saved with CPU tensors either way (default auto)")  # fmt: skip


def _held_out_args(parser: argparse.ArgumentParser) -> None:
    """The labelled videos an `eval` scores, and where its scores go."""
    parser.add_argument("--data", type=Path, required=True, help="folder of labelled test videos")
    parser.add_argument(
        "--split",
        default=None,
        choices=["merl"],
        help="merl: score only MERL Shopping's test subjects 27-41 of --data (default: every video in --data)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the scores to this file")


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

    width, height = _size(args.size or ("920x680" if args.merl_layout else "640x480"))
    if args.merl_layout:
        from training.merl import MERL_LABELS, MERL_VIDEOS
        from training.synth.merl_layout import parse_subjects, write_merl_video

        if args.videos is not None or args.yolo:
            raise ShelfWatchError("--merl-layout writes --subjects x --sessions videos and no --yolo set")
        if args.sessions < 1:
            raise ShelfWatchError(f"--sessions must be at least 1, got {args.sessions}")
        names = [(s, k) for s in parse_subjects(args.subjects) for k in range(1, args.sessions + 1)]
    else:
        names = [None] * (1 if args.videos is None else args.videos)
    if not names:
        raise ShelfWatchError(f"--videos must be at least 1, got {args.videos}")
    if args.yolo_every < 1 or args.jobs < 1:
        raise ShelfWatchError("--yolo-every and --jobs must be at least 1")
    specs = [
        VideoSpec(args.seed, args.first + i, args.frames, width, height, args.fps, args.preset)
        for i in range(len(names))
    ]
    check_spec(specs[0])
    if args.merl_layout:
        work = (partial(write_merl_video, subject=s, session=k) for s, k in names)
        titles = [f"{MERL_VIDEOS}/{s}_{k}_crop.mp4" for s, k in names]
    else:
        work = repeat(write_video)
        titles = [f"{spec.name}.mp4" for spec in specs]
    paths: list[Path] = []
    rates: list[float] = []
    with ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else _Inline() as pool:
        results = pool.map(_call, work, specs, repeat(args.out_dir))
        for n, (title, (path, fps)) in enumerate(zip(titles, results, strict=True), 1):
            paths.append(Path(path))
            rates.append(fps)
            print(
                f"[{n}/{len(specs)}] {title}  ({args.frames} frames, rendered and encoded at {fps:.0f} fps)",
                flush=True,
            )
    if args.yolo:
        from training.synth.yolo import write_yolo_dataset

        data_yaml = write_yolo_dataset(paths, args.out_dir / "yolo", every=args.yolo_every)
        print(f"YOLO dataset: {data_yaml}")
    rates.sort()
    where = f"{args.out_dir} ({MERL_VIDEOS}/, {MERL_LABELS}/)" if args.merl_layout else str(args.out_dir)
    print(
        f"wrote {len(specs)} video(s) to {where}; median speed {rates[len(rates) // 2]:.0f} frames/s "
        f"per process at {width}x{height}"
    )
    return 0


def _call(write: Callable[..., tuple[Path, float]], spec: object, out_dir: Path) -> tuple[Path, float]:
    return write(spec, out_dir)


def _option_fields(cls: type) -> list[tuple[dataclasses.Field, object, FieldInfo]]:
    """(field, its type, its pydantic Field) of each option of an options dataclass: its Annotated fields."""
    hints = typing.get_type_hints(cls, include_extras=True)
    found = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is typing.Annotated:
            base, *extras = typing.get_args(hint)
            found.append((f, base, next(e for e in extras if isinstance(e, FieldInfo))))
    return found


def _add_options(parser: argparse.ArgumentParser, cls: type, skip: set[str] = frozenset()) -> None:
    """One command-line option per option field: --NAME with its default, choices and description."""
    for f, base, info in _option_fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if base is bool:  # every switch defaults to on
            parser.add_argument(f"--no-{flag[2:]}", dest=f.name, action="store_false", help=f"off: {info.description}")
        elif typing.get_origin(base) is typing.Literal:
            choices = list(typing.get_args(base))
            parser.add_argument(
                flag, default=f.default, choices=choices, help=f"{info.description} (default {f.default})"
            )
        else:
            kind = next(t for t in (typing.get_args(base) or (base,)) if t is not type(None))
            shown = (
                "" if f.default is None else f" (default {f.default:g})" if kind is float else f" (default {f.default})"
            )
            parser.add_argument(flag, type=kind, default=f.default, help=info.description + shown)


def _option_values(cls: type, args: argparse.Namespace, skip: set[str] = frozenset()) -> dict:
    return {f.name: getattr(args, f.name) for f, _, _ in _option_fields(cls) if f.name not in skip}


def _validated(cls: type, values: dict) -> object:
    """Options validated against their definition; a bad one is one line naming its flag."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        flag = "--size" if loc[-2:-1] == ["input"] else "--" + loc[-1].replace("_", "-") if loc else None
        what = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "must be", 1)
        raise ShelfWatchError(f"{flag} {what}" if flag else what) from None


def train_options(args: argparse.Namespace) -> TrainOptions:
    """The parsed options, validated against their definition; a bad one is one line naming its flag."""
    width, height = _size(args.size)
    model = _option_values(ModelConfig, args)
    model["input"] = {"width": width, "height": height, **_option_values(InputSpec, args, skip={"width", "height"})}
    return _validated(TrainOptions, {**_option_values(TrainOptions, args), "model": model})


def _device_checked(choice: str) -> None:
    """`--device` checked before any data is read: auto and cpu always resolve, so only another choice (cuda, or a
    mistake) costs PyTorch's start-up here."""
    if choice not in ("auto", "cpu"):
        from training.device import resolve_device

        resolve_device(choice)


def run_train_action(args: argparse.Namespace) -> int:
    from training.action_data import find_videos

    # A bad option, then the device, then the data folder, each one line before PyTorch starts (five seconds).
    options = train_options(args)
    _device_checked(args.device)
    find_videos(args.data_dir)
    from training.train_action import train_action

    metrics = train_action(args.data_dir, args.out, options, resume=args.resume, device=args.device)
    print(f"validation ({len(metrics['split']['val'])} videos), {metrics['train_seconds'] / 60:.1f} min of training:")
    for name, v in metrics["val"].items():
        print(f"  {name:<14} frame accuracy {v['frame_accuracy']:.3f}  F1@50 {v['f1@50']:5.1f}  edit {v['edit']:5.1f}")
    print(f"wrote {args.out}/metrics.json; the CNN-LSTM is {args.out}/best.pt")
    return 0


def run_train_adapt(args: argparse.Namespace) -> int:
    from training.action_data import find_videos
    from training.source import find_source

    options = _validated(AdaptOptions, _option_values(AdaptOptions, args))  # as train action: before PyTorch starts
    _device_checked(args.device)
    find_source(args.source)
    find_videos(args.data)
    from training.adapt import adapt, summary_lines

    metrics = adapt(args.source, args.data, args.out, options, args.replay, device=args.device, guard_dir=args.guard)
    for line in summary_lines(metrics):
        print(line)
    print(f"wrote {args.out}/best.pt (sha256 {metrics['checkpoint']['sha256'][:12]}) and metrics.json; export it with "
          f"`shelfwatch export BUNDLE --action {args.out} --calibration {args.out}/videos ...`")  # fmt: skip
    return 0


def _print_detector_scores(title: str, m: dict) -> None:
    print(f"{title}: mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}")
    for sku, v in m["per_sku"].items():
        print(f"  {sku:<8} mAP50 {v['map50']:.3f}  mAP50-95 {v['map50_95']:.3f}")


def run_train_products(args: argparse.Namespace) -> int:
    from training.train_products import train_products

    if args.epochs < 1 or args.batch < 1 or not 32 <= args.imgsz <= 1280:
        raise ShelfWatchError("--epochs and --batch must be at least 1, --imgsz between 32 and 1280")
    m = train_products(args.data, args.out, args.scale, args.imgsz, args.epochs, args.batch, args.weights, args.seed)
    _print_detector_scores(f"validation ({m['train_seconds'] / 60:.1f} min of training)", m)
    print(f"wrote {args.out}/metrics.json")
    return 0


def run_eval_products(args: argparse.Namespace) -> int:
    from training.train_products import score_held_out

    m = score_held_out(args.run, args.data, args.imgsz)
    _print_detector_scores(str(args.data), m)
    print(f"wrote {args.run}/test_metrics.json")
    return 0


# The eval table: (key in the scores, column title, factor to percent). The MERL Shopping paper and the
# segmentation literature report every one of these in percent.
EVAL_COLUMNS = [
    ("frame_accuracy", "frame acc", 100),
    ("macro_f1", "macro F1", 100),
    ("edit", "edit", 1),
    ("f1@10", "F1@10", 1),
    ("f1@25", "F1@25", 1),
    ("f1@50", "F1@50", 1),
    ("map@0.1", "mAP@0.1", 100),
    ("map@0.25", "mAP@0.25", 100),
    ("map@0.5", "mAP@0.5", 100),
    ("map@mid", "mAP@mid", 100),
]


def run_eval_action(args: argparse.Namespace) -> int:
    from training.action_data import find_videos, load_videos
    from training.source import checkpoint_file

    checkpoints = {str(run): checkpoint_file(run) for run in args.runs}  # before PyTorch is imported
    names = sorted(find_videos(args.data))
    from training.evaluate import evaluate_videos
    from training.splits import merl_split
    from training.train_action import load_model

    models = {run: load_model(checkpoint)[0] for run, checkpoint in checkpoints.items()}
    where = str(args.data)
    if args.split == "merl":
        try:
            names = list(merl_split(names)["test"])
        except ValueError as exc:
            raise ShelfWatchError(f"{args.data}: --split merl: {exc}") from None
        if not names:
            raise ShelfWatchError(f"{args.data}: --split merl: no video of the test subjects 27-41")
        where += " (MERL Shopping's test subjects 27-41)"
    rows = {}
    videos = None
    for run, model in models.items():
        if videos is None or videos[0].frames.shape[1:3] != (model.config.input.height, model.config.input.width):
            videos = load_videos(args.data, model.config.input, names)
        rows[run] = evaluate_videos(model, videos)[0]
    print(f"{len(names)} videos in {where}; every score in %, mAP@mid by MERL Shopping's midpoint rule")
    print(f"{'run':<36}" + "".join(f"{title:>10}" for _, title, _ in EVAL_COLUMNS))
    for run, m in rows.items():
        print(f"{run[-36:]:<36}" + "".join(f"{m[key] * factor:>10.1f}" for key, _, factor in EVAL_COLUMNS))
    print("per-class frame precision / recall, %:")
    print(f"{'run':<36}" + "".join(f"{name:>20}" for name in ACTION_CLASSES))
    for run, m in rows.items():
        cells = (f"{m[f'precision/{c}'] * 100:.1f} / {m[f'recall/{c}'] * 100:.1f}" for c in ACTION_CLASSES)
        print(f"{run[-36:]:<36}" + "".join(f"{cell:>20}" for cell in cells))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def run_eval_bundle(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edge.bundle import load_bundle
    from training.bundle_eval import labelled_videos, score_bundle, table

    load_bundle(args.bundle)  # a broken bundle is one line before any video is read
    pairs = labelled_videos(args.data, args.split)
    if not pairs:
        raise ShelfWatchError(f"{args.data}: no labelled video to score")
    score = score_bundle(args.bundle, pairs)
    print(table(score))
    if args.json:
        args.json.write_text(json.dumps({"videos": [asdict(v) for v in score.videos], "pooled": score.pooled},
                                        indent=2))  # fmt: skip
    return 0


def run_eval_compare(args: argparse.Namespace) -> int:
    import sys

    from training.bundle_compare import Rules, compare, report

    if args.margin < 0 or args.tolerance < 0 or args.min_clips < 1:
        raise ShelfWatchError("--margin and --tolerance must be at least 0, --min-clips at least 1")
    rules = Rules(margin_points=args.margin, tolerance_points=args.tolerance, min_clips=args.min_clips)
    # With --json and no file, stdout carries the JSON alone: everything for a person goes to stderr.
    human = sys.stderr if args.json == "-" else sys.stdout
    verdict = compare(args.old, args.new, args.data, args.negatives, rules,
                      on_clip=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    print(report(verdict), file=human)
    if args.json == "-":
        print(verdict.model_dump_json(indent=2))
    elif args.json is not None:
        Path(args.json).write_text(verdict.model_dump_json(indent=2) + "\n")
        print(f"wrote {args.json}", file=human)
    return 0


def run_labels_convert(args: argparse.Namespace) -> int:
    from training.label_files import read_labels, write_labels

    if args.output.suffix.lower() not in (".json", ".mat"):
        raise ShelfWatchError(f"{args.output}: the output must be a .json (ShelfWatch) or .mat (MERL Shopping) file")
    labels = read_labels(args.input, frame_count=args.frames, fps=args.fps)
    write_labels(labels, args.output)
    print(f"{args.input} -> {args.output}: {labels.frame_count} frames, {len(labels.segments)} segments")
    print(f"  {labels.overlaps}")
    return 0


def run_labels_show(args: argparse.Namespace) -> int:
    from training.label_files import read_labels
    from training.labels import read_label_file

    labels = read_labels(args.input)
    print(f"{args.input}: {labels.frame_count} frames at {labels.fps:g} fps, {len(labels.segments)} segments")
    print(f"  {labels.overlaps}")
    if labels.partial:
        stamps = Counter(t.label for t in labels.timestamps)
        print(f"  timestamp labels: {len(labels.timestamps)} labelled frames, the other "
              f"{labels.frame_count - len(labels.timestamps)} unknown")  # fmt: skip
        for k, name in enumerate(ACTION_CLASSES):
            print(f"  {name:<20} {stamps.get(k, 0):>4} timestamps")
    counts = Counter(labels.frame_classes.tolist())
    seg_counts = Counter(s.label for s in labels.segments)
    for k, name in enumerate(ACTION_CLASSES if not labels.partial else ()):
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
