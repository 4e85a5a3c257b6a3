"""Saving zones into a store's box file (`firmware_config.zones`): only the zones change, every comment and the
rest of the file stay, the store still validates, and a layout it would refuse leaves the file as it was."""

from __future__ import annotations

import pytest

from edge.config import Slot, Zone
from edge.errors import ShelfWatchError
from firmware_config.store import load_store, validate_path
from firmware_config.zones import save_zones
from tests.firmware_config.test_store import copy_example

LEFT = ("boxes", "aisle1-left.yaml")
TWO = [Zone(name="shelf", polygon=[(0, 0), (320, 0), (320, 172), (0, 172)],
            slots=[Slot(sku="4000000000001", polygon=[(0, 0), (60, 0), (60, 80.5), (0, 80.5)])]),
       Zone(name="endcap", polygon=[(320, 0), (640, 0), (640, 172), (320, 172)])]  # fmt: skip


def test_saved_zones_keep_every_comment_and_validate(tmp_path):
    store = copy_example(tmp_path)
    box = store.joinpath(*LEFT)
    before = box.read_text()
    assert save_zones(box, TWO, (640, 480)) == []
    after = box.read_text()
    comments = [line[line.index("#") :] for line in before.splitlines() if "#" in line]
    assert comments and all(c in after for c in comments)  # the file's own comments, every one
    assert 'sku: "4000000000001", name: Cola can}' in after  # the catalogue as written (quotes kept)
    assert "  - name: shelf\n    polygon: [[0, 0], [320, 0], [320, 172], [0, 172]]\n" in after
    assert "frame_size: [640, 480]" in after
    assert validate_path(store) == (2, [])
    config = load_store(store)[0]["aisle1-left"]
    assert config.zones == TWO and config.camera.frame_size == (640, 480)
    assert config.camera.source == "rtsp://10.20.1.11:554/stream1"  # the rest as it was


def test_a_layout_the_store_refuses_leaves_the_file_as_it_was(tmp_path):
    store = copy_example(tmp_path)
    box = store.joinpath(*LEFT)
    before = box.read_text()
    slot = Slot(sku="999", polygon=[(0, 0), (10, 0), (10, 10)])  # no such SKU in the box's catalogue
    problems = save_zones(box, [TWO[0].model_copy(update={"slots": [slot]})], (640, 480))
    assert len(problems) == 1 and problems[0].file == box
    assert "zone 'shelf' slot 1: SKU '999' is not in the catalogue" in str(problems[0])
    assert box.read_text() == before
    assert not list(box.parent.glob(".*"))  # nothing left beside it
    small = save_zones(box, TWO, (300, 200))  # a picture the zones do not fit
    assert "corner 2 (320, 0) is outside the 300x200 picture" in str(small[0]) and box.read_text() == before


def test_a_file_outside_a_store_folder_or_with_aliases_is_refused_in_one_line(tmp_path):
    with pytest.raises(ShelfWatchError, match="not a box file of a store folder"):
        save_zones(tmp_path / "box.yaml", TWO, None)
    store = copy_example(tmp_path)
    box = store.joinpath(*LEFT)
    box.write_text(box.read_text() + "extra: &a [1]\nagain: *a\n")
    with pytest.raises(ShelfWatchError, match="aliases"):
        save_zones(box, TWO, None)
