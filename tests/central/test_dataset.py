"""`shelfwatch dataset export`: a store's verified clips become a folder `train action` reads, split by clip and day,
with a manifest of what came from where; and a tiny training run on it, timestamp labels included."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central import auth
from central.api import create_app, principal_dependency
from central.dataset import split_clips
from central.db import connect
from central.review import Clip, Reviews
from central.service import Central
from central.web.app import mount_web
from central.web.config import WebConfig
from central.web.results import Analysis, TimelineSegment
from central.web.worker import RESULT, JobSpec
from tests.central.web.conftest import REPO
from tests.training.test_train_action import TINY
from training.label_files import read_dataset_manifest, read_labels
from training.labels import read_label_file
from training.merl import read_merl_labels
from training.synth.generate import VideoSpec, write_video

DAYS = ("2026-03-02", "2026-03-02", "2026-03-09", "2026-03-09")


def analysed(work: Path, index: int, day: str) -> tuple[str, dict]:
    """A finished analysis of a synthetic clip (what the worker leaves), analysed on `day`; the result is the clip's
    true segments, so that the reviewer's work here is to verify or to mark timestamps."""
    clip_id = f"{index:016x}"
    folder = work / clip_id
    folder.mkdir(parents=True)
    labels_path = write_video(VideoSpec(seed=3, index=index, frames=120, width=160, height=120), folder)[0]
    truth = json.loads(labels_path.read_text())
    video = labels_path.with_name(labels_path.name.replace(".labels.json", ".mp4"))
    upload = video.rename(folder / "upload.mp4")
    labels_path.unlink()
    for extra in folder.glob("*_label.mat"):
        extra.unlink()
    spec = JobSpec(video=upload, name=f"aisle {index}.mp4", bundle=REPO / "models" / "demo", fps=30.0, frames=120,
                   width=160, height=120, store="s1")  # fmt: skip
    (folder / "job.json").write_text(spec.model_dump_json())
    segments = [TimelineSegment(action=s["label"], start=s["start"], end=s["end"], shopper=s.get("shopper"),
                                confidence=0.9) for s in truth["segments"]]  # fmt: skip
    analysis = Analysis(video=spec.name, fps=30.0, frames=120, width=160, height=120, seconds=4.0, took_s=1.0,
                        agent_fps=120.0, classes=[], segments=segments, changes=[], baskets={}, shoppers=[],
                        per_class=[], events=len(segments))  # fmt: skip
    (folder / RESULT).write_text(analysis.model_dump_json())
    (folder / "annotated.mp4").write_bytes(b"annotated")
    when = datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp()
    os.utime(folder / "job.json", (when, when))  # the analysis's time: its day
    return clip_id, truth


