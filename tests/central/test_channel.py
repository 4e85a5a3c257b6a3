"""The box-central channel through the real processes: a store provisioned with `shelfwatch provision`, Mosquitto
run with the files it wrote (TLS, ACLs), `central run` serving HTTPS, and agents from the provisioned box folders.
Control messages reach only their box and only central writes them; a box uploads with its own token, only for
itself, not after revocation; an interrupted download resumes after the agent is killed, and the bundle is then
staged and switched to; a full disk at central is a 507 and the box keeps the file. (`Channel` serves the switch's
tests too: tests/edge/test_switch.py.)"""

from __future__ import annotations

import json
import re
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from central import db
from edge.bundle import MANIFEST, load_bundle, seal
from edge.uplink import Spool
from firmware_config.certs import issue, load_or_create_ca, write_cert, write_key
from tests.central.test_cli import CentralProcess, wait
from tests.central.web.conftest import web_config
from tests.conftest import free_port, shelfwatch_command
from tests.edge.test_agent_delivery import DEMO_BUNDLE, sample
from tests.firmware_config.conftest import ProvisionedBroker
from tests.firmware_config.test_store import copy_example

STORE = "example-store"
LEFT, RIGHT = "aisle1-left", "aisle1-right"


class Channel:
    """A provisioned store with its broker and a central serving HTTPS; agents are started by the tests."""

    def __init__(self, tmp: Path, data_dir: Path | None = None, download_kbps: float = 0, bundle: Path | None = None,
                 keys: tuple[Path, ...] = (), extra_boxes: tuple[str, ...] = (),
                 web: bool = False) -> None:  # fmt: skip
        """`bundle` (default the demo) is what provisioning installs; `keys`, public keys the boxes trust;
        `extra_boxes`, more boxes of the store (like aisle1-right, another name); `web`: central serves its pages
        too."""
        self.tmp, self.http_port, self.web = tmp, free_port(), web
        ca = load_or_create_ca(tmp / "central-ca", "Central CA")
        cert, key = issue(ca, "127.0.0.1", "Central", server_names=["127.0.0.1"])
        write_cert(cert, tmp / "central.crt")
        write_key(key, tmp / "central.key")
        self.ca = tmp / "central-ca" / "ca.crt"
        store = copy_example(tmp)
        text = (store / "store.yaml").read_text().replace("broker.example-store.lan", "127.0.0.1")
        text = text.replace("heartbeat_s: 30", "heartbeat_s: 1")  # the status file follows the uplink closely
        text += (f"uplink:\n  url: https://127.0.0.1:{self.http_port}\n  ca: {self.ca}\n"
                 f"  download_kbps: {download_kbps}\n")  # fmt: skip
        if bundle is not None:
            text = re.sub(r"^bundle: .*$", f"bundle: {bundle}", text, flags=re.MULTILINE)
        if keys:
            text += f"bundle_keys: [{', '.join(str(k) for k in keys)}]\n"
        (store / "store.yaml").write_text(text)
        for name in extra_boxes:
            right = (store / "boxes" / f"{RIGHT}.yaml").read_text()
            (store / "boxes" / f"{name}.yaml").write_text(right.replace(f"box: {RIGHT}", f"box: {name}"))
        self.out, self.box_port, self.consumer_port = tmp / "out", free_port(), free_port()
        run(["provision", store, "--out", self.out, "--box-port", self.box_port, "--consumer-port", self.consumer_port])
        self.broker = ProvisionedBroker(self.out, tmp)
        self.broker.start()
        self.db = f"sqlite:///{tmp / 'central.db'}"
        run(["central", "token", "import", self.out / "central" / "box-tokens.json", "--db", self.db])
        self.staff = run(["central", "token", "create", "--store", STORE, "--db", self.db]).stdout.strip()
        self.bundles = tmp / "bundles"
        self.data = data_dir or tmp / "data"
        self.central = self.start_central()
        self.agents: list[subprocess.Popen] = []

    def start_central(self) -> CentralProcess:
        ca = self.out / "broker" / "ca.crt"
        central = CentralProcess(
            self.tmp, "--mqtt", f"mqtts://central@127.0.0.1:{self.consumer_port}?ca={ca}", "--mqtt-password-file",
            self.out / "consumers" / "central.password", "--db", self.db, "--http", f"127.0.0.1:{self.http_port}",
            "--tls-cert", self.tmp / "central.crt", "--tls-key", self.tmp / "central.key", "--data-dir", self.data,
            "--bundles-dir", self.bundles, "--files-reserve-mb", 0,
            *(("--web", "on", "--web-config", web_config(self.tmp)) if self.web else ("--web", "off")),
        )  # fmt: skip
        central.wait_consuming()
        assert wait(lambda: self.request("GET", "/health")[0] == 200, 30)
        return central

    def box_token(self, box: str) -> str:
        return (self.out / "boxes" / box / "certs" / "central.token").read_text().strip()

    def request(self, method: str, path: str, token: str | None = None, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any]:  # fmt: skip
        req = urllib.request.Request(f"https://127.0.0.1:{self.http_port}{path}", data=body, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            req.add_header("Content-Type", content_type)
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(req, context=context, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw[:1] in (b"{", b"[") else {}  # a list, for a listing
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw[:1] == b"{" else {}
        except (urllib.error.URLError, ConnectionError):
            return 0, {}

    def agent(self, box: str, video: Path, *args: object) -> subprocess.Popen:
        state = self.tmp / f"state-{box}"
        command = shelfwatch_command("edge", "run", "--config", self.out / "boxes" / box / "config.yaml", "--source",
                                     video, "--outbox", state / "outbox.sqlite", "--realtime", *args)  # fmt: skip
        err = (self.tmp / f"agent-{box}.err").open("ab")
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        self.agents.append(proc)
        return proc

    def events(self, kind: str) -> list[dict]:
        engine = db.connect(self.db)
        with engine.connect() as conn:
            rows = [r.payload for r in conn.execute(select(db.events.c.payload).where(db.events.c.kind == kind))]
        engine.dispose()
        return rows

    def close(self) -> None:
        for proc in self.agents:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.central.stop()
        self.broker.stop()


def run(args: list) -> subprocess.CompletedProcess:
    result = subprocess.run(shelfwatch_command(*args), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def channel(tmp_path):
    c = Channel(tmp_path)
    yield c
    c.close()


def box_mqtt(c: Channel, box: str) -> tuple[mqtt.Client, list, dict]:
    """An MQTT 5 client with the box's provisioned certificate; what it receives and the broker's answers."""
    certs = c.out / "boxes" / box / "certs"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{STORE}.{box}", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(certs / "ca.crt"), certfile=str(certs / "box.crt"), keyfile=str(certs / "box.key"))
    got: list = []
    answers: dict = {}
    client.on_message = lambda cl, u, msg: got.append((msg.topic, msg.payload))
    client.on_subscribe = lambda cl, u, mid, codes, p: answers.__setitem__(("sub", mid), codes)
    client.on_publish = lambda cl, u, mid, code, p: answers.__setitem__(("pub", mid), code)
    client.connect("127.0.0.1", c.box_port)
    client.loop_start()
    return client, got, answers


def test_a_control_message_reaches_only_its_box_and_only_central_writes_one(channel):
    c = channel
    left, left_got, left_answers = box_mqtt(c, LEFT)
    right, right_got, right_answers = box_mqtt(c, RIGHT)
    try:
        _, mid = left.subscribe(f"shelfwatch/v1/{STORE}/{LEFT}/control/#", qos=1)
        # Mosquitto grants a subscription to another box's control topics but delivers nothing there (its ACL
        # is checked per message): the right box must never see the left box's messages.
        _, spy = right.subscribe(f"shelfwatch/v1/{STORE}/{LEFT}/control/#", qos=1)
        _, own = right.subscribe(f"shelfwatch/v1/{STORE}/{RIGHT}/control/#", qos=1)
        assert wait(lambda: {("sub", mid), ("sub", spy), ("sub", own)} <= set(left_answers) | set(right_answers), 10)
        assert not left_answers[("sub", mid)][0].is_failure and not right_answers[("sub", own)][0].is_failure
        for box in (LEFT, RIGHT):
            status, body = c.request("POST", f"/boxes/{STORE}/{box}/control/snapshot", c.staff)
            assert status == 202, body
        # The left box's message was published first and the broker delivers in order: had the right box's spy
        # subscription been given it, it would have reached the right box before the right box's own message.
        assert wait(lambda: left_got and right_got, 60)
        assert [t for t, _ in left_got] == [f"shelfwatch/v1/{STORE}/{LEFT}/control/snapshot"]
        assert [t for t, _ in right_got] == [f"shelfwatch/v1/{STORE}/{RIGHT}/control/snapshot"]
        # A box may write none, not even its own: MQTT 5 answers 0x87 (its events go one level under its prefix).
        forged = b'{"v": 1, "name": "snapshot", "issued": "2026-12-06T00:00:00Z", "request_id": "x"}'
        info = left.publish(f"shelfwatch/v1/{STORE}/{LEFT}/control/snapshot", forged, qos=1)
        assert wait(lambda: ("pub", info.mid) in left_answers, 10)
        assert left_answers[("pub", info.mid)].is_failure
        events = left.publish(f"shelfwatch/v1/{STORE}/{LEFT}/status", b"{}", qos=1)  # positive control: allowed
        assert wait(lambda: ("pub", events.mid) in left_answers, 10)
        assert not left_answers[("pub", events.mid)].is_failure
    finally:
        for client in (left, right):
            client.disconnect()
            client.loop_stop()


@pytest.mark.long
def test_a_box_uploads_with_its_own_token_only_for_itself_and_not_after_revocation(channel):
    c = channel
    agent = c.agent(LEFT, sample(c.tmp, 900, seed=21))
    status, body = c.request("POST", f"/boxes/{STORE}/{LEFT}/control/snapshot", c.staff)
    assert status == 202, body
    clip = sample(c.tmp / "clip", 60, seed=22)
    Spool(c.tmp / f"state-{LEFT}" / "uplink" / "outgoing", 10**9).put("clip", "clip-0001.mp4", clip.read_bytes(),
                                                                       ("evt-1",))  # fmt: skip

    def kinds() -> set:
        return {f["kind"] for f in c.request("GET", f"/boxes/{STORE}/{LEFT}/files", c.staff)[1] or []}

    assert wait(lambda: kinds() == {"clip", "snapshot"}, 60), (c.tmp / f"agent-{LEFT}.err").read_text()
    assert wait(lambda: len(c.events("upload")) == 2, 30)  # the box said so, as ordinary events
    uploads = {e["file_kind"]: e for e in c.events("upload")}
    assert uploads["clip"]["covers"] == ["evt-1"] and uploads["snapshot"]["name"].startswith("snapshot-")
    status, snap = 0, b""
    req = urllib.request.Request(
        f"https://127.0.0.1:{c.http_port}/boxes/{STORE}/{LEFT}/files/snapshot/{uploads['snapshot']['name']}",
        headers={"Authorization": f"Bearer {c.staff}"},
    )
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(c.ca))) as r:
        status, snap = r.status, r.read()
    assert status == 200 and snap[:3] == b"\xff\xd8\xff"  # a JPEG of the camera's view
    # The left box's token may not upload for the right box, nor use the staff API.
    token = c.box_token(LEFT)
    # What is refused is sent a small body: a refusal comes before the body is read and the server then closes the
    # connection, so a client still sending a large one may see a reset instead of the answer (noticed, left alone).
    jpeg, head = snap, snap[:512]
    assert c.request("PUT", f"/boxes/{STORE}/{RIGHT}/files/snapshot/x.jpg", token, head, "image/jpeg")[0] == 403
    assert c.request("GET", f"/alerts?store={STORE}", token)[0] == 403
    assert c.request("PUT", f"/boxes/{STORE}/{LEFT}/files/snapshot/y.jpg", token, jpeg, "image/jpeg")[0] == 201
    # Revoked: refused from then on (and a staff token cannot upload as a box either).
    token_id = token.split("_")[1]
    run(["central", "token", "revoke", token_id, "--db", c.db])
    assert c.request("PUT", f"/boxes/{STORE}/{LEFT}/files/snapshot/z.jpg", token, head, "image/jpeg")[0] == 401
    assert c.request("PUT", f"/boxes/{STORE}/{LEFT}/files/snapshot/z.jpg", c.staff, head, "image/jpeg")[0] == 403
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(60) == 0


@pytest.mark.long
def test_a_download_interrupted_by_killing_the_agent_resumes(tmp_path):
    c = Channel(tmp_path, download_kbps=400)  # the 2.5 MB demo bundle takes about 6 s
    try:
        copy = c.bundles / "demo-copy"  # another bundle than the one the box runs: the demo, exported again
        shutil.copytree(DEMO_BUNDLE, copy)
        manifest = json.loads((copy / MANIFEST).read_text())
        (copy / MANIFEST).write_text(json.dumps(seal(manifest | {"created": "2026-12-06T00:00:00+00:00"})))
        video = sample(c.tmp, 1800, seed=23)
        agent = c.agent(LEFT, video)
        status, sent = c.request("POST", f"/boxes/{STORE}/{LEFT}/desired", c.staff, b'{"bundle": "demo-copy"}')
        assert status == 202, sent
        part = c.tmp / f"state-{LEFT}" / "uplink" / "downloads" / f"{sent['file']}.part"
        assert wait(lambda: part.exists() and 200_000 < part.stat().st_size < sent["size"] // 2, 60), (
            sorted(p.name for p in part.parent.parent.rglob("*")),
            (c.tmp / f"agent-{LEFT}.err").read_text()[-2000:],
        )
        agent.kill()  # kill -9 mid-download
        agent.wait(10)
        had = part.stat().st_size
        assert 0 < had < sent["size"]
        c.agent(LEFT, video)
        # It finishes, then the bundle is staged in a slot (checked), gated and switched to: the box runs it.
        new_id = json.loads((copy / MANIFEST).read_text())["bundle_id"]
        switched = f"switched to bundle {new_id}"
        assert wait(lambda: any(switched in e.get("detail", "") for e in c.events("control")), 180), err(c)
        assert f"resuming {sent['file']} at {had} of {sent['size']} bytes" in err(c)
        assert any(e["state"] == "staged" and new_id in e["detail"] for e in c.events("control"))
        status_file = c.tmp / f"state-{LEFT}" / "outbox.status.json"
        assert wait(lambda: json.loads(status_file.read_text()).get("bundle_id") == new_id, 30)
        slot = c.tmp / f"state-{LEFT}" / "slots" / "A" / "bundle"
        assert load_bundle(slot).bundle_id == new_id
        assert all((slot / name).read_bytes() == (copy / name).read_bytes() for name in load_bundle(copy).files)
        assert not part.exists() and not part.with_suffix("").exists()  # unpacked into the slot: not kept twice
    finally:
        c.close()


def err(c: Channel, box: str = LEFT) -> str:
    return (c.tmp / f"agent-{box}.err").read_text(errors="replace")[-3000:]


@pytest.mark.long
def test_a_full_disk_at_central_is_507_and_the_box_keeps_the_file(tmp_path):
    small = tmp_path / "small-disk"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        c = Channel(tmp_path, data_dir=small / "data")
        try:
            agent = c.agent(LEFT, sample(c.tmp, 900, seed=24))
            clip = sample(c.tmp / "clip", 240, seed=25)  # larger than the 1 MB disk
            assert clip.stat().st_size > 1_000_000
            spool = Spool(c.tmp / f"state-{LEFT}" / "uplink" / "outgoing", 10**9)
            spool.put("clip", "clip-big.mp4", clip.read_bytes())
            status_file = c.tmp / f"state-{LEFT}" / "outbox.status.json"

            def problem() -> str:
                try:
                    return json.loads(status_file.read_text()).get("problem", "")
                except (OSError, ValueError):
                    return ""

            assert wait(lambda: "507" in problem(), 60), (c.tmp / f"agent-{LEFT}.err").read_text()
            assert [w.name for w in spool.waiting()] == ["clip-big.mp4"]  # kept, to be tried again
            assert not list((small / "data").rglob("clip-big.mp4"))
            agent.send_signal(signal.SIGTERM)
            agent.wait(60)
        finally:
            c.close()
    finally:
        subprocess.run(["umount", str(small)], check=False)
