"""`shelfwatch train action`: labelled videos -> the CNN-LSTM action model, with its baselines.

Two stages, the classic CNN-LSTM recipe, because on a CPU the encoder learns far faster from
decorrelated single frames than from clips of near-identical ones:

1. the encoder with a per-frame head, on class-balanced batches of random frames (with the motion
   channel, one frame already shows which way a hand moves) -> `frame.pt`, the per-frame CNN baseline;
2. the encoder frozen, every frame encoded once, then the uni-directional LSTM (`best.pt`) and the
   windowed clip classifier (`window.pt`, the second baseline) trained on feature sequences.

All three are scored on the validation videos in the same run. RUN_DIR also receives `last.pt`
(resumable), `metrics.json` and the plots. The split is by video; validation videos never train.

Videos with timestamp labels train as `training.timestamps` describes: stage 1 on their labelled frames only, stage
2 on labels spread to the boundaries the stage-1 encoder's features give.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge.bundle import sha256_of
from edge.errors import ShelfWatchError
from training.action_data import FeatureClipSampler, FrameSampler, Video, class_weights, find_videos, load_videos
from training.action_model import ActionModel
from training.device import describe, device_of, resolve_device, to_cpu
from training.evaluate import encode_video, evaluate_videos, pooled_confusion
from training.label_files import read_dataset_manifest
from training.options import ModelConfig, TrainOptions
from training.plots import plot_confusion, plot_curves, plot_timeline
from training.provenance import command_line
from training.splits import Split, merl_split, merl_subject, split_by_video
from training.timestamps import spread_to_boundaries, spread_to_midpoints


def load_model(path: Path) -> tuple[ActionModel, dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ShelfWatchError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise ShelfWatchError(f"{path}: not a ShelfWatch checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise ShelfWatchError(f"{path}: not a ShelfWatch action-model checkpoint")
    model = ActionModel(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def checkpoint_entry(path: Path) -> dict:
    """The run's checkpoint and its sha256: what a bundle exported from it records (`provenance.checkpoint_sha256`)."""
    return {"file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size}


def save_atomic(obj: dict, path: Path) -> None:
    """Write a checkpoint so that a kill at any moment leaves the previous complete one, never half a file; always
    with CPU tensors, so that a run trained on a GPU loads wherever the CPU tools run."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(to_cpu(obj), tmp)
    os.replace(tmp, path)


def _loss(model: ActionModel, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    d = model.config.delay
    if d and scores.dim() == 3:
        scores, labels = scores[:, d:], labels[:, :-d]  # the output at t answers for frame t - d
    return torch.nn.functional.cross_entropy(scores.flatten(0, -2), labels.flatten(), weight=weights.to(scores.device))


def _schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )


class _Run:
    """The run folder: checkpoints, the best model of each head, and the history."""

    def __init__(self, run_dir: Path, options: TrainOptions, split: dict, weights: torch.Tensor) -> None:
        self.dir, self.options, self.split, self.weights = run_dir, options, split, weights
        self.history: list[dict] = []
        self.best: dict[str, float] = {}
        self.seconds = 0.0
        self.timestamps: dict[str, list[str]] = {"train": [], "val": []}  # videos labelled by timestamps

    def record(self, name: str, model: ActionModel, step: int, loss: float, val: dict) -> None:
        self.history.append({"head": name, "step": step, "train_loss": loss, "val": val, "seconds": self.seconds})
        score = val["f1@50"] / 100 + val["frame_accuracy"]
        if score > self.best.get(name, -1.0):
            self.best[name] = score
            save_atomic(
                {
                    "config": model.config.to_dict(),
                    "model": model.state_dict(),
                    "step": step,
                    "options": self.options.to_dict(),
                    "split": self.split,
                },
                self.dir / f"{name}.pt",
            )
        print(
            f"{name:<6} step {step:>5}  loss {loss:.3f}  val frame acc {val['frame_accuracy']:.3f}  "
            f"F1@50 {val['f1@50']:.1f}  edit {val['edit']:.1f}  ({self.seconds / 60:.1f} min)",
            flush=True,
        )

    def save(
        self,
        stage: str,
        step: int,
        models: dict[str, ActionModel],
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LambdaLR,
    ) -> None:
        save_atomic(
            {
                "stage": stage,
                "step": step,
                "models": {k: m.state_dict() for k, m in models.items()},
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "history": self.history,
                "best": self.best,
                "seconds": self.seconds,
                "options": self.options.to_dict(),
            },
            self.dir / "last.pt",
        )


def _param_groups(models: dict[str, ActionModel], lr: float, backbone_share: float) -> list[dict]:
    """The optimiser's parameter groups: a pretrained encoder's body learns at `backbone_share` of `lr` (none at 0:
    frozen), so that stage 1 adapts ImageNet features instead of overwriting them; its widened input layer (the
    motion channel is new to it) and everything else learn at `lr`."""
    body: list[torch.nn.Parameter] = []
    for m in models.values():
        if getattr(m.encoder, "pretrained", False):
            first = {id(p) for p in _input_layer(m.encoder).parameters()}
            body += [p for p in m.encoder.parameters() if p.requires_grad and id(p) not in first]
    in_body = {id(p) for p in body}
    rest = [p for m in models.values() for p in m.parameters() if p.requires_grad and id(p) not in in_body]
    if backbone_share == 0:
        for p in body:
            p.requires_grad_(False)
        body = []
    return [{"params": rest, "lr": lr}] + ([{"params": body, "lr": lr * backbone_share}] if body else [])


def _input_layer(encoder: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d))


def _optimise(
    run: _Run,
    stage: str,
    models: dict[str, ActionModel],
    sample: Callable[[], tuple],
    steps: int,
    lr: float,
    evaluate: Callable[[str, int, float], None],
    resume: dict | None,
) -> None:
    groups = _param_groups(models, lr, run.options.backbone_lr if stage == "encoder" else 1.0)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=run.options.weight_decay)
    schedule = _schedule(optimizer, steps)
    start = 0
    if resume is not None and resume["stage"] == stage:
        for k, m in models.items():
            m.load_state_dict(resume["models"][k])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        start = resume["step"]
    losses: dict[str, list[float]] = {k: [] for k in models}
    bar = tqdm(range(start, steps), desc=stage, leave=False, disable=None, initial=start, total=steps)
    began = time.perf_counter()
    device = device_of(next(iter(models.values())))
    for step in bar:
        x, y = sample()
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        total = 0.0
        for k, m in models.items():
            m.train()
            loss = _loss(m, m.head(xt) if stage == "temporal" else m(xt[:, None])[:, 0], yt, run.weights)
            total = total + loss
            losses[k].append(loss.item())
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{np.mean(losses[next(iter(models))][-20:]):.3f}")
        if (step + 1) % run.options.eval_every == 0 or step + 1 == steps:
            run.seconds += time.perf_counter() - began
            for k in models:
                evaluate(k, step + 1, float(np.mean(losses[k][-run.options.eval_every :])))
            run.save(stage, step + 1, models, optimizer, schedule)
            began = time.perf_counter()


def train_action(
    data_dir: Path, run_dir: Path, options: TrainOptions, resume: bool = False, device: str = "auto"
) -> dict:
    """Train both stages on `device` (auto: CUDA when there is one). The device is not one of the run's options:
    checkpoints hold CPU tensors and `--resume` continues a run on whichever device is at hand."""
    where = resolve_device(device)
    torch.set_num_threads(os.cpu_count() or 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(find_videos(data_dir))
    if options.split == "merl":
        try:
            parts = merl_split(names)
        except ValueError as exc:
            raise ShelfWatchError(f"{data_dir}: --split merl: {exc}") from None
        split = Split(parts["train"], parts["val"])
        print(
            f"MERL Shopping's split by subject: {len(split.train)} training (1-20), {len(split.val)} validation "
            f"(21-26); {len(parts['test'])} test videos (27-41) left for `shelfwatch eval action --split merl`",
            flush=True,
        )
    elif options.split == "dataset":
        split = dataset_split(data_dir, names)
    else:
        split = split_by_video(names, options.val_fraction, options.seed, group=merl_subject)
    if not split.train or not split.val:
        raise ShelfWatchError(f"{data_dir}: {len(names)} video(s) cannot be split into training and validation")
    spec = options.model.input
    print(f"loading {len(split.train)} training and {len(split.val)} validation videos from {data_dir}; training on "
          f"{describe(where)}", flush=True)  # fmt: skip
    train, val = load_videos(data_dir, spec, list(split.train)), load_videos(data_dir, spec, list(split.val))
    val = [midpoints(v) for v in val]
    stamped = {"train": [v.name for v in train if v.partial], "val": [v.name for v in val if v.partial]}
    if stamped["train"] or stamped["val"]:
        print(f"timestamp labels: {len(stamped['train'])} training videos (stage 1 on their labelled frames, stage 2 "
              f"on labels spread to the encoder's boundaries), {len(stamped['val'])} validation videos (scored "
              "against labels spread to the midpoints between timestamps: approximate)", flush=True)  # fmt: skip
    run = _Run(run_dir, options, asdict(split), torch.from_numpy(class_weights([midpoints(v) for v in train])))
    run.timestamps = stamped
    saved = None
    if resume and (run_dir / "last.pt").exists():
        saved = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
        if {"split": "random", **saved["options"]} != options.to_dict():  # runs from before --split: random
            raise ShelfWatchError(f"{run_dir / 'last.pt'}: was trained with other options; use a new --out")
        run.history, run.best, run.seconds = saved["history"], saved["best"], saved["seconds"]
        print(f"resuming {run_dir / 'last.pt'}: {saved['stage']} stage, step {saved['step']}", flush=True)
    torch.manual_seed(options.seed)
    pretrained = Path(options.pretrained) if options.pretrained else None
    # One frame cannot look back, so the per-frame head has no delay.
    frame = ActionModel(replace(options.model, head="frame", delay=0), pretrained).to(where)

    # Stage 1: the encoder, one frame at a time (or one already trained, from another run).
    if options.encoder_from:
        _adopt_encoder(Path(options.encoder_from), run_dir, options.model)
    elif saved is None or saved["stage"] == "encoder":
        sampler = FrameSampler(train, spec, options.augment, seed=options.seed * 7919 + (saved or {}).get("step", 0))
        _optimise(
            run,
            "encoder",
            {"frame": frame},
            lambda: sampler.sample(options.frame_batch),
            options.encoder_steps,
            options.lr,
            lambda k, step, loss: run.record(k, frame, step, loss, evaluate_videos(frame, val)[0]),
            saved,
        )
        saved = None
    frame, _ = load_model(run_dir / "frame.pt")
    frame.to(where)

    # Stage 2: the temporal heads on frozen features.
    temporal = {
        "best": ActionModel(options.model).to(where),
        "window": ActionModel(replace(options.model, head="window")).to(where),
    }
    for m in temporal.values():
        m.encoder.load_state_dict(frame.encoder.state_dict())
        m.encoder.requires_grad_(False)
        m.encoder.eval()
    print("encoding every frame with the trained encoder", flush=True)
    train_feats = [encode_video(frame, v) for v in train]
    val_feats = [encode_video(frame, v) for v in val]
    # Timestamp labels spread to the boundaries the encoder's own features give (training.timestamps).
    spread = [
        spread_to_boundaries(f, v.timestamps) if v.partial else v.labels
        for v, f in zip(train, train_feats, strict=True)
    ]
    clips = FeatureClipSampler(
        train_feats,
        spread,
        options.clip_len,
        seed=options.seed * 104_729 + (saved or {}).get("step", 0),
    )
    _optimise(
        run,
        "temporal",
        temporal,
        lambda: clips.sample(options.batch),
        options.temporal_steps,
        options.temporal_lr,
        lambda k, step, loss: run.record(k, temporal[k], step, loss, evaluate_videos(temporal[k], val, val_feats)[0]),
        saved,
    )
    return finish_run(run, val, val_feats, where)


def dataset_split(data_dir: Path, names: list[str]) -> Split:
    """The split `shelfwatch dataset export` wrote into the folder's manifest (by clip and day)."""
    manifest = read_dataset_manifest(data_dir)
    if manifest is None:
        raise ShelfWatchError(f"{data_dir}: --split dataset needs the manifest.json that `shelfwatch dataset export` "
                              "writes")  # fmt: skip
    parts = {c.name: c.split for c in manifest.clips}
    unknown = sorted(set(names) - set(parts))
    if unknown:
        raise ShelfWatchError(f"{data_dir}: {unknown[0]} is not in its manifest.json (export the folder again)")
    print(f"the dataset's split ({manifest.split_rule})", flush=True)
    return Split(tuple(n for n in names if parts[n] == "train"), tuple(n for n in names if parts[n] == "val"))


def midpoints(video: Video) -> Video:
    """A video with timestamp labels, every frame labelled by its nearest timestamp (others unchanged)."""
    if not video.partial:
        return video
    return Video(video.name, video.frames, spread_to_midpoints(video.timestamps, len(video.labels)), video.timestamps)


def _adopt_encoder(source: Path, run_dir: Path, model: ModelConfig) -> None:
    trained, _ = load_model(source)
    c = trained.config
    if (c.encoder, c.width, c.input) != (model.encoder, model.width, model.input) or c.head != "frame":
        raise ShelfWatchError(f"{source}: a per-frame encoder of another kind ({c.encoder}, width {c.width}, "
                              f"{c.input}, head {c.head}); this run wants {model.encoder}, width {model.width}, "
                              f"{model.input}")  # fmt: skip
    if source.resolve() != (run_dir / "frame.pt").resolve():
        shutil.copy(source, run_dir / "frame.pt")
    print(f"stage 1 skipped: the encoder comes from {source}", flush=True)


def finish_run(run: _Run, val: list[Video], val_feats: list[np.ndarray], device: torch.device) -> dict:
    """Score the best checkpoint of each head; they share the frozen encoder, so its features serve all."""
    results_by_head, summary = {}, {}
    for name in ("best", "frame", "window"):
        model, _ = load_model(run.dir / f"{name}.pt")
        model.to(device)
        summary[name], results_by_head[name] = evaluate_videos(model, val, val_feats)
    best_ckpt = torch.load(run.dir / "best.pt", map_location="cpu", weights_only=False)
    metrics = {
        "model": best_ckpt["config"],
        "options": run.options.to_dict(),
        "split": run.split,
        "timestamp_labels": run.timestamps,
        "train_seconds": run.seconds,
        "device": describe(device),
        "val": {"cnn_lstm": summary["best"], "per_frame_cnn": summary["frame"], "window_clip": summary["window"]},
        "history": run.history,
        "command": command_line(),
        "checkpoint": checkpoint_entry(run.dir / "best.pt"),
    }
    (run.dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    results = results_by_head["best"]
    plot_curves(run.history, run.dir / "curves.png")
    plot_confusion(pooled_confusion(results), run.dir / "confusion.png")
    plot_timeline(
        results[0].truth, results[0].pred, 30.0, f"{results[0].name} (validation, CNN-LSTM)", run.dir / "timeline.png"
    )
    return metrics
