"""`shelfwatch train adapt`: a tiny trained model fine-tuned on a few store-b clips. It starts from the given weights
(what is frozen stays bit for bit, what trains moves), takes timestamp labels, and its run exports as any run does,
into a bundle whose manifest carries the checkpoint's digest and from which one can adapt again; bad input is one
line."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.bundle import CHECKPOINT, load_bundle, sha256_of
from edge.errors import ShelfWatchError
from tests.conftest import shelfwatch_command
from tests.export.conftest import TINY_ACTION
from training.action_model import ActionModel
from training.adapt import adapt, encoder_parts, forgetting_bound
from training.label_files import read_labels, write_as_timestamps
from training.options import AdaptOptions, ModelConfig
from training.synth.generate import VideoSpec, write_video
from training.timestamps import stamp_runs

# --train encoder (the default): two encoder steps of four frames keep it tiny.
ADAPT = "--steps 4 --eval-every 2 --clip-len 16 --batch 4 --encoder-steps 2 --frame-batch 4".split()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny action run on the demo store's videos, and store-b clips (full labels, and the same as timestamps)."""
    root = tmp_path_factory.mktemp("adapt")
    for i in range(3):
        write_video(VideoSpec(seed=3, index=i, frames=120, width=160, height=120), root / "train")
    (root / "stamps").mkdir()
    for i in range(3):  # 10 s each: shoppers reach the shelf within them
        spec = VideoSpec(seed=11, index=i, frames=300, width=160, height=120, preset="store-b")
        write_video(spec, root / "store_b")
        shutil.copy(root / "store_b" / f"{spec.name}.mp4", root / "stamps")
        write_as_timestamps(root / "store_b" / f"{spec.name}.labels.json", root / "stamps" / f"{spec.name}.labels.json")
    command = shelfwatch_command("train", "action", root / "train", "--out", root / "source", *TINY_ACTION)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return root


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


@pytest.mark.parametrize("train", ["head", "last-blocks"])
def test_it_starts_from_the_given_weights_and_moves_only_what_it_trains(tiny, shelfwatch, tmp_path, train):
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tiny / "store_b", "--replay",
                        tiny / "train", "--out", tmp_path / "run", "--train", train, "--blocks", 1, *ADAPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 clip(s) train, 1 held out for early stopping; 3 replay videos" in result.stdout
    before, after = weights(tiny / "source" / "best.pt"), weights(tmp_path / "run" / "last.pt")
    assert before.keys() == after.keys()
    # resnet18-slim's blocks: the stem, then stages.0-7; --blocks 1 trains stages.7 (its BN statistics stay).
    moves = ("lstm.", "classifier.") + (("encoder.stages.7.",) if train == "last-blocks" else ())
    for name, tensor in before.items():
        statistics = name.endswith(("running_mean", "running_var", "num_batches_tracked"))
        assert torch.equal(tensor, after[name]) != (name.startswith(moves) and not statistics), name
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["source"]["sha256"] == sha256_of(tiny / "source" / "best.pt")
    assert metrics["checkpoint"]["sha256"] == sha256_of(tmp_path / "run" / "best.pt")
    assert metrics["history"][0]["step"] == 0 and metrics["history"][-1]["step"] <= 4
    assert metrics["commands"][0].startswith("shelfwatch train action") and "train adapt" in metrics["commands"][1]
    # best.pt is the held-out winner: the source's weights at step 0, else those of a later scoring.
    best = weights(tmp_path / "run" / "best.pt")
    if metrics["best_step"] == 0:
        assert all(torch.equal(best[k], before[k]) for k in before)
    # videos/: the clips it trained on and the replay videos (links), for export's --calibration.
    linked = sorted(p.name for p in (tmp_path / "run" / "videos").glob("*.mp4"))
    assert len(linked) == 2 + 3 and sum(n.startswith("synth_store-b") for n in linked) == 2


