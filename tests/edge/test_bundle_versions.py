"""Which agent runs which bundle (README, "Versions"): fields added within a schema version are ignored, and named;
a newer schema version or a newer agent required is refused with one line naming both versions; a bundle from
before runs as it did, and what the export writes today carries no field an older agent would refuse."""

import json
import re
import shutil
from pathlib import Path

import pytest

from edge import __version__
from edge.bundle import MANIFEST, SCHEMA_VERSION, Manifest, load_bundle, read_bundle, seal, sealed, version_key
from edge.errors import ShelfWatchError
from tests.edge.test_agent_delivery import DEMO_BUNDLE

ROOT = Path(__file__).resolve().parents[2]


def rewritten(tmp_path: Path, change, reseal: bool = True) -> Path:
    """The demo bundle with its manifest changed by `change(data)`, resealed as an export would write it."""
    bundle = tmp_path / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(DEMO_BUNDLE, bundle)
    data = json.loads((bundle / MANIFEST).read_text())
    change(data)
    (bundle / MANIFEST).write_text(json.dumps(seal(data) if reseal else data, indent=2))
    return bundle


def from_a_newer_export(data: dict) -> None:
    """What coming issues may add within schema version 1: a health gate, a training-data digest, a reference clip (its
    file is listed under `files` like any other). (Familiarity statistics and the checkpoint digest were such fields;
    this agent knows them.)"""
    data["health_gate"] = {"features": 128, "mean": [0.0] * 4, "threshold": 3.5}
    data["provenance"]["dataset_sha256"] = "ab" * 32
    data["action"]["reference"] = {"clip": "reference.mp4", "frames": 90, "max_abs": 1e-3}


def test_a_bundle_from_before_runs_as_it_did():
    """The committed demo bundle was exported before these rules: no `requires_agent`, no signature."""
    bundle = read_bundle(DEMO_BUNDLE)
    assert bundle.manifest.schema_version == SCHEMA_VERSION == 1
    assert bundle.manifest.requires_agent is None and bundle.ignored == () and bundle.signed_by is None


def test_what_the_export_writes_today_carries_no_field_an_older_agent_would_refuse():
    """Agents from before these rules read the manifest strictly: a new key, even `"requires_agent": null`, would
    stop them. A manifest that uses no added field is written exactly as before (the demo bundle uses one:
    `familiarity`, which agents since these rules ignore and name)."""
    written = json.loads((DEMO_BUNDLE / MANIFEST).read_text())
    manifest = load_bundle(DEMO_BUNDLE)
    assert json.loads(manifest.model_dump_json()) == written
    assert sealed(manifest).bundle_id == written["bundle_id"]
    without = json.loads(manifest.model_copy(update={"familiarity": None}).model_dump_json())
    assert "familiarity" not in without and "requires_agent" not in without
    needs = json.loads(sealed(manifest.model_copy(update={"requires_agent": "0.3.0"})).model_dump_json())
    assert needs["requires_agent"] == "0.3.0" and needs["bundle_id"] != written["bundle_id"]


def test_fields_added_within_the_version_are_ignored_and_named(tmp_path):
    bundle = read_bundle(rewritten(tmp_path, from_a_newer_export))
    assert bundle.ignored == ("action.reference", "provenance.dataset_sha256", "health_gate")
    assert bundle.manifest.action.delay == load_bundle(DEMO_BUNDLE).action.delay  # the rest is read as ever


def test_the_bundle_id_covers_the_fields_an_agent_ignores(tmp_path):
    bundle = rewritten(tmp_path, from_a_newer_export)
    data = json.loads((bundle / MANIFEST).read_text())
    data["health_gate"]["threshold"] = 99.0
    (bundle / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(ShelfWatchError, match="bundle_id does not match the manifest's content"):
        load_bundle(bundle)


def test_known_fields_are_as_strict_as_ever(tmp_path):
    bundle = rewritten(tmp_path, lambda d: (from_a_newer_export(d), d["action"].update(delay="six")))
    with pytest.raises(ShelfWatchError, match=r"action.delay: Input should be a valid integer"):
        load_bundle(bundle)


def test_a_bundle_from_the_future_is_refused_naming_both_versions(tmp_path):
    def future(data: dict) -> None:
        from_a_newer_export(data)
        data["schema_version"] = 2
        data["action"]["input"] = {"size": [160, 120], "layout": "nhwc"}  # what v2 might change

    with pytest.raises(ShelfWatchError) as error:
        load_bundle(rewritten(tmp_path, future))
    assert str(error.value).endswith(
        f"manifest.json: the bundle's schema_version is 2, newer than this agent's 1 (shelfwatch {__version__}): "
        "upgrade the agent to run it"
    ), error.value


def test_a_bundle_that_needs_a_newer_agent_is_refused_naming_both_versions(tmp_path):
    with pytest.raises(ShelfWatchError) as error:
        load_bundle(rewritten(tmp_path, lambda d: d.update(requires_agent="99.1.0")))
    assert str(error.value).endswith(
        f"manifest.json: the bundle requires agent 99.1.0 or newer; this agent is shelfwatch {__version__}: upgrade "
        "the agent to run it"
    ), error.value
    assert load_bundle(rewritten(tmp_path, lambda d: d.update(requires_agent=__version__))).requires_agent
    with pytest.raises(ShelfWatchError, match="requires_agent: String should match pattern"):
        load_bundle(rewritten(tmp_path, lambda d: d.update(requires_agent="latest")))


def test_a_schema_version_that_is_not_one_is_refused(tmp_path):
    for version in (0, "2", 1.5):
        with pytest.raises(ShelfWatchError, match="schema_version: Input should be 1"):
            load_bundle(rewritten(tmp_path, lambda d, v=version: d.update(schema_version=v)))


def test_versions_compare_by_number():
    assert version_key("0.10.0") > version_key("0.9.9") and version_key("1.2.3.dev4") == (1, 2, 3)
    with pytest.raises(ValueError, match="not a version"):
        version_key("v1")
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_the_agents_version_is_the_packages():
    declared = re.search(r'(?m)^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text())
    assert declared is not None and declared[1] == __version__
    import shelfwatch

    assert shelfwatch.__version__ == __version__


def test_the_published_schema_describes_requires_agent():
    props = Manifest.model_json_schema()["properties"]
    assert "requires_agent" in props and "Optional (added in v1)" in props["requires_agent"]["description"]
