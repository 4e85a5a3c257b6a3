"""`--device auto|cpu|cuda`: where training computes, and checkpoints that never depend on it.

No test here needs a GPU (CI has none): what a GPU run does is `bench/gpu_recipe.py`'s to show on a GPU machine."""

import os
from collections import OrderedDict

import pytest
import torch

from edge.errors import ShelfWatchError
from training.action_model import ActionModel
from training.device import device_of, resolve_device, to_cpu
from training.options import ModelConfig
from training.train_action import save_atomic


def test_auto_takes_cuda_only_where_pytorch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")  # asked for, even beside a GPU


def test_cuda_without_a_gpu_or_an_unknown_device_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ShelfWatchError, match=r"^--device cuda: PyTorch .* sees no CUDA GPU here; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ShelfWatchError, match="choose auto, cpu or cuda"):
        resolve_device("gpu")


@pytest.mark.parametrize("command", ["action", "adapt"])
def test_the_commands_refuse_cuda_where_there_is_none_before_reading_anything(tmp_path, shelfwatch, command):
    (tmp_path / "data").mkdir()
    args = [tmp_path / "data"] if command == "action" else ["--from", tmp_path / "nowhere", "--data", tmp_path / "data"]
    hidden = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU for PyTorch, also on a machine that has one
    done = shelfwatch("train", command, *args, "--out", tmp_path / "run", "--device", "cuda", env=hidden)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "--device cuda" in done.stderr
    assert not (tmp_path / "run").exists()


def test_the_device_of_a_model_is_where_its_weights_are():
    assert device_of(ActionModel(ModelConfig(width=4, hidden=8))) == torch.device("cpu")
    assert device_of(torch.nn.ReLU()) == torch.device("cpu")  # nothing to hold: the CPU


def test_checkpoints_hold_cpu_tensors_and_a_cpu_one_is_saved_as_it_always_was(tmp_path):
    model = ActionModel(ModelConfig(width=4, hidden=8))
    optimizer = torch.optim.AdamW(model.parameters())
    model.head(torch.randn(1, 3, model.encoder.out_features)).sum().backward()
    optimizer.step()
    state = model.state_dict()
    moved = to_cpu({"model": state, "optimizer": optimizer.state_dict(), "history": [{"step": 1}], "pair": (1, 2)})
    # A state dict keeps its type and its module versions (load_state_dict reads them); CPU tensors are not copied.
    assert type(moved["model"]) is OrderedDict and moved["model"]._metadata == state._metadata
    assert all(moved["model"][k] is v for k, v in state.items())
    assert moved["history"] == [{"step": 1}] and moved["pair"] == (1, 2)
    assert all(t.device.type == "cpu" for s in moved["optimizer"]["state"].values() for t in s.values())
    # The file written is the one torch.save wrote before checkpoints went through to_cpu (save_atomic writes
    # NAME.tmp and renames it; torch names the archive inside after the file it writes).
    (tmp_path / "plain").mkdir()
    torch.save({"model": state}, tmp_path / "plain" / "best.pt.tmp")
    save_atomic({"model": state}, tmp_path / "best.pt")
    assert (tmp_path / "best.pt").read_bytes() == (tmp_path / "plain" / "best.pt.tmp").read_bytes()