def test_the_whole_encoder_tunes_on_the_store_then_the_head_on_its_features(tiny, shelfwatch, tmp_path):
    """--train encoder: a linear probe and a few steps of the encoder on single frames (verified and replayed, its
    batch-norm statistics kept), every clip, replay and guard video encoded again, then the head. The guard
    is scored on the tuned encoder's features; the source is still the first candidate."""
    for i in range(2):
        write_video(VideoSpec(seed=5, index=i, frames=120, width=160, height=120), tmp_path / "guard")
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tiny / "stamps", "--replay",
                        tiny / "train", "--guard", tmp_path / "guard", "--out", tmp_path / "run", "--train", "encoder",
                        *ADAPT, "--encoder-steps", 3, "--frame-batch", 8, "--patience", 10)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tuning the encoder: a linear probe, then 3 steps of 8 frames" in result.stdout
    before, after = weights(tiny / "source" / "best.pt"), weights(tmp_path / "run" / "last.pt")
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert {n for n in before if n.startswith(("lstm.", "classifier."))} <= changed
    encoder = {n for n in before if n.startswith("encoder.")}
    statistics = {n for n in encoder if n.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert statistics and encoder - statistics <= changed  # every weight of the encoder moves
    assert not statistics & changed  # its batch-norm statistics stay as trained
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    source, tuned = history[0], history[1]
    assert source["step"] == tuned["step"] == 0 and tuned["stage"] == "encoder"
    # The guard videos were encoded again: the source's LSTM on the tuned features scores them afresh.
    assert "guard_frame_accuracy" in tuned["val"]
    assert [h["step"] for h in history[2:]] == [2, 4]


@pytest.mark.long  # about 20 s: two adaptations and an export
def test_timestamp_labels_adapt_and_the_run_exports_with_its_checkpoint_digest(tiny, shelfwatch, tmp_path):
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tiny / "stamps", "--out",
                        tmp_path / "run", *ADAPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "timestamp labels: 2 training, 1 held-out clips" in result.stdout
    assert "no replay (--replay)" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["timestamp_labels"]["train"]) == 2

    exported = shelfwatch("export", tmp_path / "bundle", "--action", tmp_path / "run", "--calibration",
                          tmp_path / "run" / "videos", "--calibration-frames", 16, "--precision", "fp32")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    manifest = load_bundle(tmp_path / "bundle")
    digest = sha256_of(tmp_path / "run" / "best.pt")
    assert manifest.provenance.checkpoint_sha256 == digest == metrics["checkpoint"]["sha256"]
    assert sha256_of(tmp_path / "bundle" / CHECKPOINT) == digest and CHECKPOINT not in manifest.files
    commands = manifest.provenance.commands
    assert [c.split()[1] for c in commands] == ["train", "train", "export"] and "adapt" in commands[1]
    # The familiarity guard is fitted on the run's videos: the store's clips it trained on.
    assert manifest.familiarity is not None and "videos" in manifest.familiarity.fitted_on.source

    # A bundle leads back to its weights: adapt again from the bundle itself.
    again = shelfwatch("train", "adapt", "--from", tmp_path / "bundle", "--data", tiny / "store_b", "--out",
                       tmp_path / "again", "--steps", 1, "--eval-every", 1, "--clip-len", 16,
                       "--train", "head")  # fmt: skip
    assert again.returncode == 0, again.stderr
    chained = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert chained["source"]["sha256"] == digest and chained["commands"][:3] == commands


