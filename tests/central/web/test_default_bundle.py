"""The pages' default model bundle is the one beside the installed package, wherever central or `shelfwatch web`
is started (issue 26): started in another folder, the analysis page still offers the demo bundle. A config that
points nowhere is one line saying where to point it."""

from __future__ import annotations

from central.web.config import INSTALLED_MODELS, load_web_config, no_bundle
from tests.central.web.conftest import Server
from tests.central.web.test_dashboard import wait_healthy


def test_started_outside_the_repository_the_analysis_page_offers_the_demo_bundle(page, tmp_path):
    server = Server("web", "--port", 0, pattern=r"analysis page: (http://\S+/)", cwd=tmp_path)
    try:
        wait_healthy(server.url)
        page.goto(server.url + "/")
        assert page.locator("#bundle option:checked").text_content() == "demo"
        assert page.get_by_text("No model bundle is configured here").count() == 0
    finally:
        server.stop()


def test_the_defaults_do_not_depend_on_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_web_config(None)
    assert config.default_bundle == INSTALLED_MODELS / "demo" and config.default_bundle.is_absolute()
    assert no_bundle(config) is None


def test_a_config_pointing_nowhere_is_one_line_saying_where_to_point_it(tmp_path, shelfwatch):
    (tmp_path / "web.yaml").write_text("default_bundle: nowhere/demo\nbundles_dir: nowhere\n")
    done = shelfwatch("web", "--port", 0, "--web-config", tmp_path / "web.yaml", cwd=tmp_path, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"no model bundle at {tmp_path / 'nowhere' / 'demo'}" in line and "--web-config" in line, line
