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