def test_no_step_that_forgets_the_original_domain_is_kept(tiny, shelfwatch, tmp_path):
    """--guard: held-out videos of the first store, scored at every scoring; with --max-forgetting 0 a step that loses
    any frame accuracy there is never best.pt, however well it does on the store's held-out clips."""
    for i in range(2):
        write_video(VideoSpec(seed=5, index=i, frames=120, width=160, height=120), tmp_path / "guard")
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tiny / "store_b", "--guard",
                        tmp_path / "guard", "--max-forgetting", 0, "--out", tmp_path / "run", "--lr", 0.05,
                        *ADAPT, "--train", "head")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 guard videos from" in result.stdout and "guard videos (2, " in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    source = metrics["history"][0]["val"]["guard_frame_accuracy"]
    assert metrics["guard"]["floor"] == source
    assert metrics["val"]["adapted"]["guard_frame_accuracy"] >= source
    losing = [s["step"] for s in metrics["history"][1:] if s["val"]["guard_frame_accuracy"] < source]
    assert losing, "the premise: at this learning rate some step loses on the guard videos"
    assert metrics["best_step"] not in losing
    # Every scoring records the 95 % bound of its change: the pooled change less a margin for the videos' spread.
    for s in metrics["history"][1:]:
        change = (s["val"]["guard_frame_accuracy"] - source) * 100
        assert s["val"]["guard_bound"] <= change + 1e-9
    # Guard videos are held out: one that is also replayed (or verified) is refused.
    with pytest.raises(ShelfWatchError, match="--guard videos must be held out"):
        adapt(
            tiny / "source",
            tiny / "store_b",
            tmp_path / "again",
            AdaptOptions(),
            tiny / "train",
            guard_dir=tiny / "train",
        )


def test_the_forgetting_bound_allows_for_the_guard_videos_spread():
    # Two videos of equal length, each losing 1 point: no spread, the bound is the change.
    assert forgetting_bound([0.9, 0.8], [0.89, 0.79], [100, 100]) == pytest.approx(-1.0)
    # The same pooled change of -1 from +1 and -3: the spread widens the bound (SE = 2 points here).
    assert forgetting_bound([0.9, 0.8], [0.91, 0.77], [100, 100]) == pytest.approx(-1.0 - 1.645 * 2.0)
    # Frames weigh: a long video's change counts for more; one video is its own change.
    assert forgetting_bound([0.9, 0.8], [0.9, 0.76], [300, 100]) < -1.0
    assert forgetting_bound([0.9], [0.88], [50]) == pytest.approx(-2.0)


@pytest.mark.parametrize("train", ["head", "encoder"])
def test_one_clip_is_split_in_time(tiny, shelfwatch, tmp_path, train):
    (tmp_path / "one").mkdir()
    for path in sorted((tiny / "store_b").glob("synth_store-b_s11_0000.*")):
        shutil.copy(path, tmp_path / "one")
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tmp_path / "one", "--out",
                        tmp_path / "run", "--train", train, *ADAPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    split = json.loads((tmp_path / "run" / "metrics.json").read_text())["split"]
    assert split == {"train": ["synth_store-b_s11_0000 frames 0-210"], "val": ["synth_store-b_s11_0000 frames 210-300"]}


def exported(folder: Path, source: Path, splits: dict[str, str]) -> None:
    """The clips of `source` as `shelfwatch dataset export` writes a folder: the files and a manifest.json with
    each clip's split (`splits`: name -> train or val)."""
    from datetime import date, datetime, timezone

    from training.label_files import DATASET_MANIFEST, DatasetClip, DatasetManifest

    folder.mkdir()
    clips = []
    for n, (name, part) in enumerate(sorted(splits.items())):
        files = [p.name for p in sorted(source.glob(f"{name}.*"))]
        for f in files:
            shutil.copy(source / f, folder / f)
        now = datetime.now(timezone.utc)
        clips.append(DatasetClip(name=name, split=part, labels="segments", files=files, clip=f"a{n}", store="store-b",
                                 day=date(2026, 12, 1 + n), source=f"{name}.mp4", video_sha256="0" * 64, version=2,
                                 saved_by="t1", saved_at=now, verified_by="t1", verified_at=now,
                                 prediction="d25da62392d694b3"))  # fmt: skip
    manifest = DatasetManifest(store="store-b", exported_at=datetime.now(timezone.utc), split_rule="by day",
                               clips=clips)  # fmt: skip
    (folder / DATASET_MANIFEST).write_text(manifest.model_dump_json())


def test_a_folder_from_dataset_export_is_split_as_its_manifest_says(tiny, shelfwatch, tmp_path):
    names = [f"synth_store-b_s11_000{i}" for i in range(3)]
    exported(tmp_path / "store", tiny / "store_b", {names[0]: "train", names[1]: "val", names[2]: "val"})
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tmp_path / "store", "--out",
                        tmp_path / "run", *ADAPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    split = json.loads((tmp_path / "run" / "metrics.json").read_text())["split"]
    assert split == {"train": [names[0]], "val": names[1:]}  # --val-fraction 0.3 would hold out one clip, not two
    exported(tmp_path / "all_train", tiny / "store_b", dict.fromkeys(names, "train"))
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tmp_path / "all_train", "--out",
                        tmp_path / "run2", *ADAPT)  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "puts 3 clip(s) in train and 0 in val" in result.stderr
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tmp_path / "all_train", "--out",
                        tmp_path / "run3", "--split", "random", *ADAPT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json.loads((tmp_path / "run3" / "metrics.json").read_text())["split"]["val"]) == 1


