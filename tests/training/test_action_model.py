import pytest
import torch

from edge.errors import ShelfWatchError
from edge.preprocess import InputSpec
from training.action_model import ActionModel, ModelConfig

TINY = ModelConfig(width=4, hidden=16, input=InputSpec(64, 48))


def test_lstm_step_by_step_equals_the_whole_sequence():
    torch.manual_seed(0)
    model = ActionModel(TINY).eval()
    frames = torch.randn(1, 12, 4, 48, 64)
    with torch.no_grad():
        whole = model(frames)[0]
        feats = model.encode(frames)[0]
        h = c = torch.zeros(1, 1, TINY.hidden)
        steps = []
        for t in range(12):
            scores, h, c = model.step(feats[t : t + 1], h, c)
            steps.append(scores[0])
    assert torch.allclose(whole, torch.stack(steps), atol=1e-5)


@pytest.mark.parametrize("head", ["lstm", "frame", "window"])
def test_streaming_heads_never_look_ahead(head):
    torch.manual_seed(0)
    model = ActionModel(ModelConfig(width=4, hidden=16, head=head, window=4, input=InputSpec(64, 48))).eval()
    frames = torch.randn(1, 10, 4, 48, 64)
    changed = frames.clone()
    changed[:, 7:] = torch.randn(1, 3, 4, 48, 64)
    with torch.no_grad():
        assert torch.allclose(model(frames)[0, :7], model(changed)[0, :7], atol=1e-5)
        assert not torch.allclose(model(frames)[0, 7:], model(changed)[0, 7:])


def test_pretrained_encoder_weights_load_from_a_local_file(tmp_path):
    source = ActionModel(TINY)
    torch.save(source.encoder.state_dict(), tmp_path / "encoder.pt")
    target = ActionModel(TINY, pretrained=tmp_path / "encoder.pt")
    for (name, a), b in zip(source.encoder.state_dict().items(), target.encoder.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ShelfWatchError, match="no such pretrained weights file"):
        ActionModel(TINY, pretrained=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ShelfWatchError, match="not a PyTorch state dict"):
        ActionModel(TINY, pretrained=tmp_path / "junk.pt")


def test_a_few_steps_fit_a_fixed_batch():
    torch.manual_seed(0)
    model = ActionModel(TINY)
    x, y = torch.randn(2, 8, 4, 48, 64), torch.randint(0, 6, (2, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_the_imagenet_mobilenet_v2_loads_the_weights_the_package_ships():
    from training.action_model import imagenet_mobilenet_v2

    model = ActionModel(ModelConfig(encoder="mobilenet_v2", hidden=16, input=InputSpec(64, 48)))
    shipped = list(torch.load(imagenet_mobilenet_v2(), map_location="cpu", weights_only=True).values())
    body = model.encoder.body[0]  # torchvision's MobileNetV2 features, the motion channel added to its first layer
    loaded = list(body.state_dict().values())
    assert len(loaded) == len(shipped) == 312
    assert all(torch.equal(a, b) for a, b in zip(loaded[1:], shipped[1:], strict=True))
    first = body[0][0].weight
    assert first.shape[1] == 4 and torch.equal(first[:, :3], shipped[0])  # RGB filters as trained
    assert model.encoder.pretrained and model.encoder.out_features == 1280


def test_weights_of_another_architecture_are_refused_in_one_line(tmp_path):
    torch.save(ActionModel(TINY).encoder.state_dict(), tmp_path / "slim.pt")
    with pytest.raises(ShelfWatchError, match=r"slim\.pt: its \d+ tensors do not line up with this encoder's"):
        ActionModel(ModelConfig(encoder="mobilenet_v2", input=InputSpec(64, 48)), tmp_path / "slim.pt")


def test_a_pretrained_body_learns_gently_and_freezes_at_zero():
    from training.train_action import _param_groups

    model = ActionModel(ModelConfig(encoder="mobilenet_v2", hidden=16, input=InputSpec(64, 48)))
    groups = _param_groups({"frame": model}, 1e-3, 0.1)
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    first = model.encoder.body[0][0][0].weight
    assert any(p is first for p in groups[0]["params"])  # the input layer is new to the motion channel
    frozen = _param_groups({"frame": model}, 1e-3, 0.0)
    assert len(frozen) == 1 and not model.encoder.body[0][1].conv[0][0].weight.requires_grad
    # A scratch encoder learns at the full rate throughout.
    assert len(_param_groups({"frame": ActionModel(TINY)}, 1e-3, 0.1)) == 1
