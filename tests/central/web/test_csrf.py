"""Issue 21.7: another port of the same host is the same site, so the browser sends the login cookie (SameSite=Strict)
with what any page served there makes it send. Against `central run` and Chromium: a page on another port posts a
form that would start an analysis and a text/plain message to /pos; neither does anything, while the same requests
from central's own page work. The cookie is Secure when central is served over HTTPS."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from central import db
from tests.central.hostile import request
from tests.central.web.conftest import central_with_pages
from tests.clips import bars_clip
from tests.conftest import Broker

ATTACK = """<!doctype html><title>win a prize</title>
<iframe name="sink"></iframe>
<form id="f" method="post" action="{central}/web/api/analyses/clip" target="sink">
<input name="clip" value="aisle.mp4"></form>
<script>
fetch("{central}/pos", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: '{pos}'}}).finally(() => document.title = "sent");
document.getElementById("f").submit();
</script>"""
POS = (
    '{"type": "basket_open", "message_id": "m1", "transaction_id": "t-browser", "store": "s1", "lane": "lane-1", '
    '"ts": "%s"}'
)


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csrf")
    broker = Broker(folder / "broker")
    broker.start()
    clips = folder / "clips"
    clips.mkdir()
    bars_clip(clips / "aisle.mp4", 320, 240, 30)
    server = central_with_pages(folder, broker.port, clips_dir=clips)
    yield server
    server.stop()
    broker.stop()


def attacker_site(folder: Path, html: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    (folder / "index.html").write_text(html)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def what_was_done(central) -> tuple[int, int, int]:
    """Analyses started, dead letters and transactions: what the attack was after."""
    engine = db.connect(f"sqlite:///{central.folder / 'central.db'}")
    with engine.connect() as conn:
        letters = len(conn.execute(select(db.dead_letters)).all())
        transactions = len(conn.execute(select(db.transactions)).all())
    engine.dispose()
    work = central.folder / "work"
    return (len(list(work.iterdir())) if work.exists() else 0), letters, transactions


def test_a_page_on_another_port_cannot_use_the_login_cookie(central, page, tmp_path):
    from datetime import datetime, timezone

    page.goto(f"{central.url}/login")
    page.fill("input[name=token]", central.tokens["s1"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{central.url}/dashboard")
    pos = POS % datetime.now(timezone.utc).isoformat()
    before = what_was_done(central)
    (tmp_path / "evil").mkdir()
    evil, evil_url = attacker_site(tmp_path / "evil", ATTACK.format(central=central.url, pos=pos))
    try:
        with page.expect_response(f"{central.url}/web/api/analyses/clip") as form_post:
            page.goto(evil_url)
        page.wait_for_function("document.title === 'sent'")
        assert form_post.value.status == 403
    finally:
        evil.shutdown()
    assert what_was_done(central) == before
    # The same two requests from central's own page (a script there may say application/json): both do what they say.
    page.goto(f"{central.url}/analyse")
    statuses = page.evaluate("""async (pos) => {
        const form = new URLSearchParams({clip: "aisle.mp4"});
        const a = await fetch("/web/api/analyses/clip", {method: "POST", body: form});
        const b = await fetch("/pos", {method: "POST", headers: {"Content-Type": "application/json"}, body: pos});
        return [a.status, b.status];
    }""", pos)  # fmt: skip
    assert statuses == [202, 202]
    analyses, letters, transactions = before
    assert what_was_done(central) == (analyses + 1, letters, transactions + 1)


def test_cookie_requests_need_this_sites_origin_and_scripts_do_not(central):
    cookie = {"Cookie": f"shelfwatch_token={central.tokens['s1']}", "Content-Type": "application/json"}
    body = (POS % "2026-01-01T00:00:00+00:00").replace("t-browser", "t-raw").encode()
    here = central.url
    for headers, expected in [
        ({**cookie, "Origin": "http://127.0.0.1:1"}, 403),  # another port
        ({**cookie, "Origin": "null"}, 403),
        ({**cookie, "Referer": "http://127.0.0.1:1/page"}, 403),
        (cookie, 403),  # neither Origin nor Referer: nothing says it is ours
        ({**cookie, "Origin": here.replace("http://", "https://")}, 403),  # another scheme
        ({**cookie, "Origin": here}, 202),
        ({**cookie, "Referer": f"{here}/analyse"}, 202),
        ({"Authorization": f"Bearer {central.tokens['s1']}", "Content-Type": "application/json",
          "Origin": "http://127.0.0.1:1"}, 202),  # a script's own header: not the browser's cookie
    ]:  # fmt: skip
        answer = request(here, "POST", "/pos", headers, body.replace(b"m1", f"m{expected}{len(headers)}".encode()),
                         chunked=False)  # fmt: skip
        assert answer.status == expected, (headers, answer)
    text_plain = {"Authorization": f"Bearer {central.tokens['s1']}", "Content-Type": "text/plain"}
    assert request(here, "POST", "/pos", text_plain, body, chunked=False).status == 415


def test_the_cookie_is_secure_when_served_over_https(central):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"token={central.tokens['s1']}&next=/".encode()
    plain = request(central.url, "POST", "/login", form, body, chunked=False)
    # Behind a TLS proxy on this host, which says so (uvicorn trusts X-Forwarded-Proto from FORWARDED_ALLOW_IPS).
    proxied = request(central.url, "POST", "/login", {**form, "X-Forwarded-Proto": "https"}, body, chunked=False)
    assert plain.status == proxied.status == 303
    assert "secure" not in plain.headers["set-cookie"].lower().split("; ")
    assert "secure" in proxied.headers["set-cookie"].lower().split("; ")