def test_bad_input_is_one_line(tiny, shelfwatch, tmp_path):
    older = tmp_path / "older"  # a bundle exported before export kept its checkpoint
    shutil.copytree(REPO / "models" / "demo", older, ignore=shutil.ignore_patterns(CHECKPOINT))
    result = shelfwatch("train", "adapt", "--from", older, "--data", tiny / "store_b", "--out", tmp_path / "run")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"older: this bundle has no checkpoint.pt beside its manifest (exported before export kept it); " \
           f"`shelfwatch bundle recover {older} --out RUN` makes one" in result.stderr  # fmt: skip
    result = shelfwatch("train", "adapt", "--from", tiny / "source", "--data", tiny / "store_b", "--out",
                        tmp_path / "run", "--replay-share", 1)  # fmt: skip
    assert result.returncode == 2 and result.stderr.strip() == "shelfwatch: error: --replay-share must be less than 1"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source, data, message", [
    ("nothing", "store_b", "no such training run, model bundle or checkpoint"),
    ("source", "nothing", "no such data folder"),
    ("source", "empty", "no labelled videos"),
    ("source/frame.pt", "store_b", "a frame head; train adapt adapts the streaming CNN-LSTM"),
    ("source", "store_b/synth_store-b_s11_0000.mp4", "no such data folder"),
])  # fmt: skip
def test_what_it_refuses(tiny, tmp_path, source, data, message):
    (tmp_path / "empty").mkdir()
    where = {name: (tiny if (tiny / name.split("/")[0]).exists() else tmp_path) / name for name in (source, data)}
    with pytest.raises(ShelfWatchError, match=message):
        adapt(where[source], where[data], tmp_path / "run", AdaptOptions())
    assert not (tmp_path / "run").exists()


def test_a_bundle_whose_checkpoint_is_not_its_own_is_refused(tiny, tmp_path):
    """A checkpoint.pt that is not the one the manifest's sha256 names (replaced, or put into an older bundle)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "models" / "demo", bundle)
    shutil.copy(tiny / "source" / "best.pt", bundle / CHECKPOINT)
    with pytest.raises(ShelfWatchError, match="not the checkpoint this bundle was exported from"):
        adapt(bundle, tiny / "store_b", tmp_path / "run", AdaptOptions())


@pytest.mark.parametrize("config", [ModelConfig(width=4), ModelConfig(encoder="mobilenet_v3_small")])
def test_the_encoder_splits_into_a_frozen_trunk_and_a_trained_tail(config):
    encoder = ActionModel(config).encoder.eval()
    x = torch.randn(2, config.input.channels, config.input.height, config.input.width)
    for blocks in (0, 1, 2):
        trunk, tail = encoder_parts(encoder, blocks)
        with torch.no_grad():
            assert torch.allclose(tail(trunk(x)), encoder(x), atol=1e-6)
        assert sum(p.numel() for p in tail.parameters()) > 0 or blocks == 0


def test_timestamps_from_full_labels_mark_the_middle_of_every_run(tiny):
    classes = [0, 0, 0, 1, 1, 3, 3, 3, 3, 0]
    assert [(t.frame, t.label) for t in stamp_runs(classes)] == [(1, 0), (3, 1), (6, 3), (9, 0)]
    name = "synth_store-b_s11_0000"
    full = read_labels(tiny / "store_b" / f"{name}.labels.json")
    stamped = read_labels(tiny / "stamps" / f"{name}.labels.json")
    assert stamped.partial and not full.partial
    assert all(full.frame_classes[t.frame] == t.label for t in stamped.timestamps)
    assert (
        np.count_nonzero(stamped.frame_classes >= 0) == len(stamped.timestamps) == len(stamp_runs(full.frame_classes))
    )
