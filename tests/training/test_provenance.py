"""The commands a run records, which `export` copies into a bundle's manifest: a run that adopted another run's encoder
(`--encoder-from`) leads back to that run's command; an adapted run records its whole chain."""

import json

from training.provenance import run_commands


def write_metrics(folder, **recorded):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(recorded))


def test_a_run_on_an_adopted_encoder_names_the_run_that_trained_it(tmp_path):
    stage1 = "shelfwatch train action data/train --out runs/action_stage1 --encoder-steps 4000"
    stage2 = "shelfwatch train action data/train --out runs/action --encoder-from runs/action_stage1/frame.pt"
    write_metrics(tmp_path / "stage1", command=stage1, options={"encoder_from": None})
    write_metrics(tmp_path / "stage2", command=stage2, options={"encoder_from": str(tmp_path / "stage1" / "frame.pt")})
    assert run_commands(tmp_path / "stage2") == [stage1, stage2]
    assert run_commands(tmp_path / "stage1") == [stage1]


def test_a_recorded_chain_is_taken_as_it_is_and_nothing_recorded_is_nothing(tmp_path):
    chain = ["shelfwatch train action data/train --out runs/action", "shelfwatch train adapt --from runs/action"]
    write_metrics(tmp_path / "adapted", command=chain[-1], commands=chain)
    assert run_commands(tmp_path / "adapted") == chain
    (tmp_path / "bare").mkdir()
    assert run_commands(tmp_path / "bare") == []
    (tmp_path / "bare" / "metrics.json").write_text("{not json")
    assert run_commands(tmp_path / "bare") == []


def test_a_bundles_checkpoint_exported_again_keeps_the_chain_its_manifest_records(tmp_path):
    chain = [
        "shelfwatch train action data/train --out runs/action",
        "shelfwatch export models/demo --action runs/action",
    ]
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps({"provenance": {"commands": chain}}))
    assert run_commands(tmp_path / "bundle") == chain
    (tmp_path / "bundle" / "manifest.json").write_text(json.dumps({"provenance": "none"}))
    assert run_commands(tmp_path / "bundle") == []  # a manifest that records no chain records nothing
