"""Fitting the familiarity guard (`export.familiarity`): the export fits it from the bundle's own encoder, and
`shelfwatch bundle familiarity` adds it to an existing bundle and reseals it; the statistics are sound."""

import json
import shutil

import numpy as np
import pytest

from edge.bundle import CHECKPOINT, MANIFEST, load_bundle, seal, sha256_of
from edge.familiarity import FamiliarityStats
from export.familiarity import fit_stats, ledoit_wolf
from tests.export.conftest import run


def test_the_shrunk_covariance_and_the_distances_are_those_of_the_gaussian_that_made_the_data():
    rng = np.random.default_rng(0)
    p = 16
    scale = np.linspace(0.2, 3.0, p)
    means = np.array([np.zeros(p), np.full(p, 5.0)])
    labels = rng.integers(0, 2, 20_000)
    x = means[labels] + rng.standard_normal((20_000, p)) * scale
    cov, a = ledoit_wolf(x - means[labels])
    assert 0 <= a < 0.01  # plenty of data: hardly any shrinkage
    assert np.allclose(np.diag(cov), scale**2, rtol=0.05, atol=0.01)  # small variances pulled up a little
    m, whiten, _ = fit_stats(x, labels)
    d = FamiliarityStats(m, whiten).score(x)
    assert np.mean(d**2) == pytest.approx(p, rel=0.03)  # a squared Mahalanobis distance is chi-squared with p dof
    far = FamiliarityStats(m, whiten).score(np.full((1, p), 2.5) + 10 * scale)
    assert far[0] > np.quantile(d, 0.999)
    few = rng.standard_normal((20, p))  # fewer frames than twice the dimensions: shrinkage keeps it invertible
    assert ledoit_wolf(few - few.mean(0))[1] > 0.1


def test_the_export_fits_a_guard_from_the_bundles_own_encoder(int8_bundle):
    manifest = load_bundle(int8_bundle)
    f = manifest.familiarity
    assert f is not None and f.file in manifest.files and (int8_bundle / f.file).is_file()
    assert (f.fitted_on.videos, f.calibrated_on.videos) == (2, 1)  # --calibration's 3 videos split by video
    assert f.threshold > 0 and f.window_s == 1.0 and f.quantile == 0.99
    assert f.measured["calibration_flagged"] <= 0.02


def test_bundle_familiarity_adds_a_guard_to_a_bundle_and_reseals_it(int8_bundle, runs, tmp_path, shelfwatch):
    bundle = tmp_path / "bundle"
    shutil.copytree(int8_bundle, bundle)
    data = json.loads((bundle / MANIFEST).read_text())
    del data["files"][data.pop("familiarity")["file"]]
    (bundle / "familiarity.npz").unlink()
    data["drift"] = {"threshold": 3.5}  # a newer export's field: resealing keeps it as it is (export.reseal)
    # Graphs taken from a bundle whose guard was fitted apart, then this bundle's own guard fitted once already.
    chain = ["shelfwatch bundle familiarity A --fit f", "shelfwatch export B --action-from A", "shelfwatch bundle "
             "familiarity B --fit g"]  # fmt: skip
    data["provenance"]["commands"] = chain
    (bundle / MANIFEST).write_text(json.dumps(seal(data)))  # a bundle exported before the guard existed
    before = load_bundle(bundle).bundle_id
    run("bundle", "keygen", tmp_path / "k")
    run("bundle", "sign", bundle, "--key", tmp_path / "k.key")
    done = run("bundle", "familiarity", bundle, "--fit", runs["train"], "--calibrate", runs["test"])
    after = load_bundle(bundle)
    assert after.familiarity is not None and after.bundle_id != before and after.bundle_id in done.stdout
    assert (after.familiarity.fitted_on.videos, after.familiarity.calibrated_on.videos) == (3, 2)
    # The refit replaces this bundle's earlier fit; the fit of the bundle it took graphs from stays in its history.
    assert after.provenance.commands[:2] == chain[:2] and len(after.provenance.commands) == 3
    assert (
        after.provenance.commands[-1].startswith("shelfwatch bundle familiarity")
        and "--fit g" not in after.provenance.commands[-1]
    )
    assert "its signature no longer held" in done.stdout and not (bundle / "signature.json").exists()
    assert json.loads((bundle / MANIFEST).read_text())["drift"] == {"threshold": 3.5}
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")]  # no staging copy left beside it
    assert sha256_of(bundle / CHECKPOINT) == after.provenance.checkpoint_sha256  # the weights stay with the bundle
    # The guard runs on the box: the agent's events say whether they came from familiar footage.
    video = sorted(runs["test"].glob("*.mp4"))[0]
    jsonl = tmp_path / "events.jsonl"
    run("edge", "run", "--bundle", bundle, "--source", video, "--events-jsonl", jsonl, "--outbox", tmp_path / "o.db")
    statuses = [e for e in map(json.loads, jsonl.read_text().splitlines()) if e["kind"] == "status"]
    assert "unfamiliar_share" in statuses[-1]


def test_bundle_familiarity_refuses_bad_input_in_one_line(int8_bundle, runs, tmp_path, shelfwatch):
    for args, message in [
        (["--fit", tmp_path / "nowhere"], "nowhere: no such folder of videos"),
        (["--fit", runs["train"], "--calibrate", runs["train"]], "calibration videos must not be fit videos"),
        (["--fit", runs["train"], "--quantile", "1.5"], "--quantile 1.5: give a quantile in [0.5, 1)"),
    ]:
        result = shelfwatch("bundle", "familiarity", int8_bundle, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert load_bundle(int8_bundle).familiarity is not None  # nothing changed
