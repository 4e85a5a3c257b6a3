"""`shelfwatch provision` against a real Mosquitto run with the files it wrote: a provisioned box gets its
events to central over mutual TLS; an unknown certificate is refused; a box cannot write under another
box's topic prefix."""

import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from edge.bundle import MANIFEST, load_bundle, seal, sha256_of
from edge.config import load_box_config
from edge.errors import ShelfWatchError
from firmware_config.certs import issue, load_or_create_ca, write_cert, write_key
from firmware_config.provision import IMAGE
from tests.conftest import Subscriber, shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.firmware_config.test_store import copy_example

STORE = "example-store"


def central(p) -> Subscriber:
    """The consumer: TLS on the consumer port, with the password provisioning generated."""
    sub = Subscriber.__new__(Subscriber)
    sub.messages, sub.lock = [], threading.Lock()
    sub.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="central-test", clean_session=True)
    sub.client.tls_set(ca_certs=str(p["out"] / "broker" / "ca.crt"))
    sub.client.username_pw_set("central", (p["out"] / "consumers" / "central.password").read_text().strip())
    sub.client.on_connect = lambda c, u, f, rc, props: c.subscribe("shelfwatch/v1/#", qos=1)
    sub.client.on_message = sub._on_message
    sub.client.connect("127.0.0.1", p["consumer_port"])
    sub.client.loop_start()
    return sub


def box_client(p, cert: Path, key: Path) -> tuple[mqtt.Client, threading.Event, list]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{cert.parent.parent.name}")
    client.tls_set(ca_certs=str(p["out"] / "broker" / "ca.crt"), certfile=str(cert), keyfile=str(key))
    connected, codes = threading.Event(), []
    client.on_connect = lambda c, u, f, rc, props: (codes.append(rc), connected.set() if not rc.is_failure else None)
    return client, connected, codes


def test_each_box_gets_config_bundle_certificates_and_units(provisioned):
    out = provisioned["out"]
    for box in ("aisle1-left", "aisle1-right"):
        folder = out / "boxes" / box
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["box"] == box and config["store"] == STORE
        assert config["mqtt"]["tls"] == {"ca": "certs/ca.crt", "cert": "certs/box.crt", "key": "certs/box.key"}
        assert config["mqtt"]["port"] == provisioned["box_port"] and config["bundle"] == "bundle"
        assert load_box_config(folder / "config.yaml").bundle == folder / "bundle"
        assert load_bundle(folder / "bundle").precision  # copied with its manifest, and verified
        assert oct((folder / "certs" / "box.key").stat().st_mode & 0o777) == "0o600"
        unit = (folder / "shelfwatch-edge.service").read_text()
        assert "docker run" in unit and "edge run --config /etc/shelfwatch/config.yaml" in unit
        assert "Restart=always" in unit and os.access(folder / "run.sh", os.X_OK)
    assert "--device /dev/video0" in (out / "boxes" / "aisle1-right" / "run.sh").read_text()
    acl = (out / "broker" / "acl").read_text()
    assert f"user {STORE}.aisle1-left\ntopic write shelfwatch/v1/{STORE}/aisle1-left/#" in acl
    assert "user central\ntopic read shelfwatch/v1/#" in acl
    passwd = (out / "broker" / "passwd").read_text()
    assert passwd.startswith("central:$7$101$") and "password" not in passwd


def test_a_provisioned_box_delivers_over_tls(provisioned):
    p, sub = provisioned, central(provisioned)
    folder = p["out"] / "boxes" / "aisle1-left"
    video = sample(p["tmp"], 60)
    command = shelfwatch_command("edge", "run", "--config", folder / "config.yaml", "--source", video,
                                 "--outbox", p["tmp"] / "outbox.sqlite")  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sub.wait_for(lambda: any(s["state"] == "stopped" for s in sub.payloads("status")))
    topics = {t for t, _, _ in sub.messages}
    assert f"shelfwatch/v1/{STORE}/aisle1-left/status" in topics
    sub.close()


