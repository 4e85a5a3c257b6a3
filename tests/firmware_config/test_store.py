"""Store configs: defaults in store.yaml, each box's values in boxes/<box>.yaml, validated together, with
every problem named by file, line and key."""

import json
import shutil
from pathlib import Path

from edge.config import BoxConfig
from firmware_config.store import load_store, validate_path

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_config" / "stores" / "example-store"


def copy_example(tmp_path: Path) -> Path:
    store = tmp_path / "example-store"
    shutil.copytree(EXAMPLE, store)
    text = (store / "store.yaml").read_text().replace("../../../models/demo", str(EXAMPLE.parents[2] / "models/demo"))
    (store / "store.yaml").write_text(text)
    return store


def test_the_example_store_is_complete_and_valid():
    boxes, problems = load_store(EXAMPLE)
    assert problems == []
    assert sorted(boxes) == ["aisle1-left", "aisle1-right"]
    left, right = boxes["aisle1-left"], boxes["aisle1-right"]
    assert left.store == right.store == "example-store"
    assert left.mqtt.host == "broker.example-store.lan" and left.outbox.max_events == 200000  # store defaults
    assert left.provider == "auto" and right.provider == "cpu"  # the box overrides
    assert [z.name for z in right.zones] == ["upper", "lower"] and len(left.catalog) == 10
    assert left.bundle.resolve() == (EXAMPLE.parents[2] / "models" / "demo").resolve()


def test_every_problem_is_reported_with_file_line_and_key(tmp_path, shelfwatch):
    store = copy_example(tmp_path)
    (store / "store.yaml").write_text((store / "store.yaml").read_text().replace("port: 8883", "port: 0"))
    box = store / "boxes" / "aisle1-left.yaml"
    box.write_text(box.read_text().replace("read_timeout_s: 5", "read_timeout_s: soon").replace(
        "zones:", "zone_list: 3\nzones:"))  # fmt: skip
    right = store / "boxes" / "aisle1-right.yaml"
    right.write_text(right.read_text().replace("box: aisle1-right", "box: aisle1-rigth"))
    result = shelfwatch("config", "validate", store)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{store / 'store.yaml'}:8: mqtt.port: Input should be greater than or equal to 1" in lines
    assert (
        f"{box}:5: camera.read_timeout_s: Input should be a valid number, unable to parse string as a number" in lines
    )
    assert f"{box}:6: zone_list: Extra inputs are not permitted" in lines
    assert any(line.startswith(f"{right}:2: box: is 'aisle1-rigth'") for line in lines)
    assert lines[-1] == f"{len(lines) - 1} problem(s)"


def test_one_box_file_is_validated_with_its_store_defaults(tmp_path, shelfwatch):
    store = copy_example(tmp_path)
    ok = shelfwatch("config", "validate", store / "boxes" / "aisle1-right.yaml")
    assert ok.returncode == 0 and "1 box config(s) valid" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("store: s\nbox: b\ncamera:\n  source: [unclosed\n")
    result = shelfwatch("config", "validate", broken)
    assert result.returncode == 1 and f"{broken}:5: (top level): not valid YAML" in result.stderr


def test_the_published_schema_is_the_models(shelfwatch):
    printed = json.loads(shelfwatch("config", "schema").stdout)
    assert printed == BoxConfig.model_json_schema()
    committed = json.loads((EXAMPLE.parents[1] / "box-config.schema.json").read_text())
    assert committed == printed, "regenerate: shelfwatch config schema > firmware_config/box-config.schema.json"


def test_validate_reports_a_missing_store_file(tmp_path):
    count, problems = validate_path(tmp_path)
    assert count == 0 and "not a store folder" in str(problems[0])


def test_hostile_files_get_one_line_from_every_command_that_reads_them(tmp_path, shelfwatch):
    """A byte that is not UTF-8, a 700-byte "billion laughs", a duplicate key: `config validate`, `provision`,
    `edge run --config` and `edge health` each answer with the file and the problem, at once, no traceback."""
    from tests.edge.test_config import BILLION_LAUGHS

    store = copy_example(tmp_path)
    box = store / "boxes" / "aisle1-left.yaml"
    good = box.read_bytes()
    cases = [
        (good.replace(b"box: aisle1-left", b"box: aisle1-l\xe9ft"), "not UTF-8 text (byte 0xe9 at offset"),
        (BILLION_LAUGHS.encode(), "aliases (*a) are not allowed in a config"),
        (good + b"box: aisle1-left\n", "duplicate key 'box' (first on line 2)"),
    ]
    assert len(BILLION_LAUGHS) < 700
    for content, message in cases:
        box.write_bytes(content)
        for command, status in ((("config", "validate", store), 1), (("config", "validate", box), 1),
                                (("provision", store, "--out", tmp_path / "out"), 2),
                                (("edge", "run", "--config", box, "--max-frames", 1), 2),
                                (("edge", "health", "--config", box), 2)):  # fmt: skip
            result = shelfwatch(*command, timeout=60)
            assert result.returncode == status, (command, result.stderr)
            assert message in result.stderr and "Traceback" not in result.stderr, (command, result.stderr)
            assert str(box) in result.stderr.splitlines()[0] or "provision" in command, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_5000_digit_integer_gets_one_line_from_every_command_that_reads_it(tmp_path, shelfwatch):
    """Issue 21.8: Python refuses to read an integer of more than 4300 digits; that once escaped as a 43-line
    traceback (exit 1) from `edge run` and `config validate`. Now it is the file's one line: exit 2, or 1 from
    `config validate`, whose exit 1 means "problems found"."""
    store = copy_example(tmp_path)
    box = store / "boxes" / "aisle1-left.yaml"
    box.write_text(box.read_text() + "heartbeat_s: " + "9" * 5000 + "\n")
    line = len(box.read_text().splitlines())
    for command, status in ((("config", "validate", store), 1), (("config", "validate", box), 1),
                            (("provision", store, "--out", tmp_path / "out"), 2),
                            (("edge", "run", "--config", box, "--max-frames", 1), 2)):  # fmt: skip
        result = shelfwatch(*command, timeout=60)
        assert result.returncode == status, (command, result.stderr)
        assert "Traceback" not in result.stderr and "an integer of 5000 characters is too long" in result.stderr
        if command[0] == "edge":
            assert result.stderr == f"shelfwatch: error: {box}: line {line}: not valid YAML (an integer of 5000 " \
                                    "characters is too long to be a config value)\n"  # fmt: skip
