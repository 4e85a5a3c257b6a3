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
