"""`shelfwatch train adapt`: a trained action model fine-tuned on a store's verified clips, without forgetting the
domain it was trained on.

- From: a training run (its `best.pt`), a checkpoint file, or a model bundle whose `checkpoint.pt` (left there by
  `export`) has the sha256 its manifest records. The model keeps its shape (input, encoder, hidden size, delay).
- What learns (`--train`): `head`, the LSTM and the classifier on the frozen encoder's features (each frame is
  encoded once, so a step costs next to nothing); or `last-blocks`, the encoder's last `--blocks` blocks too. The
  frames are run once through the frozen part of the encoder and its output is kept, so the trained blocks see the
  same (unaugmented) activations every step; their batch-norm statistics stay as trained (a few clips are too few
  to estimate them). Everything else is left bit for bit as it was. Or `encoder`: the whole encoder, one frame at a
  time as stage 1 of `train action` trains it (a linear probe first, then fine-tuning: `tune_encoder`), then the LSTM
  and the classifier on its features, for a store the shipped encoder's features do not separate.
- Replay (`--replay DIR`): `--replay-share` of each batch's clips come from the original domain's videos, so the
  model keeps what it knew (rehearsal, the simplest defence against catastrophic forgetting).
- Early stopping: the verified clips are split by clip, deterministically (`--val-fraction`, `--seed`; a single clip
  gives its last `--val-fraction` of frames); the held-out part is scored every `--eval-every` steps through the
  agent's own segmentation step, the source model first, and the best scoring weights are kept: if nothing beats the
  source, the run says so and keeps the source's weights.
- Labels: full labels, or timestamp labels (`training.timestamps`): training clips' timestamps are spread to the
  boundaries the source encoder's features give, held-out clips' to the midpoints (fixed, so the model never grades
  its own boundaries).

The run folder is one `shelfwatch export` takes as it is: `best.pt` (the checkpoint format `train action` writes,
plus where it came from), `metrics.json` (the scores, the commands that made the source and this run, the
checkpoint's sha256), and `videos/` (links to the clips it trained on and the replay videos, for export's
`--calibration` and `--familiarity-fit`, so that the new bundle's familiarity guard knows the store).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from edge.preprocess import to_input
from training.action_data import FeatureClipSampler, FrameSampler, Video, class_weights, find_videos, load_videos
from training.action_model import ActionModel, SlimResNet18
from training.device import describe, device_of, resolve_device
from training.evaluate import ENCODE_BATCH, encode_video, evaluate_videos
from training.label_files import read_dataset_manifest
from training.options import AdaptOptions
from training.provenance import command_line
from training.source import find_source
from training.splits import split_by_video
from training.timestamps import spread_to_boundaries, spread_to_midpoints
from training.train_action import _loss, _schedule, checkpoint_entry, dataset_split, load_model, save_atomic


def encoder_parts(encoder: nn.Module, blocks: int) -> tuple[nn.Module, nn.Module]:
    """(frozen trunk, trained tail): the encoder split before its last `blocks` blocks (0: all trunk); the tail
    ends with the pooling, so tail(trunk(x)) is the encoder's output."""
    if isinstance(encoder, SlimResNet18):
        layers, pool = [encoder.stem, *encoder.stages], nn.AdaptiveAvgPool2d(1)
    else:  # torchvision bodies: Sequential(features, pool) (MobileNets) or ResNet's children ending in its pool
        body = encoder.body
        if len(body) == 2 and isinstance(body[0], nn.Sequential):
            layers, pool = list(body[0]), body[1]
        else:
            layers, pool = list(body)[:-1], body[-1]
    if blocks >= len(layers):
        raise ShelfWatchError(f"--blocks {blocks}: this encoder has {len(layers)} blocks; train fewer than all")
    cut = len(layers) - blocks
    return nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:], pool, nn.Flatten(1))


