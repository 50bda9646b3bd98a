"""Config secrecy (docs/protocol.md pitfall P12): signed, expiring day-0 config URLs."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from app.config import Config, validate
from app.files.signing import InvalidConfigToken, config_url_builder, redact_token, sign_config, verify_config
from simulator import SimulatedDevice
from tests.helpers import assert_finished

SECRET = "test-secret-0123456789abcdef"


def test_token_binds_serial_and_file_and_expires():
    token = sign_config(SECRET, "FGL1", "default.cfg")
    assert verify_config(SECRET, token, "default.cfg", 60) == "FGL1"
    with pytest.raises(InvalidConfigToken, match="another file"):
        verify_config(SECRET, token, "FGL2.cfg", 60)
    with pytest.raises(InvalidConfigToken, match="bad signature"):
        verify_config("another-secret-0123456789", token, "default.cfg", 60)
    with pytest.raises(InvalidConfigToken, match="bad signature"):
        verify_config(SECRET, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "default.cfg", 60)
    with pytest.raises(InvalidConfigToken, match="expired"):
        verify_config(SECRET, token, "default.cfg", -1)


def test_setting_needs_a_secret(make_config):
    assert any("CONFIG_URL_SECRET" in p for p in validate(make_config(signed_config_urls=True)))
    assert not any("CONFIG_URL_SECRET" in p for p in
                   validate(make_config(signed_config_urls=True, config_url_secret=SECRET)))
    cfg = Config.load(None, env={"PNP_SIGNED_CONFIG_URLS": "yes", "PNP_CONFIG_URL_SECRET": SECRET},
                      resolve_images=False)
    assert cfg.signed_config_urls is True and cfg.config_url_secret == SECRET


@pytest.fixture
def signed_app(make_app):
    application = make_app(signed_config_urls=True, config_url_secret=SECRET)
    yield application
    application.extensions["pnp_engine"].dispose()


def test_plain_config_refused_signed_served(signed_app, lab: Path):
    client = signed_app.test_client()
    (lab / "configs" / "FGL2.cfg").write_text("hostname secret-two\n")
    assert client.get("/configs/default.cfg").status_code == 403
    assert client.get("/configs/FGL2.cfg").status_code == 403
    url = config_url_builder(signed_app.config["PNP"])("FGL1", "default.cfg")
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    resp = client.get("/" + path)
    assert resp.status_code == 200 and resp.data == (lab / "configs" / "default.cfg").read_bytes()
    # the token for default.cfg does not open another device's config
    token = path.split("/")[2]
    assert client.get(f"/configs/signed/{token}/FGL2.cfg").status_code == 403
    assert client.get("/configs/signed/forged.token/default.cfg").status_code == 403
    assert client.get(f"/configs/signed/{token}/../settings.py").status_code in (403, 404)
    # images and files are unaffected
    assert client.get("/files/pxs.py").status_code == 200


def test_signed_route_absent_when_setting_off(client):
    token = sign_config(SECRET, "FGL1", "default.cfg")
    assert client.get(f"/configs/signed/{token}/default.cfg").status_code == 404
    assert client.get("/configs/default.cfg").status_code == 200


def test_redaction():
    line = "GET /configs/signed/eyJzbiI6IkZHTDEifQ.Z1.abc-_/default.cfg HTTP/1.1"
    assert redact_token(line) == "GET /configs/signed/***/default.cfg HTTP/1.1"


@pytest.mark.e2e
def test_device_provisions_with_signed_config_url_and_token_not_logged(start_server, lab):
    server = start_server(SIGNED_CONFIG_URLS=True, CONFIG_URL_SECRET=SECRET, LOG_LEVEL="DEBUG")
    dev = SimulatedDevice(server.url, "FGL2548S001", reload_seconds=0.3)
    result = {}
    t = threading.Thread(target=lambda: result.__setitem__(dev.serial, dev.run(timeout=90)))
    t.start()
    t.join()
    db = f"sqlite:///{lab / 'pnp.sqlite3'}"
    assert_finished(server.url, db, [dev], result)
    config_urls = [u for u in dev.downloads if "/configs/" in u]
    assert config_urls and all("/configs/signed/" in u for u in config_urls)
    tokens = {u.split("/configs/signed/")[1].split("/")[0] for u in config_urls}
    server.stop()
    logs = "".join(p.read_text(errors="replace") for p in (lab / "logs").iterdir() if p.is_file())
    engine = create_engine(db)
    with engine.connect() as conn:
        history = " ".join(str(r) for r in conn.execute(text("SELECT message, raw_xml FROM device_event")))
    engine.dispose()
    assert "/configs/signed/***/" in history
    for token in tokens:
        assert token not in logs, "signed-URL token written to a log"
        assert token not in history, "signed-URL token stored in device history"
    assert re.search(r"/configs/signed/\*\*\*/default\.cfg", logs)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(min_size=1, max_size=200).filter(lambda t: "/" not in t),
       name=st.text(min_size=1, max_size=60))
def test_hostile_tokens_and_names_never_5xx(signed_app, lab, token, name):
    from urllib.parse import quote

    resp = signed_app.test_client().get(f"/configs/signed/{quote(token, safe='')}/{quote(name, safe='/')}")
    assert resp.status_code in (403, 404, 308), resp.status_code
    assert (lab / "configs" / "default.cfg").read_bytes()[:40] not in resp.data


def test_rendered_templates_are_signed_too(signed_app, lab: Path):
    """A templated day-0 config (configs/rendered/<SN>.cfg) is refused in plain and served only
    through a signed URL for that serial (its variables may hold secrets)."""
    from app.ops import import_inventory
    from app.storage.db import get_sessions

    (lab / "configs" / "branch.cfg.j2").write_text("hostname {{ hostname }}\nenable secret {{ secret }}\n")
    with signed_app.app_context():
        result = import_inventory(get_sessions(), signed_app.config["PNP"],
                                  "serial,hostname,template,secret\nFGL7,r7,branch.cfg.j2,hunter2\n")
    assert result.ok, result.errors
    client = signed_app.test_client()
    assert client.get("/configs/rendered/FGL7.cfg").status_code == 403
    url = config_url_builder(signed_app.config["PNP"])("FGL7", "rendered/FGL7.cfg")
    path = "/" + url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    resp = client.get(path)
    assert resp.status_code == 200 and b"hostname r7" in resp.data and b"hunter2" in resp.data
    other = config_url_builder(signed_app.config["PNP"])("FGL8", "rendered/FGL8.cfg")
    token = other.split("/configs/signed/")[1].split("/")[0]
    assert client.get(f"/configs/signed/{token}/rendered/FGL7.cfg").status_code == 403
