"""The agent's bundle check: the manifest's own content is covered by its `bundle_id`, so a manifest edited in
place after export is refused, as is one that is not UTF-8, has a key twice or names a file outside the bundle."""

import json
import shutil

import pytest

from edge.bundle import MANIFEST, bundle_id, load_bundle, seal
from edge.errors import ShelfWatchError
from tests.edge.test_agent_delivery import DEMO_BUNDLE


def edited(tmp_path, change) -> str:
    """The demo bundle with its manifest changed by `change(data)` (and not resealed); the agent's answer."""
    bundle = tmp_path / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(DEMO_BUNDLE, bundle)
    data = json.loads((bundle / MANIFEST).read_text())
    change(data)
    (bundle / MANIFEST).write_text(json.dumps(data, indent=2))
    with pytest.raises(ShelfWatchError) as error:
        load_bundle(bundle)
    assert "\n" not in str(error.value)
    return str(error.value)


def swap_catalog(data: dict) -> None:
    catalog = data["detector"]["catalog"]
    catalog[0]["sku"], catalog[1]["sku"] = catalog[1]["sku"], catalog[0]["sku"]


def test_the_committed_bundle_id_covers_its_manifest():
    data = json.loads((DEMO_BUNDLE / MANIFEST).read_text())
    assert bundle_id(data) == data["bundle_id"] == load_bundle(DEMO_BUNDLE).bundle_id


@pytest.mark.parametrize(
    "change",
    [
        swap_catalog,
        lambda d: d["action"].update(delay=0),
        lambda d: d["action"]["input"].update(width=320),
        lambda d: d["detector"].update(imgsz=d["detector"]["imgsz"] * 2),
        lambda d: d["metrics"]["action_frame_accuracy"].update(shipped=1.0),
        lambda d: d["files"]["action_step.onnx"].update(bytes=1),
    ],
)
def test_a_manifest_edited_in_place_is_refused(tmp_path, change):
    assert "bundle_id does not match the manifest's content (edited after export?)" in edited(tmp_path, change)


def test_a_resealed_edit_is_taken_as_a_new_bundle(tmp_path):
    """The id detects edits, it does not prove who made them: resealed, the edit is a different bundle."""
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    data = json.loads((bundle / MANIFEST).read_text())
    swap_catalog(data)
    (bundle / MANIFEST).write_text(json.dumps(seal(data)))
    assert load_bundle(bundle).bundle_id not in (data["bundle_id"], load_bundle(DEMO_BUNDLE).bundle_id)


def test_a_manifest_that_is_not_utf8_or_has_a_key_twice_or_names_a_path(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    text = (DEMO_BUNDLE / MANIFEST).read_bytes()
    (bundle / MANIFEST).write_bytes(text.replace(b'"target": "cpu"', b'"target": "c\xffu"'))
    with pytest.raises(ShelfWatchError, match=r"manifest.json: not UTF-8 \(byte 0xff at offset \d+\)$"):
        load_bundle(bundle)
    (bundle / MANIFEST).write_bytes(text.replace(b'"target": "cpu"', b'"target": "cpu", "target": "tensorrt"'))
    with pytest.raises(ShelfWatchError, match="not a manifest \\(the key 'target' appears twice\\)"):
        load_bundle(bundle)
    for name in ("../detector.onnx", "/etc/passwd", "sub/x.onnx", ".", MANIFEST):
        message = edited(tmp_path, lambda d, n=name: d["files"].update({n: d["files"]["detector.onnx"]}))
        assert "manifest.json: files." in message and "is not a plain file name" in message, message