def timestamps_of(truth: dict) -> list[dict]:
    """One frame in the middle of every run of frames of one class (no action included): what a reviewer marks."""
    classes = truth["frame_classes"]
    stamps, start = [], 0
    for i in range(1, len(classes) + 1):
        if i == len(classes) or classes[i] != classes[start]:
            stamps.append({"frame": (start + i - 1) // 2, "label": truth["classes"][classes[start]]})
            start = i
    return stamps


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only: the review store's queries run on both backends in tests/central/web/test_review.py."""
    return f"sqlite:///{tmp_path / 'central.db'}"


@pytest.fixture
def verified(db_url, tmp_path):
    """Four verified clips of store s1 on two days (two of them labelled by timestamps) and one more still in
    review."""
    central = Central(connect(db_url))
    work, data = tmp_path / "work", tmp_path / "data"
    truths = {}
    for i, day in enumerate(DAYS):
        clip_id, truths[clip_id] = analysed(work, i, day)
    in_review, _ = analysed(work, 4, DAYS[0])
    app = create_app(central)
    config = WebConfig(bundles_dir=REPO / "models", default_bundle=REPO / "models" / "demo", work_dir=work)
    jobs = mount_web(app, config, central=central, auth_dependency=principal_dependency(central),
                     reviews=Reviews(central.engine, data))  # fmt: skip
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {auth.create(central.engine, 's1', 'staff')[1]}"
    for n, (clip_id, truth) in enumerate(truths.items()):
        labels = client.get(f"/web/api/analyses/{clip_id}/labels").json()
        if n in (1, 2):
            labels = {**labels, "segments": [], "timestamps": timestamps_of(truth)}
        labels.pop("frame_classes")
        assert client.put(f"/web/api/analyses/{clip_id}/labels", json=labels).status_code == 200
        assert client.post(f"/web/api/analyses/{clip_id}/verify").json()["state"] == "verified"
    labels = client.get(f"/web/api/analyses/{in_review}/labels").json()
    assert client.put(f"/web/api/analyses/{in_review}/labels", json=labels).status_code == 200
    jobs.close()
    yield data, truths
    central.engine.dispose()


def test_export_writes_the_verified_clips_in_the_layout_train_action_reads(verified, db_url, tmp_path, shelfwatch):
    data, truths = verified
    out = tmp_path / "dataset"
    done = shelfwatch("dataset", "export", "--db", db_url, "--data-dir", data, "--store", "s1", "--verified",
                      "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 4 verified clips of store s1" in done.stdout and "(2 with timestamp labels)" in done.stdout
    manifest = read_dataset_manifest(out)
    assert manifest is not None and manifest.store == "s1" and sorted(c.clip for c in manifest.clips) == sorted(truths)
    reviews = Reviews(connect(db_url), data)
    for entry in manifest.clips:
        clip = reviews.clip(entry.clip)
        assert (entry.day.isoformat(), entry.source, entry.version) == (clip.day, clip.name, clip.verified_version)
        assert entry.prediction == clip.bundle and entry.verified_by == clip.verified_by
        assert (out / f"{entry.name}.mp4").read_bytes() == clip.video.read_bytes()
        # The exported labels are the verified version, frame for frame.
        exported = read_labels(out / f"{entry.name}.labels.json", frame_count=120)
        verified_labels = reviews.labels(entry.clip, entry.version)
        assert exported.frame_classes.tolist() == verified_labels.frame_classes
        assert read_label_file(out / f"{entry.name}.labels.json").video == f"{entry.name}.mp4"
        if entry.labels == "segments":
            merl = read_merl_labels(out / f"{entry.name}_label.mat", frame_count=120)
            assert merl.frame_classes.tolist() == truths[entry.clip]["frame_classes"]
        else:
            assert not (out / f"{entry.name}_label.mat").exists() and exported.partial
    # By day: each day's clips in one split, both splits used, no clip in two.
    by_day = {}
    for entry in manifest.clips:
        by_day.setdefault(entry.day, set()).add(entry.split)
    assert all(len(s) == 1 for s in by_day.values()) and {s.pop() for s in by_day.values()} == {"train", "val"}
    reviews.engine.dispose()

    # Exported again, into the same folder: the earlier export is replaced, the same split comes out.
    again = shelfwatch("dataset", "export", "--db", db_url, "--data-dir", data, "--store", "s1", "--out", out)
    assert again.returncode == 0, again.stderr
    assert [(c.name, c.split) for c in read_dataset_manifest(out).clips] == [(c.name, c.split) for c in manifest.clips]

    # A tiny training run reads it with its split, timestamp labels included.
    run = shelfwatch("train", "action", out, "--split", "dataset", "--out", tmp_path / "run", "--encoder-steps", 3,
                     *TINY)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "timestamp labels:" in run.stdout and "the dataset's split (by day" in run.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    val = {c.name for c in manifest.clips if c.split == "val"}
    assert set(metrics["split"]["val"]) == val
    stamped = {c.name for c in manifest.clips if c.labels == "timestamps"}
    assert set(metrics["timestamp_labels"]["train"]) | set(metrics["timestamp_labels"]["val"]) == stamped


def test_bad_exports_are_one_line(verified, db_url, tmp_path, shelfwatch):
    data, _ = verified
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    cases = [
        (["--store", "s2", "--out", tmp_path / "x"], "store s2: no verified clip to export"),
        (["--store", "s1", "--out", tmp_path / "taken"], "a folder holding other files"),
        (["--store", "s1", "--out", tmp_path / "x", "--val-share", "1.5"], "--val-share must be between 0 and 1"),
    ]
    for args, message in cases:
        result = shelfwatch("dataset", "export", "--db", db_url, "--data-dir", data, *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, args
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine" and not (tmp_path / "x").exists()
    missing = shelfwatch("dataset", "export", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--data-dir", data,
                         "--store", "s1", "--out", tmp_path / "x")  # fmt: skip
    assert missing.returncode == 2 and "no such database file" in missing.stderr


def test_the_split_keeps_days_together_and_a_clip_where_it_was(tmp_path):
    def clip(clip_id: str, day: str) -> Clip:
        now = datetime.now(timezone.utc)
        return Clip(clip_id, "s1", "x.mp4", "verified", 30.0, 10, 64, 48, day, "b", {}, tmp_path, tmp_path / "v",
                    "", now, now, now, None, 1)  # fmt: skip

    days = [f"2026-03-{d:02d}" for d in range(1, 11)]
    clips = [clip(f"{i:016x}", days[i % 10]) for i in range(30)]
    splits, rule = split_clips(clips)
    assert rule.startswith("by day")
    for day in days:
        assert len({splits[c.clip_id] for c in clips if c.day == day}) == 1
    assert {"train", "val"} == set(splits.values())
    more, _ = split_clips([*clips, *(clip(f"{i:016x}", f"2026-04-{i - 29:02d}") for i in range(30, 40))])
    assert {k: more[k] for k in splits} == splits  # new days change nothing for the old ones
    one_day, rule = split_clips([clip(f"{i:016x}", days[0]) for i in range(3)])
    assert rule.startswith("by clip") and set(one_day.values()) == {"train", "val"}