@torch.no_grad()
def run_trunk(trunk: nn.Module, model: ActionModel, video: Video) -> np.ndarray:
    """The frozen trunk's output for every frame (float16: the activations of a minute of video in tens of MB)."""
    trunk.eval()
    device = device_of(model)
    out = []
    for s in range(0, len(video.frames), ENCODE_BATCH):
        before = video.frames[s - 1] if s > 0 else None
        x = torch.from_numpy(to_input(video.frames[s : s + ENCODE_BATCH], before, model.config.input)).to(device)
        out.append(trunk(x).to(torch.float16).cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def run_tail(tail: nn.Module, activations: np.ndarray) -> np.ndarray:
    tail.eval()
    device = device_of(tail)
    return np.concatenate([tail(torch.from_numpy(activations[s : s + ENCODE_BATCH]).to(device).float()).cpu().numpy()
                           for s in range(0, len(activations), ENCODE_BATCH)])  # fmt: skip


@dataclass
class _Domain:
    """Videos as training reads them: the frozen part's output and every frame's class."""

    names: list[str]
    inputs: list[np.ndarray]  # per video: (T, F) features, or (T, C, H, W) trunk activations
    labels: list[np.ndarray]
    videos: list[Video] | None = None  # the decoded frames, kept where the encoder is trained (--train encoder)


def _labelled(videos: list[Video], features: list[np.ndarray], held_out: bool) -> list[np.ndarray]:
    """Every frame's class: timestamps spread to the encoder's boundaries (training) or to the midpoints (held out)."""
    if held_out:
        return [spread_to_midpoints(v.timestamps, len(v.labels)) if v.partial else v.labels for v in videos]
    pairs = zip(videos, features, strict=True)
    return [spread_to_boundaries(f, v.timestamps) if v.partial else v.labels for v, f in pairs]


def _split(names: list[str], options: AdaptOptions, data_dir: Path) -> tuple[list[str], list[str]]:
    if len(names) == 1:
        return names, names  # one clip: split in time below
    if options.split == "dataset" or (options.split == "auto" and read_dataset_manifest(data_dir) is not None):
        split = dataset_split(data_dir, names)  # the export's split by clip and day
        if not split.train or not split.val:
            raise ShelfWatchError(f"{data_dir}: its manifest.json puts {len(split.train)} clip(s) in train and "
                                  f"{len(split.val)} in val; adapting needs both (or --split random)")  # fmt: skip
        return list(split.train), list(split.val)
    split = split_by_video(names, options.val_fraction, options.seed)
    if not split.train:
        raise ShelfWatchError(f"--val-fraction {options.val_fraction} leaves none of {len(names)} clips to train on")
    return list(split.train), list(split.val)


def _cut(video: Video, labels: np.ndarray, start: int, end: int) -> Video:
    return Video(video.name, video.frames[start:end], labels[start:end])


def adapt(
    source_path: Path,
    data_dir: Path,
    run_dir: Path,
    options: AdaptOptions,
    replay_dir: Path | None = None,
    device: str = "auto",
    guard_dir: Path | None = None,
) -> dict:
    """Fine-tune on `device` (auto: CUDA when there is one); write RUN_DIR/best.pt (CPU tensors, whatever the
    device), metrics.json and videos/; return the metrics."""
    where = resolve_device(device)
    torch.set_num_threads(os.cpu_count() or 1)
    source = find_source(source_path)
    names = sorted(find_videos(data_dir))  # one line for a missing folder or one without labelled clips
    replay_names = _replay_names(replay_dir, options) if replay_dir is not None else []
    guard_names = _guard_names(guard_dir, names, replay_names) if guard_dir is not None else []
    model, ckpt = load_model(source.checkpoint)
    if model.config.head != "lstm":
        raise ShelfWatchError(f"{source.checkpoint}: a {model.config.head} head; train adapt adapts the streaming "
                              "CNN-LSTM (a run's best.pt)")  # fmt: skip
    if options.clip_len <= model.config.delay:
        raise ShelfWatchError(f"--clip-len ({options.clip_len}) must be more than the model's delay "
                              f"({model.config.delay})")  # fmt: skip
    model.to(where)  # trunk and tail below are the model's own modules: they move with it
    blocks = options.blocks if options.train == "last-blocks" else 0
    trunk, tail = encoder_parts(model.encoder, blocks)
    spec = model.config.input
    torch.manual_seed(options.seed)
    started = time.perf_counter()

    train_names, val_names = _split(names, options, data_dir)
    print(f"adapting {source.checkpoint} (sha256 {source.sha256[:12]}): {options.train}; {len(names)} verified clips "
          f"from {data_dir}, on {describe(where)}", flush=True)  # fmt: skip
    videos = {v.name: v for v in load_videos(data_dir, spec, names)}
    print("encoding the clips with the source encoder", flush=True)
    features = {n: encode_video(model, v) for n, v in videos.items()}
    train_labels = dict(zip(names, _labelled(list(videos.values()), list(features.values()), False), strict=True))
    val_labels = dict(zip(names, _labelled(list(videos.values()), [], True), strict=True))
    cut = 0
    if len(names) == 1:  # its first frames train, its last are held out
        n = names[0]
        cut = round(len(videos[n].labels) * (1 - options.val_fraction))
        if not 0 < cut < len(videos[n].labels) - 1:
            raise ShelfWatchError(f"{data_dir}: one clip of {len(videos[n].labels)} frames cannot be split in time")
        train_videos = [_cut(videos[n], train_labels[n], 0, cut)]
        val_videos = [_cut(videos[n], val_labels[n], cut, len(val_labels[n]))]
        frame_videos = [_cut(videos[n], videos[n].labels, 0, cut)]  # as labelled: timestamps stay timestamps
        split = {"train": [f"{n} frames 0-{cut}"], "val": [f"{n} frames {cut}-{len(val_labels[n])}"]}
    else:
        train_videos = [Video(n, videos[n].frames, train_labels[n]) for n in train_names]
        val_videos = [Video(n, videos[n].frames, val_labels[n]) for n in val_names]
        frame_videos = [videos[n] for n in train_names]
        split = {"train": train_names, "val": val_names}

    def split_inputs(per_clip: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each clip's encoded frames, cut as the clips are."""
        if cut:
            return [per_clip[names[0]][:cut]], [per_clip[names[0]][cut:]]
        return [per_clip[n] for n in train_names], [per_clip[n] for n in val_names]

    train_inputs, val_inputs = split_inputs(features if not blocks else
                                            {n: run_trunk(trunk, model, v) for n, v in videos.items()})  # fmt: skip
    verified = _Domain([v.name for v in train_videos], train_inputs, [v.labels for v in train_videos])
    stamped = {
        "train": [n for n in train_names if videos[n].partial],
        "val": [n for n in val_names if videos[n].partial],
    }
    keep = options.train == "encoder"  # the frames are encoded again once the encoder has learnt
    replay = _load_replay(replay_dir, replay_names, model, trunk, blocks, keep) if replay_names else None
    guard = _load_guard(guard_dir, guard_names, model, trunk, blocks, keep) if guard_dir is not None else None
    guard_videos = [Video(n, np.empty(0), lab) for n, lab in zip(guard.names, guard.labels, strict=True)
                    ] if guard is not None else []  # fmt: skip
    share = options.replay_share if replay is not None else 0.0
    said = f"{len(verified.names)} clip(s) train, {len(val_videos)} held out for early stopping"
    if replay is not None:
        said += f"; {len(replay.names)} replay videos from {replay_dir}, {share:.0%} of each batch"
    else:
        said += "; no replay (--replay)"
    if guard is not None:
        said += f"; {len(guard.names)} guard videos from {guard_dir} (at most {options.max_forgetting:g} points lost)"
    elif replay is None:
        said += ": nothing guards the original domain"
    if stamped["train"] or stamped["val"]:
        said += f"; timestamp labels: {len(stamped['train'])} training, {len(stamped['val'])} held-out clips"
    print(said, flush=True)

    domains = [verified, *([replay] if replay is not None else [])]
    weights = torch.from_numpy(class_weights([Video(n, np.empty(0), lab) for d in domains
                                              for n, lab in zip(d.names, d.labels, strict=True)]))  # fmt: skip
    weights = weights.to(where)

    def head_scores(x: torch.Tensor) -> torch.Tensor:
        if blocks:
            b, t = x.shape[:2]
            x = tail(x.flatten(0, 1)).view(b, t, -1)
        return model.head(x)

    def score() -> dict[str, float]:
        feats = val_inputs if not blocks else [run_tail(tail, a) for a in val_inputs]
        val = evaluate_videos(model, val_videos, feats)[0]
        if guard is not None:  # the original domain's held-out videos, scored the same way
            feats = guard.inputs if not blocks else [run_tail(tail, a) for a in guard.inputs]
            pooled, per_video = evaluate_videos(model, guard_videos, feats)
            val["guard_frame_accuracy"] = pooled["frame_accuracy"]
            val["guard_per_video"] = [float(np.mean(r.truth == r.pred)) for r in per_video]
        return val

    first = score()
    # A step may not cost the original domain more than --max-forgetting: the constraint `eval compare` applies. The
    # 95 % bound that allows for the guard videos' spread (`forgetting_bound`) is recorded beside it, not enforced:
    # a dozen videos' per-video changes spread too widely for it ever to pass (README, the learning curve).
    floor = first["guard_frame_accuracy"] - options.max_forgetting / 100 if guard is not None else None
    if guard is not None:
        first["guard_bound"] = 0.0
    guard_frames = [len(lab) for lab in guard.labels] if guard is not None else []

    def keeps_the_original(val: dict) -> bool:
        if guard is None:
            return True
        val["guard_bound"] = forgetting_bound(first["guard_per_video"], val["guard_per_video"], guard_frames)
        return val["guard_frame_accuracy"] >= floor - 1e-9

    best = {"step": 0, "score": _merit(first), "val": first, "state": copy.deepcopy(model.state_dict())}
    history = [{"step": 0, "train_loss": None, "val": first, "seconds": time.perf_counter() - started}]
    _report(0, None, first, history[-1]["seconds"], "the source model")
    if options.train == "encoder":
        print(f"tuning the encoder: a linear probe, then {options.encoder_steps} steps of {options.frame_batch} frames",
              flush=True)  # fmt: skip
        encoder_losses = tune_encoder(model, frame_videos, replay.videos if replay is not None else [], share,
                                      weights, options)  # fmt: skip
        print("encoding every frame with the tuned encoder", flush=True)
        train_inputs[:], val_inputs[:] = split_inputs({n: encode_video(model, v) for n, v in videos.items()})
        for domain in (replay, guard):
            if domain is not None and domain.videos is not None:
                domain.inputs[:] = [encode_video(model, v) for v in domain.videos]
        tuned = score()
        keeps_the_original(tuned)  # records its guard_bound: the tuned encoder under the source's LSTM
        history.append({"step": 0, "train_loss": float(np.mean(encoder_losses[-25:])), "val": tuned,
                        "seconds": time.perf_counter() - started, "stage": "encoder"})  # fmt: skip
        _report(0, history[-1]["train_loss"], tuned, history[-1]["seconds"], "the tuned encoder, the source's LSTM")

    # What moves: the LSTM and the classifier, and with --train last-blocks the tail's weights (not its BN statistics).
    model.requires_grad_(False)
    trained = [model.lstm, model.classifier, *([tail] if blocks else [])]
    for module in trained:
        module.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    samplers = [FeatureClipSampler(d.inputs, d.labels, options.clip_len, seed=options.seed * 104_729 + i)
                for i, d in enumerate(domains)]  # fmt: skip
    n_replay = round(options.batch * share) if replay is not None else 0
    counts = [options.batch - n_replay, n_replay]

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        parts = [s.sample(k) for s, k in zip(samplers, counts, strict=False) if k]
        n = min(x.shape[1] for x, _ in parts)
        x = np.concatenate([x[:, :n] for x, _ in parts])
        y = np.concatenate([y[:, :n] for _, y in parts])
        return torch.from_numpy(x).to(where).float(), torch.from_numpy(y).to(where)

    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=1e-4)
    schedule = _schedule(optimizer, options.steps)
    losses: list[float] = []
    waited, highest = 0, best["score"]
    step = 0
    for step in range(1, options.steps + 1):
        model.train()
        tail.eval()  # batch-norm statistics as trained; dropout in the head still active
        x, y = sample()
        losses.append(_descend(_loss(model, head_scores(x), y, weights), optimizer, schedule, params))
        if step % options.eval_every == 0 or step == options.steps:
            val = score()
            seconds = time.perf_counter() - started
            history.append({"step": step, "train_loss": float(np.mean(losses[-options.eval_every :])), "val": val,
                            "seconds": seconds})  # fmt: skip
            _report(step, history[-1]["train_loss"], val, seconds)
            better = _merit(val) > best["score"]
            if not keeps_the_original(val) and better:
                print(f"  not kept: the guard videos lost more than {options.max_forgetting:g} points", flush=True)
                better = False
            if better:
                best = {"step": step, "score": _merit(val), "val": val, "state": copy.deepcopy(model.state_dict())}
            # Patience follows the held-out clips alone: while they still improve, a step the guard refused may be
            # followed by one that also wins back the original domain (the replayed half of each batch).
            if _merit(val) > highest:
                highest, waited = _merit(val), 0
            else:
                waited += 1
                if waited >= options.patience:
                    print(f"early stop: {waited} scorings without a better held-out score", flush=True)
                    break
    seconds = time.perf_counter() - started

    run_dir.mkdir(parents=True, exist_ok=True)
    origin = {"checkpoint": str(source.checkpoint), "sha256": source.sha256}
    saved = {"config": model.config.to_dict(), "options": ckpt.get("options", {}), "split": split,
             "adapt": options.to_dict(), "source": origin}  # fmt: skip
    # best.pt: the weights early stopping chose (the source's when no step beat them); last.pt: where training ended.
    save_atomic({**saved, "model": best["state"], "step": best["step"]}, run_dir / "best.pt")
    save_atomic({**saved, "model": model.state_dict(), "step": step}, run_dir / "last.pt")
    linked = _link_videos(run_dir / "videos", data_dir, train_names, replay_dir, replay_names)
    metrics = {
        "model": model.config.to_dict(),
        "adapt": options.to_dict(),
        "source": origin,
        "data": str(data_dir),
        "replay": {"folder": str(replay_dir), "videos": replay_names} if replay_dir is not None else None,
        "guard": None
        if guard_dir is None
        else {
            "folder": str(guard_dir),
            "videos": guard_names,
            "max_forgetting_points": options.max_forgetting,
            "floor": floor,
        },
        "split": split,
        "timestamp_labels": stamped,
        "best_step": best["step"],
        "steps_run": step,
        "improved": best["step"] > 0,
        "val": {"source": first, "adapted": best["val"]},
        "history": history,
        "train_seconds": seconds,
        "device": describe(where),
        "command": command_line(),
        "commands": [*source.commands, command_line()],
        "checkpoint": checkpoint_entry(run_dir / "best.pt"),
        "videos": linked,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def forgetting_bound(before: list[float], after: list[float], frames: list[int]) -> float:
    """The change of frame accuracy on the guard videos (points, pooled over their frames) that the change on other
    videos of the same domain stays above with 95 % confidence: the pooled change less 1.645 of its standard error,
    estimated from the spread of the per-video changes (a video's frames are not independent draws; the videos are:
    the cluster, or ratio-estimator, standard error). With one video, the change itself."""
    w = np.asarray(frames, dtype=float) / sum(frames)
    d = (np.asarray(after) - np.asarray(before)) * 100
    change = float(w @ d)
    k = len(d)
    if k < 2:
        return change
    return change - 1.645 * float(np.sqrt(k / (k - 1) * np.sum(w**2 * (d - change) ** 2)))


PROBE_STEPS = 100  # the linear probe's steps: a linear classifier on fixed features converges in a few dozen
PROBE_LR = 1e-2


def tune_encoder(model: ActionModel, verified: list[Video], replay: list[Video], share: float, weights: torch.Tensor,
                 options: AdaptOptions) -> list[float]:  # fmt: skip
    """Fine-tune the whole encoder one frame at a time, as stage 1 of `train action` trains it: random labelled frames
    of the verified clips, classes drawn equally often, `share` of each batch from the replay videos, augmented as in
    training. A per-frame classifier is needed for it (the model's own classifier reads the LSTM), so a linear probe
    is fitted on the frozen encoder first and the two are then tuned together at `--encoder-lr` (linear probing then
    fine-tuning, LP-FT: a randomly initialised classifier's first gradients would distort the encoder's features
    before it learns anything). Batch-norm statistics stay as trained. Returns the fine-tuning losses."""
    where = device_of(model)
    encoder = model.encoder
    probe = nn.Linear(encoder.out_features, len(ACTION_CLASSES)).to(where)
    sets = [verified, *([replay] if replay and share > 0 else [])]
    samplers = [FrameSampler(videos, model.config.input, augment=True, seed=options.seed * 7919 + i)
                for i, videos in enumerate(sets)]  # fmt: skip
    n_replay = round(options.frame_batch * share) if len(sets) == 2 else 0
    counts = [options.frame_batch - n_replay, n_replay]

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        parts = [s.sample(k) for s, k in zip(samplers, counts, strict=False) if k]
        x, y = np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
        return torch.from_numpy(x).to(where), torch.from_numpy(y).to(where)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(probe(encoder(x)), y, weight=weights)

    # Batch-norm statistics as trained throughout (eval mode): moved to a mix of both stores, they shift every frame's
    # features of the original one.
    encoder.eval()
    encoder.requires_grad_(False)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=PROBE_LR, weight_decay=1e-4)
    for _ in range(PROBE_STEPS):
        _descend(loss_of(*sample()), optimizer, None, None)

    encoder.requires_grad_(True)
    params = [*encoder.parameters(), *probe.parameters()]
    optimizer = torch.optim.AdamW(params, lr=options.encoder_lr, weight_decay=1e-4)
    schedule = _schedule(optimizer, options.encoder_steps)
    losses = []
    for step in range(1, options.encoder_steps + 1):
        losses.append(_descend(loss_of(*sample()), optimizer, schedule, params))
        if step % 50 == 0 or step == options.encoder_steps:
            print(f"encoder step {step:>5}  loss {np.mean(losses[-50:]):.3f}", flush=True)
    encoder.requires_grad_(False)
    return losses


def _descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LambdaLR | None,
             params: list[torch.nn.Parameter] | None) -> float:  # fmt: skip
    """One step down the loss, the gradients of `params` clipped at norm 5 as in `train action` (None: not clipped,
    as for the linear probe); returns the loss."""
    optimizer.zero_grad()
    loss.backward()
    if params is not None:
        torch.nn.utils.clip_grad_norm_(params, 5.0)
    optimizer.step()
    if schedule is not None:
        schedule.step()
    return loss.item()


