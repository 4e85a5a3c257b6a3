"""`shelfwatch provision` against a real Mosquitto run with the files it wrote: a provisioned box gets its
events to central over mutual TLS; an unknown certificate is refused; a box cannot write under another
box's topic prefix."""

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import threading
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
    sub.subscribed = threading.Event()
    sub.client.on_subscribe = lambda c, u, mid, reason_codes, props: sub.subscribed.set()
    sub.client.connect("127.0.0.1", p["consumer_port"])
    sub.client.loop_start()
    # A clean session hears only what comes after its SUBACK: a test that published before it would wait in vain
    # (it did, once, on a busy machine).
    assert sub.subscribed.wait(30), "the consumer was never subscribed"
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
    assert f"user {STORE}.aisle1-left\ntopic write shelfwatch/v1/{STORE}/aisle1-left/+\n" in acl
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
    # Positive control: the box the certificate belongs to publishes on its own topic, and central gets that. The
    # broker handles publishes in order, so anything of the swapped box's it had taken would have come first.
    certs = p["out"] / "boxes" / "aisle1-right" / "certs"
    client, connected, _ = box_client(p, certs / "box.crt", certs / "box.key")
    client.connect("127.0.0.1", p["box_port"])
    client.loop_start()
    assert connected.wait(30)
    client.publish(f"shelfwatch/v1/{STORE}/aisle1-right/pick", b'{"control": true}', qos=1).wait_for_publish(30)
    assert sub.wait_for(lambda: bool(sub.messages))
    control = (f"shelfwatch/v1/{STORE}/aisle1-right/pick", b'{"control": true}')
    assert [(t, body) for t, body, _ in sub.messages] == [control]
    client.loop_stop()
    sub.close()


def test_an_unknown_certificate_is_refused(provisioned):
    """The refusal is the broker's own TLS alert: a dead broker or a wrong port would raise something else. The same
    probe with the box's provisioned certificate gets the broker's CONNACK (accepted), so the probe itself works."""
    p = provisioned
    rogue_ca = load_or_create_ca(p["tmp"] / "rogue", "Rogue")
    cert, key = issue(rogue_ca, f"{STORE}.aisle1-left", "Rogue")
    write_cert(cert, p["tmp"] / "rogue" / "box.crt")
    write_key(key, p["tmp"] / "rogue" / "box.key")
    certs = p["out"] / "boxes" / "aisle1-left" / "certs"
    assert broker_answer(p, certs / "box.crt", certs / "box.key") == "CONNACK 0"
    assert broker_answer(p, p["tmp"] / "rogue" / "box.crt", p["tmp"] / "rogue" / "box.key") == "TLS alert UNKNOWN_CA"
    # Without any certificate, the box port refuses too.
    assert broker_answer(p) == "TLS alert CERTIFICATE_REQUIRED"


def broker_answer(p, cert: Path | None = None, key: Path | None = None) -> str:
    """What the provisioned broker's box port answers a TLS connection with this client certificate (None: none)
    that sends an MQTT CONNECT: "CONNACK <return code>", or "TLS alert <alert>" (the alert it sent, named as in the
    TLS RFCs, without the protocol version OpenSSL puts in front). Anything else (nothing listening, no TLS) raises."""
    context = ssl.create_default_context(cafile=str(p["out"] / "broker" / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    client_id = b"probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id  # MQTT 3.1.1, clean
    try:
        with socket.create_connection(("127.0.0.1", p["box_port"]), timeout=30) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:  # fmt: skip
            with contextlib.suppress(ssl.SSLEOFError, BrokenPipeError, ConnectionResetError):
                tls.sendall(bytes([0x10, len(body)]) + body)  # a broker that hung up left its alert to be read
            answer = b""
            while len(answer) < 4:
                chunk = tls.recv(4 - len(answer))
                if not chunk:
                    raise ConnectionError(f"the broker closed the connection after {answer!r}, without a TLS alert")
                answer += chunk
    except ssl.SSLError as exc:
        if "ALERT" not in (exc.reason or ""):
            raise
        return "TLS alert " + re.sub(r"^(SSLV3|TLSV1|TLSV13)_ALERT_", "", exc.reason)
    assert answer[:2] == b"\x20\x02", f"not a CONNACK: {answer!r}"
    return f"CONNACK {answer[3]}"


def test_a_box_cannot_write_under_another_boxs_prefix(provisioned):
    p, sub = provisioned, central(provisioned)
    certs = p["out"] / "boxes" / "aisle1-left" / "certs"
    client, connected, _ = box_client(p, certs / "box.crt", certs / "box.key")
    client.connect("127.0.0.1", p["box_port"])
    client.loop_start()
    assert connected.wait(10)
    forged = client.publish(f"shelfwatch/v1/{STORE}/aisle1-right/pick", json.dumps({"forged": True}), qos=1)
    own = client.publish(f"shelfwatch/v1/{STORE}/aisle1-left/pick", json.dumps({"own": True}), qos=1)
    forged.wait_for_publish(30)
    own.wait_for_publish(30)
    # The forged one was sent first on the same connection, and the broker handles them in order: once the box's own
    # has reached central, a forged one that got through would already be there.
    assert sub.wait_for(lambda: any(t.endswith("aisle1-left/pick") for t, _, _ in sub.messages))
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
