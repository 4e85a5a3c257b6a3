"""A box's config from YAML: paths relative to the file, secrets from the environment or a file, and
every mistake reported in one line that names the key."""

import pytest

from edge.config import load_box_config
from edge.errors import ShelfWatchError

GOOD = """
store: store-7
box: aisle3-left
camera: {source: rtsp://10.0.0.5/stream1, read_timeout_s: 3}
bundle: ../models/demo
zones:
  - {name: top-shelf, polygon: [[0, 0], [640, 0], [640, 170], [0, 170]]}
catalog:
  - {detector_class: sku00, sku: "4006381333931", name: Cola can}
mqtt:
  host: broker.store-7.lan
  port: 8883
  username: aisle3-left
  password_env: SHELFWATCH_MQTT_PASSWORD
  tls: {ca: certs/ca.crt, cert: certs/box.crt, key: certs/box.key}
outbox: {path: state/outbox.sqlite, max_events: 5000}
"""


def write(tmp_path, text, name="box.yaml"):
    path = tmp_path / "cfg" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_complete_box_config(tmp_path, monkeypatch):
    config = load_box_config(write(tmp_path, GOOD))
    base = tmp_path / "cfg"
    assert config.bundle == base / "../models/demo" and config.outbox.path == base / "state/outbox.sqlite"
    assert config.mqtt.tls.ca == base / "certs/ca.crt" and config.camera.source == "rtsp://10.0.0.5/stream1"
    assert config.zones[0].polygon[2] == (640, 170) and config.catalog[0].sku == "4006381333931"
    assert config.thresholds.detector_confidence == 0.4 and config.provider == "auto"
    with pytest.raises(ShelfWatchError, match="SHELFWATCH_MQTT_PASSWORD is not set"):
        config.mqtt.password()
    monkeypatch.setenv("SHELFWATCH_MQTT_PASSWORD", "s3cret")
    assert config.mqtt.password() == "s3cret"


def test_a_password_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "mqtt.pass").write_text("from-a-file\n")
    text = GOOD.replace("password_env: SHELFWATCH_MQTT_PASSWORD", "password_file: mqtt.pass")
    assert load_box_config(write(tmp_path, text)).mqtt.password() == "from-a-file"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("port: 8883", "port: 99999"), "mqtt.port: Input should be less than or equal to 65535"),
        (("box: aisle3-left", "box: Aisle 3"), "box: String should match pattern"),
        (("outbox: {", "outbx: {"), "outbx: Extra inputs are not permitted"),
        (("polygon: [[0, 0], [640, 0], ", "polygon: ["), "zones.0.polygon: List should have at least 3 items"),
        (("cert: certs/box.crt, ", ""), "mqtt.tls: give both cert and key, or neither"),
        (("store: store-7", "store: [store-7"), "line 3: not valid YAML"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ShelfWatchError) as error:
        load_box_config(path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


# Hostile or broken files: each refused in one line, quickly, before anything runs.
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["store: *i"]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "box: aisle3-right\n", "line 17: not valid YAML (duplicate key 'box' (first on line 3))"),
        (GOOD.replace("port: 8883", "port: 8883\n  port: 1883"), "duplicate key 'port' (first on line 12)"),
        (GOOD + "heartbeat_s: .inf\n", "heartbeat_s: Input should be a finite number"),
        (GOOD + "heartbeat_s: .nan\n", "heartbeat_s: Input should be a finite number"),
        (GOOD.replace("[640, 170]", "[.inf, 170]"), "zones.0.polygon.2.0: Input should be a finite number"),
        (GOOD + "threads: 100000000000000000000000000\n", "threads: Input should be less than or equal to 256"),
        (GOOD.replace("max_events: 5000", "max_events: 1e30"), "outbox.max_events: "),
        (GOOD.replace("port: 8883", "port: 8883\n  keepalive_s: 100000"), "mqtt.keepalive_s: Input should be less"),
        (BILLION_LAUGHS, "aliases (*a) are not allowed in a config"),
        ("base: &b {store: s}\n<<: *b\n", "aliases (*b) are not allowed in a config"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_hostile_yaml_and_out_of_range_values_are_refused(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ShelfWatchError) as error:
        load_box_config(path)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_file_that_is_not_utf8_or_too_big(tmp_path):
    path = tmp_path / "box.yaml"
    path.write_bytes(GOOD.encode().replace(b"aisle3-left", b"aisle3-l\xe9ft"))
    with pytest.raises(ShelfWatchError, match=r"box.yaml: not UTF-8 text \(byte 0xe9 at offset 29\)$"):
        load_box_config(path)
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    with pytest.raises(ShelfWatchError, match="larger than 1024 KiB"):
        load_box_config(path)
    (tmp_path / "pass").write_bytes(b"\xff\xfe")
    path.write_text(GOOD.replace("password_env: SHELFWATCH_MQTT_PASSWORD", f"password_file: {tmp_path / 'pass'}"))
    with pytest.raises(ShelfWatchError, match=r"mqtt\.password_file: .*pass: not UTF-8 text"):
        load_box_config(path).mqtt.password()


def test_without_an_outbox_path_each_box_keeps_its_own_under_the_state_directory(tmp_path, monkeypatch):
    """Issue 22: the default outbox was ./shelfwatch-outbox.sqlite, wherever the agent was started (a copy with
    144 events sat in the repository). Now: XDG's state directory, one per store and box."""
    text = "store: s1\nbox: b1\ncamera: {source: '0'}\nbundle: models/demo\n"
    first = load_box_config(write(tmp_path, text))
    second = load_box_config(write(tmp_path, text.replace("b1", "b2"), name="b2.yaml"))
    monkeypatch.delenv("SHELFWATCH_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert first.outbox_file() == tmp_path / "home/.local/state/shelfwatch/s1/b1/outbox.sqlite"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert first.outbox_file() == tmp_path / "xdg/shelfwatch/s1/b1/outbox.sqlite"
    monkeypatch.setenv("SHELFWATCH_STATE_DIR", str(tmp_path / "state"))
    assert first.outbox_file() == tmp_path / "state/s1/b1/outbox.sqlite"
    assert second.outbox_file() == tmp_path / "state/s1/b2/outbox.sqlite"