def _merit(val: dict[str, float]) -> float:
    """What early stopping maximises: frame accuracy and F1@50 (in percent), as `train action` picks its best."""
    return val["frame_accuracy"] + val["f1@50"] / 100


def _report(step: int, loss: float | None, val: dict[str, float], seconds: float, note: str = "") -> None:
    shown = "     -" if loss is None else f"{loss:.3f}"
    guard = f"  guard frame acc {val['guard_frame_accuracy']:.3f}" if "guard_frame_accuracy" in val else ""
    print(f"step {step:>5}  loss {shown}  held-out frame acc {val['frame_accuracy']:.3f}  F1@50 {val['f1@50']:.1f}"
          f"{guard}  ({seconds / 60:.1f} min){'  ' + note if note else ''}", flush=True)  # fmt: skip


def _replay_names(replay_dir: Path, options: AdaptOptions) -> list[str]:
    names = sorted(find_videos(replay_dir))
    if len(names) > options.replay_videos:
        picked = np.random.default_rng(options.seed).choice(len(names), options.replay_videos, replace=False)
        names = [names[i] for i in sorted(picked)]
    return names


def _guard_names(folder: Path, verified: list[str], replay: list[str]) -> list[str]:
    names = sorted(find_videos(folder))
    trained = sorted(set(names) & (set(verified) | set(replay)))
    if trained:
        raise ShelfWatchError(f"{folder}: --guard videos must be held out, but {trained[0]} is also in --data or "
                              "--replay")  # fmt: skip
    return names