def test_a_box_with_another_boxs_certificate_keeps_its_events(provisioned):
    """Its identity may not write its topics: MQTT 5 says so (0x87), so nothing is taken off the outbox."""
    p, sub = provisioned, central(provisioned)
    folder = p["tmp"] / "swapped"
    shutil.copytree(p["out"] / "boxes" / "aisle1-left", folder)
    shutil.rmtree(folder / "certs")
    shutil.copytree(p["out"] / "boxes" / "aisle1-right" / "certs", folder / "certs")
    jsonl = p["tmp"] / "events.jsonl"
    command = shelfwatch_command("edge", "run", "--config", folder / "config.yaml", "--source",
                                 sample(p["tmp"], 300, seed=11), "--outbox", p["tmp"] / "outbox.sqlite",
                                 "--events-jsonl", jsonl)  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    produced = [e for e in map(json.loads, jsonl.read_text().splitlines()) if e["kind"] != "status"]
    assert produced and f"{len(produced)} waiting in the outbox" in result.stdout, result.stdout
    assert "the broker refused event 1 on shelfwatch/v1/example-store/aisle1-left/" in result.stderr, result.stderr
    assert "Not authorized (0x87)" in result.stderr and "stays in the outbox" in result.stderr
    # The box's heartbeat says so too (the last one, written beside the outbox as the agent stopped).
    statuses = [e for e in map(json.loads, jsonl.read_text().splitlines()) if e["kind"] == "status"]
    assert statuses[-1]["refused_publishes"] >= 1 and statuses[-1]["outbox_depth"] == len(produced)
    time.sleep(0.5)
    assert not sub.messages
    sub.close()


def test_an_unknown_certificate_is_refused(provisioned):
    p = provisioned
    rogue_ca = load_or_create_ca(p["tmp"] / "rogue", "Rogue")
    cert, key = issue(rogue_ca, f"{STORE}.aisle1-left", "Rogue")
    write_cert(cert, p["tmp"] / "rogue" / "box.crt")
    write_key(key, p["tmp"] / "rogue" / "box.key")
    client, connected, _ = box_client(p, p["tmp"] / "rogue" / "box.crt", p["tmp"] / "rogue" / "box.key")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        client.connect("127.0.0.1", p["box_port"])
        client.loop_start()
        if not connected.wait(5):
            raise ConnectionError("refused")
    client.loop_stop()
    # Without any certificate, the box port refuses too.
    bare = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bare")
    bare.tls_set(ca_certs=str(p["out"] / "broker" / "ca.crt"))
    ok = threading.Event()
    bare.on_connect = lambda c, u, f, rc, props: ok.set() if not rc.is_failure else None
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        bare.connect("127.0.0.1", p["box_port"])
        bare.loop_start()
        if not ok.wait(5):
            raise ConnectionError("refused")
    bare.loop_stop()


def test_a_box_cannot_write_under_another_boxs_prefix(provisioned):
    p, sub = provisioned, central(provisioned)
    certs = p["out"] / "boxes" / "aisle1-left" / "certs"
    client, connected, _ = box_client(p, certs / "box.crt", certs / "box.key")
    client.connect("127.0.0.1", p["box_port"])
    client.loop_start()
    assert connected.wait(10)
    forged = client.publish(f"shelfwatch/v1/{STORE}/aisle1-right/pick", json.dumps({"forged": True}), qos=1)
    own = client.publish(f"shelfwatch/v1/{STORE}/aisle1-left/pick", json.dumps({"own": True}), qos=1)
    forged.wait_for_publish(5)
    own.wait_for_publish(5)
    assert sub.wait_for(lambda: any(t.endswith("aisle1-left/pick") for t, _, _ in sub.messages))
    time.sleep(1)
    assert not any("aisle1-right" in t for t, _, _ in sub.messages)
    client.loop_stop()
    sub.close()


