"""The `shelfwatch` command as a user meets it: helpful --help, files written, one-line errors."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("command", [[], ["synth"], ["labels"], ["labels", "convert"], ["labels", "show"]])
def test_help_describes_every_command(command, shelfwatch):
    result = shelfwatch(*command, "--help")
    assert result.returncode == 0
    assert "usage: shelfwatch" in result.stdout and len(result.stdout.splitlines()) >= 4


def test_synth_writes_video_labels_and_yolo_then_labels_show_summarises(tmp_path, shelfwatch):
    result = shelfwatch("synth", str(tmp_path), "--videos", "2", "--frames", "45", "--size", "160x120", "--yolo")
    assert result.returncode == 0, result.stderr
    assert "median speed" in result.stdout
    stem = tmp_path / "synth_standard_s0_0001"
    for suffix in (".mp4", ".labels.json", "_label.mat"):
        assert (tmp_path / (stem.name + suffix)).stat().st_size > 0
    assert (tmp_path / "yolo" / "data.yaml").exists()
    shown = shelfwatch("labels", "show", f"{stem}.labels.json")
    assert shown.returncode == 0 and "45 frames at 30 fps" in shown.stdout and "inspect_shelf" in shown.stdout
    converted = shelfwatch("labels", "convert", f"{stem}_label.mat", str(tmp_path / "c.json"), "--frames", "45")
    assert converted.returncode == 0 and (tmp_path / "c.json").exists()


def test_labels_schema_is_json_schema(shelfwatch):
    import json

    schema = json.loads(shelfwatch("labels", "schema").stdout)
    assert schema["additionalProperties"] is False and "frame_classes" in schema["properties"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synth", "OUT", "--size", "big"], "--size must look like 640x480"),
        (["synth", "OUT", "--frames", "0"], "--frames must be at least 1"),
        (["synth", "OUT", "--size", "641x480"], "--size must be even"),
        (["labels", "show", "missing.labels.json"], "missing.labels.json: no such file"),
        (["labels", "convert", "broken_label.mat", "out.json"], "broken_label.mat: is not a readable MATLAB file"),
        (["labels", "convert", "broken_label.mat", "out.txt"], "must be a .json (ShelfWatch) or .mat (MERL"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, args, message, shelfwatch):
    (tmp_path / "broken_label.mat").write_bytes(b"\x00garbage")
    result = shelfwatch(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and "Traceback" not in result.stderr
