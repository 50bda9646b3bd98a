"""No 5xx from any device-facing path or query, and served files stay inside their folders.

Over-long names (a component over 255 bytes made ``OSError: File name too
long`` escape as a 500), NUL bytes, huge or negative page numbers and an
unknown XML encoding all get a 4xx with a one-line reason and no traceback
in the log. A symlink in a served folder pointing out of it (``files/etc-link
-> /etc``) is a 404; one pointing inside the folder still works.
"""

from __future__ import annotations

import logging
import os

import pytest

from tests.helpers import IMAGE_NAME

LONG = "A" * 300
HOSTILE_PATHS = [
    f"/images/{LONG}", f"/files/{LONG}", f"/configs/{LONG}.cfg", f"/configs/rendered/{LONG}.cfg",
    f"/images/{LONG}/{LONG}", f"/files/x/{'B' * 4000}", "/images/%00", "/files/a%00b",
    f"/ztp_fetch/conf/Juniper-ex4300-48p/{LONG}", f"/ztp_fetch/image/Juniper-{LONG}/aa-bb-cc-dd-ee-ff",
    f"/images/{'é' * 200}", "/files/%ff%fe", "/configs/%2e%2e/settings.py", "/files/..%2fsecret.txt",
]


@pytest.fixture
def quiet_app(make_app, caplog):
    """The app; fails the test when anything logged a traceback (a client error is no bug)."""
    application = make_app(admin_token="t" * 32, admin_password="pw-for-tests")
    caplog.set_level(logging.INFO)
    yield application
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks][:3]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_get_4xx_with_a_reason(quiet_app, path):
    resp = quiet_app.test_client().get(path)
    assert 400 <= resp.status_code < 500, (path, resp.status_code, resp.data[:200])
    assert resp.data.strip()


@pytest.mark.parametrize("page", ["9223372036854775807", "-1", "0", "99999999999999999999999", "1e9", "x"])
def test_page_numbers_out_of_range_are_400(quiet_app, page):
    client = quiet_app.test_client()
    auth = {"Authorization": "Bearer " + "t" * 32}
    for url in (f"/api/v1/devices?page={page}", f"/dashboard?page={page}"):
        headers = auth if url.startswith("/api") else {}
        if not url.startswith("/api"):
            client.post("/login", data={"username": "admin", "password": "pw-for-tests"})
            quiet_app.config["WTF_CSRF_ENABLED"] = False
        resp = client.get(url, headers=headers)
        assert resp.status_code in (200, 302, 400), (url, resp.status_code)
        if page in ("9223372036854775807", "99999999999999999999999"):
            assert resp.status_code in (302, 400), url
    assert client.get(f"/api/v1/inventory?page={page}", headers=auth).status_code in (200, 400)


def test_unknown_xml_encoding_is_a_clear_400(quiet_app, caplog):
    body = (b'<?xml version="1.0" encoding="x-no-such-codec"?><pnp xmlns="urn:cisco:pnp" version="1.0" '
            b'udi="PID:C1111-4P,VID:V01,SN:FGL0000ENC1"><info xmlns="urn:cisco:pnp:work-info" '
            b'correlator="c1"><deviceId><udi>PID:C1111-4P,VID:V01,SN:FGL0000ENC1</udi></deviceId></info></pnp>')
    resp = quiet_app.test_client().post("/pnp/WORK-REQUEST", data=body)
    assert resp.status_code == 400
    assert b"encoding" in resp.data
    assert len(resp.data.strip().splitlines()) == 1


def test_symlinks_out_of_a_served_folder_are_404(make_app, lab):
    os.symlink("/etc", lab / "files" / "etc-link")
    (lab / "secret.txt").write_text("not for devices\n")
    os.symlink(lab / "secret.txt", lab / "images" / "secret.bin")
    os.symlink(lab / "secret.txt", lab / "configs" / "FGL000LINK1.cfg")
    os.symlink(IMAGE_NAME, lab / "images" / "alias.bin")  # inside the folder: served
    (lab / "files" / "sub").mkdir()
    os.symlink("../pxs.py", lab / "files" / "sub" / "script.py")
    client = make_app().test_client()
    for url in ("/files/etc-link/passwd", "/files/etc-link/shadow", "/images/secret.bin",
                "/configs/FGL000LINK1.cfg"):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert b"root:" not in resp.data and b"not for devices" not in resp.data
    image = client.get("/images/alias.bin")
    assert image.status_code == 200
    assert image.data == (lab / "images" / IMAGE_NAME).read_bytes()
    assert client.get("/files/sub/script.py").data == (lab / "files" / "pxs.py").read_bytes()


def test_static_day0_symlink_out_of_configs_is_not_handed_out(make_app, lab):
    """The day-0 lookup follows the same rule: a static config that is a symlink out of configs/
    is not used (the device gets default.cfg), so its target never reaches a device."""
    from app.files import day0

    (lab / "secret.txt").write_text("enable secret outside\n")
    os.symlink(lab / "secret.txt", lab / "configs" / "FGL000LINK2.cfg")
    app = make_app()
    resolved = day0.resolve(app.config["PNP"], "FGL000LINK2", None)
    assert resolved.source == "default"
    assert day0.resolve(app.config["PNP"], LONG, None).source == "default"


def test_ztp_config_symlink_out_of_its_folder_is_404(make_app, lab):
    (lab / "configs" / "juniper").mkdir(exist_ok=True)
    (lab / "secret.txt").write_text("root-authentication outside\n")
    os.symlink(lab / "secret.txt", lab / "configs" / "juniper" / "aa-bb-cc-dd-ee-01.conf")
    client = make_app(juniper_models={"ex4300-48p": ""}).test_client()
    resp = client.get("/ztp_fetch/conf/Juniper-ex4300-48p/aa-bb-cc-dd-ee-01.conf")
    assert resp.status_code == 404
    assert b"outside" not in resp.data
