"""`shelfwatch edge run --bundle ... --mqtt URL`: a box with no config file publishes to a broker, the password
read as central reads its own (a file, or SHELFWATCH_MQTT_PASSWORD), never from the URL."""

import subprocess

import pytest

from edge.cli import mqtt_config
from edge.errors import ShelfWatchError
from tests.conftest import Subscriber, shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, delivered, sample


def test_a_bundle_and_a_broker_url_are_enough_to_publish(broker, tmp_path):
    sub = Subscriber(broker.port)
    (tmp_path / "password").write_text("not-checked-by-this-broker\n")
    command = shelfwatch_command("edge", "run", "--bundle", DEMO_BUNDLE, "--source", sample(tmp_path, 120),
                                 "--mqtt", f"mqtt://box1@127.0.0.1:{broker.port}", "--mqtt-password-file",
                                 tmp_path / "password", "--outbox", tmp_path / "outbox.sqlite", "--store", "shop",
                                 "--box", "aisle-1")  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sub.wait_for(lambda: any(s["state"] == "stopped" for s in sub.payloads("status")))
    assert {(e["store"], e["box"]) for e in sub.payloads("status")} == {("shop", "aisle-1")}
    assert "0 waiting in the outbox" in done.stdout  # every event was published, none left behind
    assert all(e["store"] == "shop" for e in delivered(sub))
    sub.close()


def test_the_password_comes_from_a_file_or_the_environment_never_the_url(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text("s3cret\n")
    monkeypatch.delenv("SHELFWATCH_MQTT_PASSWORD", raising=False)
    config = mqtt_config("mqtt://box1@broker.local:1884", tmp_path / "secret")
    assert (config.host, config.port, config.username, config.password()) == ("broker.local", 1884, "box1", "s3cret")
    assert mqtt_config("mqtt://box1@broker.local", None).password() is None
    monkeypatch.setenv("SHELFWATCH_MQTT_PASSWORD", "from-env")
    assert mqtt_config("mqtt://box1@broker.local", None).password() == "from-env"
    tls = mqtt_config(f"mqtts://box1@broker.local?ca={tmp_path / 'ca.crt'}", None)
    assert (tls.port, tls.tls.ca) == (8883, tmp_path / "ca.crt")
    with pytest.raises(ShelfWatchError, match="holds a password"):
        mqtt_config("mqtt://box1:s3cret@broker.local", None)
    with pytest.raises(ShelfWatchError, match=r"\?ca="):
        mqtt_config("mqtts://broker.local", None)
    with pytest.raises(ShelfWatchError, match="no such file"):
        mqtt_config("mqtt://broker.local", tmp_path / "missing")


def test_a_bad_broker_url_is_one_line():
    command = shelfwatch_command("edge", "run", "--bundle", DEMO_BUNDLE, "--source", "0", "--mqtt", "http://x")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "shelfwatch: error: 'http://x': an MQTT URL looks like mqtt://host:1883 or mqtts://user@host:8884"
    ]


def test_the_run_summary_names_products_as_the_catalogue_does():
    from edge.cli import catalogue_names, product
    from edge.config import BoxConfig, Camera, SkuMap

    own = SkuMap(detector_class="sku02", sku="4000000000002", name="House water 1 l")
    config = BoxConfig(store="s", box="b", camera=Camera(source="0"), bundle=DEMO_BUNDLE, catalog=[own])
    names = catalogue_names(config)
    assert product("sku00", names) == "Cola can (sku00)"  # the bundle's catalogue
    assert product("4000000000002", names) == "House water 1 l (4000000000002)"  # the box config's own
    assert product("unknown", names) == "unknown"
