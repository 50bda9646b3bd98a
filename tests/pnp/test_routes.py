"""HTTP layer through the Flask test client: PnP routes, file serving, logging."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from app.storage.db import get_sessions
from app.storage.models import DeviceEvent, DeviceState
from tests.helpers import IMAGE_NAME, fixture_text

WR = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml")
SN = "99CWJ5DOLWQ"


def db_rows(app):
    with app.app_context():
        with get_sessions()() as s:
            return s.scalars(select(DeviceState)).all(), s.scalars(select(DeviceEvent)).all()


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_hello_answers_every_method(client, method):
    assert client.open("/pnp/HELLO", method=method).status_code == 200


def test_work_request_creates_row_and_answers_xml_job(client, app):
    r = client.post("/pnp/WORK-REQUEST", data=WR, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.mimetype == "text/xml"
    root = ET.fromstring(r.data)
    assert root[0].tag == "{urn:cisco:pnp:cli-config}request"
    assert root[0].get("correlator") == "CiscoPnP-1.0-R33.200930-I1-P592-T43891-2"
    rows, events = db_rows(app)
    assert [(r.serial_number, r.pid, r.vid, r.state, r.ip_address) for r in rows] == \
        [(SN, "CSR1000V", "V00", "CONFIG_REGISTER", "127.0.0.1")]
    assert rows[0].pending_correlator == "CiscoPnP-1.0-R33.200930-I1-P592-T43891-2"
    kinds = [e.kind for e in events]
    assert kinds == ["info", "reload", "job"]
    assert "config-register 0x2102" in events[-1].raw_xml


@pytest.mark.parametrize("body", [b"", b"hello", b"<pnp/>", b"<pnp xmlns='urn:cisco:pnp'><info/></pnp>",
                                  fixture_text("resp_fault_reconstructed.xml").encode()])
def test_non_pnp_work_request_gets_400_with_reason_and_no_row(client, app, body):
    r = client.post("/pnp/WORK-REQUEST", data=body)
    assert r.status_code == 400 and r.data.strip() and b"\n" == r.data[-1:]
    assert db_rows(app) == ([], [])


def test_oversized_body_is_refused(client):
    assert client.post("/pnp/WORK-REQUEST", data=b"<" * (2 * 1024 * 1024)).status_code == 413


def test_response_from_unknown_device_gets_bye(client, app):
    r = client.post("/pnp/WORK-RESPONSE", data=fixture_text("resp_device-info-all_csr1000v_iosxe-17.3.4a.xml"))
    assert r.status_code == 200
    assert ET.fromstring(r.data).find(".//{urn:cisco:pnp:work-info}bye") is not None
    assert db_rows(app) == ([], [])


def test_fault_is_recorded_on_pending_job_and_answered_bye(client, app):
    client.post("/pnp/WORK-REQUEST", data=WR)
    r = client.post("/pnp/WORK-RESPONSE", data=fixture_text("resp_fault_reconstructed.xml"))
    root = ET.fromstring(r.data)
    assert root[0].get("correlator") == "CiscoPnP-1.0-R33.200930-I1-P592-T43891-2"
    rows, events = db_rows(app)
    assert rows[0].attempts == 1 and rows[0].last_error_code == "XSVC:Client"
    assert rows[0].pending_correlator is None
    assert any(e.kind == "response" and e.service == "fault" and e.raw_xml for e in events)


def test_credentials_are_redacted_in_history(client, app):
    wr = WR.replace('version="1.0"', 'version="1.0" usr="admin" pwd="s3cret"')
    client.post("/pnp/WORK-REQUEST", data=wr)
    client.post("/pnp/WORK-RESPONSE", data=fixture_text("resp_fault_reconstructed.xml")
                .replace('version="1.0"', 'version="1.0" pwd="s3cret"'))
    _, events = db_rows(app)
    assert all("s3cret" not in (e.raw_xml or "") for e in events)
    log = (app.config["PNP"].logs_dir / "pnp_debug.log").read_text()
    assert "s3cret" not in log


def test_one_log_line_per_exchange(client, app):
    client.post("/pnp/WORK-REQUEST", data=WR)
    log = (app.config["PNP"].logs_dir / "pnp_debug.log").read_text().splitlines()
    lines = [line for line in log if SN in line]
    assert len(lines) == 1
    assert "CiscoPnP-1.0-R33.200930-I1-P592-T43891-2" in lines[0] and "config-register" in lines[0]


def test_database_down_answers_backoff_not_5xx(make_config, tmp_path):
    from app import create_app

    cfg = make_config(database_url="mysql+pymysql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    client = create_app(cfg).test_client()
    r = client.post("/pnp/WORK-REQUEST", data=WR)
    assert r.status_code == 200
    assert ET.fromstring(r.data)[0].tag == "{urn:cisco:pnp:backoff}request"
    r2 = client.post("/pnp/WORK-RESPONSE", data=fixture_text("resp_fault_reconstructed.xml"))
    assert r2.status_code == 200 and b"bye" in r2.data


# --- file serving ----------------------------------------------------------------------------


def test_image_download_has_length_head_and_range(client, lab):
    data = (lab / "images" / IMAGE_NAME).read_bytes()
    head = client.head(f"/images/{IMAGE_NAME}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
    part = client.get(f"/images/{IMAGE_NAME}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    full = client.get(f"/images/{IMAGE_NAME}")
    assert full.status_code == 200 and full.data == data


def test_configs_and_files_served(client, lab):
    assert client.get("/configs/default.cfg").data == (lab / "configs" / "default.cfg").read_bytes()
    assert client.get("/files/pxs.py").data == (lab / "files" / "pxs.py").read_bytes()


@pytest.mark.parametrize("path", [
    "/configs/../settings.py", "/configs/..%2fsettings.py", "/images/../../etc/passwd",
    "/files/%2e%2e/configs/default.cfg", "/images/.md5-cache.json", "/configs//etc/passwd",
    "/images/nonexistent.bin", "/files/", "/configs/sub/../../pnp.sqlite3",
])
def test_nothing_outside_the_folders_is_served(client, lab, path):
    (lab / "pnp.sqlite3").touch()
    (lab / "images" / ".md5-cache.json").write_text("{}")
    r = client.get(path, follow_redirects=True)  # Werkzeug merges "//" with a 308 first
    assert r.status_code == 404


def test_x_accel_redirect_mode(make_config):
    from app import create_app

    client = create_app(make_config(x_accel_redirect_prefix="/internal")).test_client()
    r = client.get(f"/images/{IMAGE_NAME}")
    assert r.status_code == 200 and r.data == b""
    assert r.headers["X-Accel-Redirect"] == f"/internal/images/{IMAGE_NAME}"
    assert client.get("/images/../settings.py").status_code == 404


def test_internal_error_still_answers_the_device(client, app, monkeypatch):
    """A bug in the workflow is logged and the device gets a backoff, never a 500."""
    from app.pnp import workflow

    def broken(*args, **kwargs):
        raise KeyError("bug")
    monkeypatch.setattr(workflow, "on_work_request", broken)  # stands in for an unknown bug
    r = client.post("/pnp/WORK-REQUEST", data=WR)
    assert r.status_code == 200 and b"urn:cisco:pnp:backoff" in r.data
    assert "unexpected error" in (app.config["PNP"].logs_dir / "pnp_debug.log").read_text()
    assert db_rows(app) == ([], []), "the failed transaction is rolled back"


def test_source_ip_from_proxy_when_configured(make_app):
    app = make_app(proxy_hops=1)
    app.test_client().post("/pnp/WORK-REQUEST", data=WR, headers={"X-Forwarded-For": "192.0.2.77"})
    rows, _ = db_rows(app)
    assert rows[0].ip_address == "192.0.2.77"


@pytest.mark.parametrize("path", ["/configs/juniper/inventory.csv", "/configs/templates/base.j2",
                                  "/configs/secrets.csv", "/configs/default.cfg.j2"])
def test_only_day0_cfg_files_are_served_from_configs(client, lab, path):
    target = lab / path.removeprefix("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("enable secret 0 hunter2\n")
    assert client.get(path).status_code == 404


def test_public_port_goes_into_device_urls(make_config):
    cfg = make_config(port=8080, public_port=80)
    assert cfg.url("images", "x.bin") == "http://127.0.0.1/images/x.bin"


def test_response_with_bare_udi_keeps_the_known_pid(client, app):
    client.post("/pnp/WORK-REQUEST", data=WR)
    client.post("/pnp/WORK-RESPONSE", data=fixture_text("resp_fault_reconstructed.xml")
                .replace("PID:CSR1000V,VID:V00,SN:99CWJ5DOLWQ", "SN:99CWJ5DOLWQ"))
    rows, _ = db_rows(app)
    assert (rows[0].pid, rows[0].vid, rows[0].attempts) == ("CSR1000V", "V00", 1)
