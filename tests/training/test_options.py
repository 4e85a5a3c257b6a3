"""`shelfwatch train action`'s options come from one typed definition (training.options): its defaults,
its choices, its bounds."""

from __future__ import annotations

import pytest

from edge.errors import ShelfWatchError
from edge.preprocess import InputSpec
from shelfwatch.cli import build_parser
from training.cli import train_options
from training.options import ModelConfig, TrainOptions


def parse(*flags: str) -> TrainOptions:
    return train_options(build_parser().parse_args(["train", "action", "data", "--out", "run", *flags]))


def test_no_flags_give_the_definitions_defaults():
    assert parse() == TrainOptions()
    assert parse().model == ModelConfig() and parse().model.input == InputSpec()


def test_every_flag_reaches_its_field():
    options = parse(
        "--encoder", "mobilenet_v3_small", "--width", "4", "--head", "bilstm", "--hidden", "8", "--window", "3",
        "--delay", "2", "--size", "64x48", "--no-motion", "--encoder-steps", "5", "--frame-batch", "6",
        "--temporal-steps", "7", "--clip-len", "9", "--batch", "10", "--lr", "0.5", "--temporal-lr", "0.25",
        "--eval-every", "11", "--seed", "12", "--val-fraction", "0.5", "--split", "merl", "--no-augment",
        "--pretrained", "w.pt", "--encoder-from", "other/frame.pt",
    )  # fmt: skip
    assert options == TrainOptions(
        model=ModelConfig("mobilenet_v3_small", 4, "bilstm", 8, 3, 2, input=InputSpec(64, 48, motion=False)),
        encoder_steps=5, frame_batch=6, temporal_steps=7, clip_len=9, batch=10, lr=0.5, temporal_lr=0.25,
        eval_every=11, seed=12, val_fraction=0.5, split="merl", augment=False, pretrained="w.pt",
        encoder_from="other/frame.pt",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--encoder-steps", "0"], "--encoder-steps must be greater than or equal to 1"),
        (["--hidden", "0"], "--hidden must be greater than or equal to 1"),
        (["--delay", "-1"], "--delay must be greater than or equal to 0"),
        (["--delay", "16", "--clip-len", "16"], "--delay (16) must be less than --clip-len (16)"),
        (["--size", "20x48"], "--size must be greater than or equal to 32"),
        (["--size", "64x481"], "--size must be less than or equal to 480"),
        (["--val-fraction", "1"], "--val-fraction must be less than 1"),
        (["--lr", "0"], "--lr must be greater than 0"),
    ],
)
def test_out_of_range_values_are_refused_by_their_bounds(flags, message):
    with pytest.raises(ShelfWatchError) as err:
        parse(*flags)
    assert str(err.value) == message


def test_a_bad_option_is_one_line_before_any_data_is_read(tmp_path, shelfwatch):
    result = shelfwatch("train", "action", tmp_path / "nowhere", "--out", tmp_path / "run", "--batch", "0")
    assert result.returncode == 2 and result.stderr == "shelfwatch: error: --batch must be greater than or equal to 1\n"