# Hostile input: nothing a store folder, a bundle or an option says may write outside --out, add a line to the
# broker's files or a command to the box's shell.


def crafted_bundle(tmp_path: Path, files_key: str) -> Path:
    """The demo bundle, with one more `files` entry named `files_key` whose bytes are really there (relative
    to the bundle folder) and a manifest whose hashes and id all match: only the name is wrong."""
    bundle = tmp_path / "evil" / "a" / "b" / "c" / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    target = bundle / files_key
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"#!/bin/sh\necho owned\n")
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][files_key] = {"sha256": sha256_of(target), "bytes": target.stat().st_size}
    (bundle / MANIFEST).write_text(json.dumps(seal(manifest), indent=2))
    return bundle


def test_a_bundle_file_name_that_is_a_path_is_refused_and_nothing_lands_outside_out(tmp_path, shelfwatch):
    store = copy_example(tmp_path)
    bundle = crafted_bundle(tmp_path, "../../../../x")  # from OUT/boxes/<box>/bundle: beside OUT
    text = (store / "store.yaml").read_text()
    (store / "store.yaml").write_text(re.sub(r"(?m)^bundle: .*$", f"bundle: {bundle}", text))
    out = tmp_path / "o" / "out"
    result = shelfwatch("provision", store, "--out", out)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "not a plain file name" in result.stderr, result.stderr
    assert not (tmp_path / "o" / "x").exists() and not out.exists()
    with pytest.raises(ShelfWatchError, match="not a plain file name"):
        load_bundle(bundle)  # the agent refuses it too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--consumer", "evil\ntopic readwrite #"), "--consumer 'evil\\ntopic readwrite #': a user name is"),
        (("--consumer", "../../etc/x"), "a user name is"),
        (("--image", "x; touch /tmp/owned"), "--image 'x; touch /tmp/owned': not a container image reference"),
        (("--image", "x\nrm -rf /"), "not a container image reference"),
        (("--image", "$(reboot)"), "not a container image reference"),
        (("--broker-dir", "/srv/b\nlistener 1883"), "must be an absolute path without spaces"),
        (("--broker-name", "b\nc"), "not a host name or IP address"),
        (("--box-port", "8884"), "must differ"),
    ],
)
def test_options_that_would_inject_a_line_are_refused_before_anything_is_written(tmp_path, shelfwatch, args,
                                                                                  message):  # fmt: skip
    store = copy_example(tmp_path)
    out = tmp_path / "out"
    result = shelfwatch("provision", store, "--out", out, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not out.exists()


def test_good_image_references_are_taken_and_the_shell_line_is_quoted(tmp_path, shelfwatch):
    for image in ("registry.example.com:5000/shelfwatch/edge-jetson:0.1.0", "edge", "localhost/a_b/c-d:v1.2",
                  "ghcr.io/org/edge@sha256:" + "a" * 64):  # fmt: skip
        assert IMAGE.fullmatch(image), image
    store = copy_example(tmp_path)
    image = "registry.example.com:5000/shelfwatch/edge-jetson:0.1.0"
    result = shelfwatch("provision", store, "--out", tmp_path / "out", "--image", image)
    assert result.returncode == 0, result.stderr
    run = (tmp_path / "out" / "boxes" / "aisle1-right" / "run.sh").read_text().splitlines()[-1]
    words = shlex.split(run)
    assert words[0] == "exec" and image in words and words[-2:] == ["--config", "/etc/shelfwatch/config.yaml"]


def test_a_store_or_box_name_that_is_not_a_slug_is_refused(tmp_path, shelfwatch):
    store = copy_example(tmp_path)
    box = store / "boxes" / "aisle1-left.yaml"
    box.write_text(box.read_text().replace("box: aisle1-left", "box: '../../x'"))
    result = shelfwatch("provision", store, "--out", tmp_path / "out")
    assert result.returncode == 2 and "box: String should match pattern" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