def _load_guard(folder: Path, names: list[str], model: ActionModel, trunk: nn.Module, blocks: int,
                keep: bool) -> _Domain:  # fmt: skip
    print(f"encoding {len(names)} guard videos from {folder}", flush=True)
    videos = load_videos(folder, model.config.input, names)
    inputs = [encode_video(model, v) if not blocks else run_trunk(trunk, model, v) for v in videos]
    return _Domain(names, inputs, _labelled(videos, [], held_out=True), videos if keep else None)


def _load_replay(folder: Path, names: list[str], model: ActionModel, trunk: nn.Module, blocks: int,
                 keep: bool) -> _Domain:  # fmt: skip
    videos = load_videos(folder, model.config.input, names)
    if keep and not any(v.partial for v in videos):  # encoded once the encoder is tuned: nothing needs them before
        print(f"read {len(names)} replay videos from {folder}", flush=True)
        return _Domain(names, [], [v.labels for v in videos], videos)
    print(f"encoding {len(names)} replay videos from {folder}", flush=True)
    features = [encode_video(model, v) for v in videos]
    labels = _labelled(videos, features, held_out=False)
    inputs = features if not blocks else [run_trunk(trunk, model, v) for v in videos]
    return _Domain(names, inputs, labels, videos if keep else None)


