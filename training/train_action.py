"""`shelfwatch train action`: clips from labelled videos -> a CNN-LSTM (or baseline) action model.

RUN_DIR receives `last.pt` (every epoch, for --resume), `best.pt` (best validation F1@50), `metrics.json`
and the plots. The split is by video; the validation videos never train.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge.errors import ShelfWatchError
from training.action_data import ClipSampler, Video, class_weights, find_videos, load_videos
from training.action_model import ActionModel, ModelConfig
from training.evaluate import evaluate_videos, pooled_confusion
from training.plots import plot_confusion, plot_curves, plot_timeline
from training.splits import merl_subject, split_by_video


@dataclass(frozen=True)
class TrainOptions:
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 20
    clips_per_epoch: int = 400
    clip_len: int = 48
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.2
    augment: bool = True
    pretrained: str | None = None


def load_model(path: Path) -> tuple[ActionModel, dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise ShelfWatchError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise ShelfWatchError(f"{path}: not a ShelfWatch checkpoint ({exc.__class__.__name__})") from None
    model = ActionModel(ModelConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def _loss(model: ActionModel, scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    d = model.config.delay
    if d:
        scores, labels = scores[:, d:], labels[:, :-d]  # the output at t answers for frame t - d
    return torch.nn.functional.cross_entropy(scores.flatten(0, 1), labels.flatten(), weight=weights)


def train_action(data_dir: Path, run_dir: Path, options: TrainOptions, resume: bool = False) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(find_videos(data_dir))
    split = split_by_video(names, options.val_fraction, options.seed, group=merl_subject)
    if not split.train or not split.val:
        raise ShelfWatchError(f"{data_dir}: {len(names)} video(s) cannot be split into training and validation")
    spec = options.model.input
    print(f"loading {len(split.train)} training and {len(split.val)} validation videos from {data_dir}", flush=True)
    train = load_videos(data_dir, spec, list(split.train))
    val = load_videos(data_dir, spec, list(split.val))
    torch.manual_seed(options.seed)
    pretrained = Path(options.pretrained) if options.pretrained else None
    model = ActionModel(options.model, pretrained)
    weights = torch.from_numpy(class_weights(train))
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps_per_epoch = max(1, options.clips_per_epoch // options.batch)
    total = steps_per_epoch * options.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, steps_per_epoch)) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    history: list[dict] = []
    start_epoch, seconds = 0, 0.0
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if resume and last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        if ckpt["config"] != options.model.to_dict():
            raise ShelfWatchError(f"{last}: was trained with another model configuration; use a new --out")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        start_epoch, history, seconds = ckpt["epoch"], ckpt["history"], ckpt["seconds"]
        print(f"resuming {last} after epoch {start_epoch}", flush=True)
    best_score = max((h["val"]["f1@50"] + h["val"]["frame_accuracy"] for h in history), default=-1.0)
    for epoch in range(start_epoch + 1, options.epochs + 1):
        began = time.perf_counter()
        # Seeded per epoch, so that a resumed run draws the clips it would have drawn.
        sampler = ClipSampler(train, options.clip_len, spec, options.augment, seed=options.seed * 100_003 + epoch)
        model.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{options.epochs}", leave=False, disable=None)
        for _ in bar:
            x, y = sampler.sample(options.batch)
            loss = _loss(model, model(torch.from_numpy(x)), torch.from_numpy(y), weights)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        val_metrics, _ = evaluate_videos(model, val)
        seconds += time.perf_counter() - began
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val": val_metrics, "seconds": seconds})
        print(
            f"epoch {epoch}/{options.epochs}  loss {np.mean(losses):.3f}  val frame acc "
            f"{val_metrics['frame_accuracy']:.3f}  F1@50 {val_metrics['f1@50']:.1f}  edit {val_metrics['edit']:.1f}  "
            f"({seconds / 60:.1f} min)",
            flush=True,
        )
        state = {
            "config": options.model.to_dict(),
            "model": model.state_dict(),
            "epoch": epoch,
            "history": history,
            "seconds": seconds,
            "options": _options_dict(options),
            "split": asdict(split),
        }
        score = val_metrics["f1@50"] + val_metrics["frame_accuracy"]
        if score > best_score:
            best_score = score
            torch.save(state, best)
        torch.save(state | {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, last)
    return finish_run(run_dir, val, options)


def _options_dict(options: TrainOptions) -> dict:
    d = asdict(options)
    d["model"] = options.model.to_dict()
    return d


def finish_run(run_dir: Path, val: list[Video], options: TrainOptions) -> dict:
    model, ckpt = load_model(run_dir / "best.pt")
    summary, results = evaluate_videos(model, val)
    metrics = {
        "model": ckpt["config"],
        "options": ckpt["options"],
        "split": ckpt["split"],
        "best_epoch": ckpt["epoch"],
        "train_seconds": ckpt["history"][-1]["seconds"] if ckpt["history"] else 0.0,
        "val": summary,
        "history": _load_history(run_dir),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_curves(metrics["history"], run_dir / "curves.png")
    plot_confusion(pooled_confusion(results), run_dir / "confusion.png")
    plot_timeline(results[0].truth, results[0].pred, 30.0, f"{results[0].name} (validation)", run_dir / "timeline.png")
    return metrics


def _load_history(run_dir: Path) -> list[dict]:
    return torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)["history"]
