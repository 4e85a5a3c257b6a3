"""Nobody in where they do not belong (issue 17.5): every route of the API but /health and the docs needs an
API token; a store's token sees and writes only its store; tokens are stored hashed and can be revoked."""

import json
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from central import auth, db
from central.api import create_app
from edge.events import PickEvent, encode, topic
from tests.central.conftest import api

T0 = datetime.now(timezone.utc) - timedelta(minutes=30)


def picks(central, n: int) -> None:
    for seq in range(1, n + 1):
        event = PickEvent(event_id=f"evt-{seq:04d}", seq=seq, ts=T0 + timedelta(minutes=seq), store="s1",
                          box="lane-1", kind="pick", sku=f"sku0{seq}", frame=seq, confidence=0.9)  # fmt: skip
        central.event(topic("s1", "lane-1", "pick"), encode(event))


def body(kind: str, n: int, minutes: float, store: str = "s1", **extra) -> dict:
    return {"type": kind, "message_id": f"m{n}", "transaction_id": "t1", "store": store, "lane": "lane-1",
            "ts": (T0 + timedelta(minutes=minutes)).isoformat(), **extra}  # fmt: skip


def test_no_token_no_entry_and_the_alert_erasing_attack_is_refused(central):
    """The attack from the issue: item scans posted by anyone erased 3 theft alerts (3 -> 0)."""
    picks(central, 3)  # three units taken at the lane during the transaction, none scanned
    pos = api(central, "s1")
    assert pos.post("/pos", json=body("basket_open", 1, 0)).status_code == 202
    stranger, other_store = TestClient(create_app(central)), api(central, "s2")
    stranger.headers["Authorization"] = "Bearer swt_000000000000_" + "A" * 43
    for n, sku in enumerate(("sku01", "sku02", "sku03"), start=10):
        scan = body("item", n, 5, sku=sku)
        assert TestClient(create_app(central)).post("/pos", json=scan).status_code == 401
        assert stranger.post("/pos", json=scan).status_code == 401
        refused = other_store.post("/pos", json=scan)
        assert refused.status_code == 403 and refused.json()["detail"] == "this API token is for store s2, not s1"
    # Malformed without a token: 401, and nothing reaches the dead letters.
    assert TestClient(create_app(central)).post("/pos", content=b"{oops").status_code == 401
    closed = pos.post("/pos", json=body("basket_close", 2, 10))
    assert [a["sku"] for a in closed.json()["alerts"]] == ["sku01", "sku02", "sku03"]
    window = {"store": "s1", "start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    assert [r["unexplained"] for r in pos.get("/reports/shrink", params=window).json()] == [1, 1, 1]
    with central.engine.connect() as conn:
        assert db.count(conn, db.scans) == 0 and db.count(conn, db.dead_letters) == 0


def test_a_store_token_sees_only_its_store_and_an_admin_token_sees_all(central):
    picks(central, 1)
    s1, s2, admin, anyone = api(central, "s1"), api(central, "s2"), api(central, None), TestClient(create_app(central))
    for path, params in [("/alerts", {}), ("/boxes", {}), ("/reports/shrink", {"store": "s1"})]:
        assert anyone.get(path, params=params).status_code == 401
        assert anyone.get(path, params=params).headers["www-authenticate"] == "Bearer"
    assert anyone.get("/health").status_code == 200 and anyone.get("/docs").status_code == 200
    assert s2.get("/alerts", params={"store": "s1"}).status_code == 403
    assert s2.get("/reports/shrink", params={"store": "s1"}).status_code == 403
    assert s2.get("/boxes").json() == [] and [b["box"] for b in s1.get("/boxes").json()] == ["lane-1"]
    assert [b["box"] for b in admin.get("/boxes").json()] == ["lane-1"]
    assert admin.get("/reports/shrink", params={"store": "s1"}).status_code == 200
    # Opening a basket at another store's lane is refused too.
    assert s2.post("/pos", json=body("basket_open", 1, 0)).status_code == 403


def test_tokens_are_stored_hashed_shown_once_and_revocable(shelfwatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'central.db'}"
    made = shelfwatch("central", "token", "create", "--store", "s1", "--name", "pos lane 3", "--db", url)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("swt_") and "not shown again" in made.stderr
    token_id = token.split("_")[1]
    engine = db.connect(url)
    with engine.connect() as conn:
        (row,) = conn.execute(select(db.api_tokens)).all()
    assert row.store == "s1" and token.split("_", 2)[2] not in str(tuple(row))  # only the hash is kept
    assert auth.authenticate(engine, token).store == "s1"
    assert auth.authenticate(engine, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    listed = shelfwatch("central", "token", "list", "--db", url).stdout
    assert token_id in listed and "s1" in listed and "pos lane 3" in listed and token.split("_", 2)[2] not in listed
    assert shelfwatch("central", "token", "revoke", token_id, "--db", url).returncode == 0
    assert auth.authenticate(engine, token) is None
    again = shelfwatch("central", "token", "revoke", token_id, "--db", url)
    assert again.returncode == 2 and again.stderr.startswith("shelfwatch: error: no active token")
    bad = shelfwatch("central", "token", "create", "--store", "S 1", "--db", url)
    assert bad.returncode == 2 and "a store is lower-case" in bad.stderr
    admin = shelfwatch("central", "token", "create", "--admin", "--db", url)
    assert auth.authenticate(engine, admin.stdout.strip()).admin


def test_one_store_cannot_claim_another_stores_transaction_ids(central):
    """The issue's second attack: claiming a transaction id first so that the real POS got 409. Transactions
    (and scans' message ids, and alerts) are keyed per store, so another store's claim collides with nothing."""
    picks(central, 1)
    s1, s2 = api(central, "s1"), api(central, "s2")
    assert s2.post("/pos", json=body("basket_open", 1, 0, store="s2")).status_code == 202
    assert s2.post("/pos", json=body("item", 2, 1, store="s2", sku="sku01")).status_code == 202
    assert s1.post("/pos", json=body("basket_open", 1, 0)).status_code == 202
    closed = s1.post("/pos", json=body("basket_close", 3, 10))
    assert closed.status_code == 202 and [a["sku"] for a in closed.json()["alerts"]] == ["sku01"]
    assert closed.json()["alerts"][0]["alert_id"] == "s1/t1:sku01:1"


def test_a_box_token_is_imported_replaced_when_provisioned_again_and_good_for_its_files_only(central, tmp_path):
    """Issue 24: provisioning mints each box a token and hands central only its hash; a box provisioned again gets
    a new one (the old one stops working); a box's token opens nothing but the channel's routes for its box."""
    from central.files import FileStore
    from edge import tokens

    def minted(box: str) -> tuple[str, str]:
        token_id, secret, token = tokens.mint()
        return token, json.dumps([{"token_id": token_id, "secret_sha256": tokens.digest(secret), "store": "s1",
                                   "box": box}])  # fmt: skip

    first, entries = minted("b1")
    auth.import_box_tokens(central.engine, entries)
    assert auth.authenticate(central.engine, first) == auth.Principal(first.split("_")[1], "s1", "box s1/b1", "b1")
    again, entries = minted("b1")
    auth.import_box_tokens(central.engine, entries)
    assert auth.authenticate(central.engine, first) is None and auth.authenticate(central.engine, again).box == "b1"
    from central.api import principal_dependency
    from central.web.app import mount_web
    from central.web.config import WebConfig

    app = create_app(central, FileStore(central.engine, tmp_path / "data", reserve_bytes=0))
    mount_web(app, WebConfig(work_dir=tmp_path / "web"), central=central, auth_dependency=principal_dependency(central))
    client = TestClient(app)  # the pages mounted too, as in `central run`: their body limits leave the box's alone
    client.headers["Authorization"] = f"Bearer {again}"
    for method, path in [("GET", "/alerts"), ("GET", "/boxes"), ("GET", "/insights/traffic?store=s1"),
                         ("GET", "/boxes/s1/b1/files"), ("POST", "/boxes/s1/b1/control/snapshot"),
                         ("PUT", "/boxes/s1/b2/files/snapshot/x.jpg")]:  # fmt: skip
        assert client.request(method, path).status_code == 403, path
    assert client.post("/pos", json=body("basket_open", 1, 0)).status_code == 403
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
    jpeg = cv2.imencode(".jpg", noise)[1].tobytes()
    assert len(jpeg) > 16 * 1024  # over the API's 16 KB bound for other bodies
    assert client.put("/boxes/s1/b1/files/snapshot/x.jpg", content=jpeg).status_code == 201
    assert client.put("/boxes/s1/b1/files/snapshot/x.jpg", content=jpeg).status_code == 200  # a retry: one file
    assert client.put("/boxes/s1/b1/files/snapshot/x.jpg", content=jpeg + b"!").status_code == 409
    assert client.put("/boxes/s1/b1/files/snapshot/y.jpg", content=b"not a jpeg").status_code == 422
    chunked = (b"0" * 1_000_000 for _ in range(101))  # no Content-Length: the limit is checked as it streams
    assert client.put("/boxes/s1/b1/files/clip/big.mp4", content=chunked).status_code == 413
    assert len(list((tmp_path / "data").rglob("*.jpg"))) == 1