def _link_videos(folder: Path, data_dir: Path, names: list[str], replay_dir: Path | None,
                 replay_names: list[str]) -> int:  # fmt: skip
    """Links to the videos (and labels) the run trained on: the domain the new bundle's familiarity guard describes."""
    shutil.rmtree(folder, ignore_errors=True)  # an earlier run's links into this folder are not this run's videos
    folder.mkdir(parents=True)
    count = 0
    for source_dir, chosen in ((data_dir, names), (replay_dir, replay_names)):
        if source_dir is None:
            continue
        found = find_videos(source_dir)
        for name in chosen:
            for path in found[name]:
                if not (folder / path.name).is_symlink():  # a clip both verified and replayed is linked once
                    (folder / path.name).symlink_to(path.resolve())
            count += 1
    return count


def summary_lines(metrics: dict) -> list[str]:
    """What the command prints at the end."""
    before, after = metrics["val"]["source"], metrics["val"]["adapted"]
    held = len(metrics["split"]["val"])
    lines = [
        f"held-out verified clips ({held}): frame accuracy {before['frame_accuracy']:.3f} -> "
        f"{after['frame_accuracy']:.3f}, F1@50 {before['f1@50']:.1f} -> {after['f1@50']:.1f} "
        f"(best at step {metrics['best_step']} of {metrics['steps_run']}; {metrics['train_seconds'] / 60:.1f} min)"
    ]
    guard = metrics.get("guard")
    if guard is not None:
        lines.append(f"guard videos ({len(guard['videos'])}, {guard['folder']}): frame accuracy "
                     f"{before['guard_frame_accuracy']:.3f} -> {after['guard_frame_accuracy']:.3f} (kept only steps "
                     f"at or above {guard['floor']:.3f}; the change's 95 % bound, allowing for the videos' spread: "
                     f"{after['guard_bound']:+.2f} points)")  # fmt: skip
    if not metrics["improved"]:
        lines.append("no step beat the source model on the held-out clips: best.pt keeps the source's weights")
    return lines
