"""``/ztp_fetch/<mode>/<vci>/<mac>``: every MAC and VCI form, 400/404, X-Accel, history in the database."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app.ztp.juniper import ZtpError, parse_mac, parse_vci

IMAGE_EX4300 = "jinstall-ex-4300-21.4R3.15-signed.tgz"
IMAGE_QFX = "jinstall-host-qfx-5-21.4R3.15-signed.tgz"
MODELS = {"ex4300-48p": IMAGE_EX4300, "ex4300": "", "qfx5100-48s-6q": IMAGE_QFX, "qfx5100": ""}
MAC = "02:00:00:00:00:01"
STATIC = "system {\n    host-name sw-static;\n    root-authentication { encrypted-password \"$6$x\"; }\n}\n"
SCRIPT = "#!/bin/sh\ncli -c 'request system software add /var/tmp/junos.tgz'\n"
TEMPLATE = ("system {\n    host-name {{ hostname }};\n    root-authentication { encrypted-password \"$6$x\"; }\n}\n"
            "interfaces { vme { unit 0 { family inet { address {{ mgmt_ip }}/24; } } } }\n"
            "/* {{ model }} {{ serial }} {{ mac_dashed }} */\n")
INVENTORY = ("mac,ip,hostname,model,template,mgmt_ip\n"
             "# comment lines are skipped\n"
             "02-00-00-00-00-03,192.0.2.23,sw-tmpl-03,ex4300-48p,access.conf.j2,10.9.0.3\n"
             "02:00:00:00:00:04,,sw-broken-04,,access.conf.j2,\n"
             "02:00:00:00:00:05,,sw-missing-05,,nosuch.conf.j2,\n")


@pytest.fixture
def ztp_lab(lab):
    folder = lab / "configs" / "juniper"
    folder.mkdir()
    (folder / "02-00-00-00-00-01.conf").write_text(STATIC)
    (folder / "02-00-00-00-00-02.conf").write_text(SCRIPT)
    (folder / "access.conf.j2").write_text(TEMPLATE)
    (folder / "inventory.csv").write_text(INVENTORY)
    (lab / "images" / IMAGE_EX4300).write_bytes(b"EX4300-IMAGE" * 1000)
    return lab


class BufferedClient(FlaskClient):
    """Reads every answer whole and closes it, as gunicorn does once the device has the last byte
    (the end of a download is recorded when the WSGI server closes the response)."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def _app(make_app, **overrides):
    application = make_app(juniper_models=MODELS, **overrides)
    application.test_client_class = BufferedClient
    return application


@pytest.fixture
def ztp_app(ztp_lab, make_app):
    return _app(make_app)


@pytest.fixture
def ztp(ztp_app):
    return ztp_app.test_client()


def db_rows(lab):
    engine = create_engine(f"sqlite:///{lab / 'pnp.sqlite3'}")
    with engine.connect() as conn:
        devices = {r["serial_number"]: r for r in conn.execute(text(
            "SELECT * FROM device_state")).mappings()}
        events = conn.execute(text(
            "SELECT d.serial_number, e.kind, e.service, e.success, e.error_code, e.message FROM device_event e "
            "JOIN device_state d ON d.id = e.device_id ORDER BY e.id")).mappings().all()
    engine.dispose()
    return devices, events


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("form", [
    "02-00-00-00-00-01", "02:00:00:00:00:01", "02-00-00-00-00-01.conf", "02:00:00:00:00:01.conf",
    "02-00-00-00-00-01.img", "02-00-00-00-00-01.IMG", "020000000001", "02:00-00:00-00:01",
])
def test_parse_mac_forms(form):
    assert parse_mac(form) == MAC
    assert parse_mac(form.upper().replace("IMG", "img")) == MAC


def test_parse_mac_upper_case():
    assert parse_mac("0A-1B-2C-3D-4E-5F.conf") == "0a:1b:2c:3d:4e:5f"


@pytest.mark.parametrize("vci, model, serial", [
    ("Juniper-ex4300-48p", "ex4300-48p", None),
    ("Juniper-ex4300-48p-PE3714AB0001", "ex4300-48p", "PE3714AB0001"),
    ("Juniper-ex4300", "ex4300", None),
    ("Juniper-ex4300-XY12", "ex4300", "XY12"),
    ("Juniper-qfx5100-48s-6q", "qfx5100-48s-6q", None),
    ("Juniper-qfx5100-48s-6q-DN817", "qfx5100-48s-6q", "DN817"),
    ("Juniper-qfx5100-96s-8q", "qfx5100", None),  # longest KNOWN model; a lower-case rest is no serial
    ("Juniper-qfx5100-96s-8q-WS3718", "qfx5100", "WS3718"),
    ("Juniper-qfx5100-96s-8", "qfx5100", None),
    ("Juniper-qfx5100-XH3718-A", "qfx5100", "XH3718-A"),
    ("Juniper-mx10003", "mx10003", None),  # not in the catalogue
    ("Juniper-ptx1000-DD576", "ptx1000", "DD576"),  # not in the catalogue: upper-case token = serial
    ("juniper-EX4300-48P", "ex4300-48p", None),
])
def test_parse_vci(vci, model, serial):
    assert parse_vci(vci, MODELS) == (model, serial)


@pytest.mark.parametrize("vci", ["Cisco-ex4300", "Juniper-", "Juniper", "Juniper-ex4300--48p", "Juniper-ex 4300",
                                 "ciscopnp", "Juniper-ex4300-" + "x" * 130])
def test_parse_vci_rejects(vci):
    with pytest.raises(ZtpError) as err:
        parse_vci(vci, MODELS)
    assert err.value.status == 400


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("mac", [
    "02-00-00-00-00-01", "02-00-00-00-00-01.conf", "02:00:00:00:00:01", "02:00:00:00:00:01.conf",
    "02-00-00-00-00-01.img", "020000000001", "02-00-00-00-00-01".upper(), "02:00:00:00:00:01.CONF",
])
@pytest.mark.parametrize("vci", ["Juniper-ex4300-48p", "Juniper-ex4300-48p-PE3714AB0001", "Juniper-qfx5100-48s-6q",
                                 "Juniper-qfx5100-48s-6q-DN817", "Juniper-srx320"])
def test_conf_every_mac_and_vci_form(ztp, mac, vci):
    resp = ztp.get(f"/ztp_fetch/conf/{vci}/{mac}")
    assert resp.status_code == 200, resp.data
    assert resp.data.decode() == STATIC
    assert resp.headers["Content-Disposition"] == "attachment; filename=02-00-00-00-00-01.conf"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert "X-Accel-Redirect" not in resp.headers


def test_conf_doubled_leading_slash(ztp):
    # The test client would read "//ztp_fetch" as a host name; gunicorn hands it over as PATH_INFO.
    resp = ztp.get("/", environ_overrides={"PATH_INFO": "//ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf"})
    assert resp.status_code == 200
    assert resp.data.decode() == STATIC


def test_script_served_as_is(ztp):
    resp = ztp.get("/ztp_fetch/conf/Juniper-ex2300-c-12p/02-00-00-00-00-02.conf")
    assert resp.status_code == 200
    assert resp.data.decode() == SCRIPT
    _, events = db_rows(ztp.application.config["PNP"].root)
    assert "script from configs/juniper/02-00-00-00-00-02.conf" in events[-1]["message"]


def test_template_rendered_with_inventory_variables(ztp, ztp_lab):
    resp = ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p-PE3714AB0001/02-00-00-00-00-03.conf")
    assert resp.status_code == 200, resp.data
    body = resp.data.decode()
    assert "host-name sw-tmpl-03;" in body
    assert "address 10.9.0.3/24;" in body
    assert "/* ex4300-48p PE3714AB0001 02-00-00-00-00-03 */" in body
    devices, events = db_rows(ztp_lab)
    assert devices["02:00:00:00:00:03"]["hostname"] == "sw-tmpl-03"
    assert "Junos config from template access.conf.j2" in events[-1]["message"]


def test_template_undefined_variable_is_a_clear_404(ztp, ztp_lab):
    resp = ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-04.conf")
    assert resp.status_code == 404
    assert b"mgmt_ip" in resp.data and b"access.conf.j2" in resp.data
    resp = ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-05.conf")
    assert resp.status_code == 404
    assert b"nosuch.conf.j2" in resp.data
    devices, _ = db_rows(ztp_lab)
    assert devices["02:00:00:00:00:04"]["state"] == "ZTP_ERROR"
    assert "mgmt_ip" in devices["02:00:00:00:00:04"]["last_error_message"]


def test_no_config_is_404_with_message(ztp, ztp_lab):
    resp = ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/0a-1b-2c-3d-4e-5f.conf")
    assert resp.status_code == 404
    assert b"no config for MAC 0a-1b-2c-3d-4e-5f" in resp.data
    assert "0a:1b:2c:3d:4e:5f" not in db_rows(ztp_lab)[0]  # an unknown MAC gets no row per request
    static = ztp_lab / "configs" / "juniper" / "0a-1b-2c-3d-4e-5f.conf"
    static.write_text("system { host-name gone; }\n")
    assert ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/0a-1b-2c-3d-4e-5f.conf").status_code == 200
    static.unlink()  # a known device whose config went away: the failure is recorded
    assert ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/0a-1b-2c-3d-4e-5f.conf").status_code == 404
    devices, events = db_rows(ztp_lab)
    row = devices["0a:1b:2c:3d:4e:5f"]
    assert (row["vendor"], row["state"], row["last_error_code"]) == ("juniper", "ZTP_ERROR", "404")
    assert (events[-1]["kind"], events[-1]["success"], events[-1]["error_code"]) == ("error", 0, "404")


@pytest.mark.parametrize("mac", ["zz", "02-00-00-00-00", "02-00-00-00-00-01-02", "02-00-00-00-00-0g.conf",
                                 "02-00-00-00-00-01.cfg", "02--00-00-00-00-01"])
def test_bad_mac_is_400(ztp, ztp_lab, mac):
    resp = ztp.get(f"/ztp_fetch/conf/Juniper-ex4300-48p/{mac}")
    assert resp.status_code == 400
    assert b"invalid MAC address" in resp.data
    assert db_rows(ztp_lab)[0] == {}


@pytest.mark.parametrize("vci", ["Cisco-C9300", "Juniper-", "Juniper-ex4300--48p", "MSFT 5.0"])
@pytest.mark.parametrize("mode", ["conf", "image"])
def test_bad_vci_is_400(ztp, ztp_lab, vci, mode):
    resp = ztp.get(f"/ztp_fetch/{mode}/{vci}/02-00-00-00-00-01.conf")
    assert resp.status_code == 400
    assert b"invalid vendor class" in resp.data
    assert db_rows(ztp_lab)[0] == {}


def test_unknown_mode_is_404(ztp):
    resp = ztp.get("/ztp_fetch/script/Juniper-ex4300-48p/02-00-00-00-00-01")
    assert resp.status_code == 404
    assert b"unknown ZTP fetch mode" in resp.data


# --------------------------------------------------------------------------- image


@pytest.mark.parametrize("path", [
    "/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01",
    "/ztp_fetch/image/Juniper-ex4300-48p-PE3714AB0001/02:00:00:00:00:01.img",
    "/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01.IMG",
    f"/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01/{IMAGE_EX4300}",
])
def test_image_per_model(ztp, ztp_lab, path):
    resp = ztp.get(path)
    assert resp.status_code == 200, resp.data
    assert resp.data == b"EX4300-IMAGE" * 1000
    assert resp.headers["Content-Disposition"] == f"attachment; filename={IMAGE_EX4300}"
    assert resp.headers["X-Accel-Buffering"] == "no"
    devices, events = db_rows(ztp_lab)
    row = devices[MAC]
    assert (row["state"], row["target_image"], row["pid"]) == ("ZTP_IMAGE_FETCHED", IMAGE_EX4300, "ex4300-48p")
    assert row["image_fetched_at"] is not None
    start, end = events[-2:]
    assert start["service"] == end["service"] == "ztp-image"
    assert start["success"] is None and f"{IMAGE_EX4300} (12000 bytes)" in start["message"]
    assert end["success"] == 1 and f"{IMAGE_EX4300} complete (12000 bytes)" in end["message"]


@pytest.mark.parametrize("vci, message", [
    ("Juniper-ex4300", b"no image for Juniper model 'ex4300'"),  # known model without image
    ("Juniper-mx204", b"no image for Juniper model 'mx204'"),  # unknown model
    ("Juniper-qfx5100-48s-6q", b"is missing from"),  # catalogue names a file that is not there
])
def test_image_missing_is_404(ztp, vci, message):
    resp = ztp.get(f"/ztp_fetch/image/{vci}/02-00-00-00-00-01.img")
    assert resp.status_code == 404
    assert message in resp.data


def test_image_name_must_be_the_official_one(ztp):
    resp = ztp.get("/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01/junos-renamed.tgz")
    assert resp.status_code == 404
    assert IMAGE_EX4300.encode() in resp.data


# --------------------------------------------------------------------------- X-Accel-Redirect


def test_x_accel_redirect(ztp_lab, make_app):
    application = _app(make_app, x_accel_redirect_prefix="/protected")
    try:
        client = application.test_client()
        resp = client.get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf")
        assert resp.status_code == 200 and resp.data == b""
        assert resp.headers["X-Accel-Redirect"] == "/protected/configs/juniper/02-00-00-00-00-01.conf"
        assert resp.headers["Content-Disposition"] == "attachment; filename=02-00-00-00-00-01.conf"
        assert resp.headers["X-Accel-Buffering"] == "no"
        resp = client.get("/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01.img")
        assert resp.status_code == 200 and resp.data == b""
        assert resp.headers["X-Accel-Redirect"] == f"/protected/images/{IMAGE_EX4300}"
        # a rendered template has no file for nginx: its body is sent directly
        resp = client.get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-03.conf")
        assert resp.status_code == 200 and "X-Accel-Redirect" not in resp.headers
        assert b"host-name sw-tmpl-03;" in resp.data
        resp = client.get("/ztp_fetch/conf/Juniper-ex4300-48p/0a-0a-0a-0a-0a-0a.conf")
        assert resp.status_code == 404 and "X-Accel-Redirect" not in resp.headers
    finally:
        application.extensions["pnp_engine"].dispose()


# --------------------------------------------------------------------------- history


def test_history_and_device_row(ztp, ztp_lab):
    for _ in range(2):  # ZTP restarts repeat the same GETs: one row, one event each
        assert ztp.get("/ztp_fetch/image/Juniper-ex4300-48p-PE3714AB0001/02-00-00-00-00-01.img").status_code == 200
        assert ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf").status_code == 200
    assert ztp.head("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf").status_code == 200  # not recorded
    devices, events = db_rows(ztp_lab)
    assert list(devices) == [MAC]
    row = devices[MAC]
    assert row["vendor"] == "juniper" and row["mac_address"] == MAC
    assert row["state"] == "ZTP_DONE" and row["configured"] and row["image_fetched_at"]
    assert row["pid"] == "ex4300-48p"
    assert row["udi"] == "PID:ex4300-48p,VID:,SN:PE3714AB0001"  # kept when a later VCI has no serial
    assert row["vci"] == "Juniper-ex4300-48p" and row["ip_address"] == "127.0.0.1"
    assert [(e["kind"], e["service"], e["success"]) for e in events] == [
        ("fetch", "ztp-image", None), ("fetch", "ztp-image", 1),
        ("fetch", "ztp-conf", None), ("fetch", "ztp-conf", 1)] * 2


def test_cisco_rows_default_to_vendor_cisco(ztp, ztp_lab):
    from tests.helpers import fixture_text

    work_request = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml")
    resp = ztp.post("/pnp/WORK-REQUEST", data=work_request, content_type="text/xml")
    assert resp.status_code == 200
    ztp.get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf")
    devices, _ = db_rows(ztp_lab)
    vendors = sorted((r["vendor"], r["mac_address"]) for r in devices.values())
    assert vendors == [("cisco", None), ("juniper", MAC)]


def test_juniper_rows_on_the_dashboard_listing(make_app):
    """A Juniper device that fetched its config counts as Provisioned (2 of 2), one that
    failed as Error and stalled; neither is mistaken for a stalled Cisco device."""
    from datetime import timedelta

    from app.ops import DeviceQuery, list_devices
    from app.storage.db import get_sessions, utcnow
    from app.storage.models import DeviceState

    app = make_app()
    old = utcnow() - timedelta(days=2)
    with app.app_context():
        sessions = get_sessions()
        with sessions() as s:
            for mac, state in (("aa:bb:cc:00:00:01", "ZTP_DONE"), ("aa:bb:cc:00:00:02", "ZTP_ERROR"),
                               ("aa:bb:cc:00:00:03", "ZTP_IMAGE_FETCHED")):
                s.add(DeviceState(serial_number=mac, mac_address=mac, vendor="juniper", pid="ex4300-48p",
                                  state=state, first_seen=old, last_contact=old))
            s.commit()
        page = list_devices(sessions, app.config["PNP"], DeviceQuery())
    by_serial = {d["serial_number"]: d for d in page.items}
    done, failed, half = (by_serial[f"aa:bb:cc:00:00:0{i}"] for i in (1, 2, 3))
    assert done["lifecycle"] == "Provisioned" and not done["stalled"]
    assert failed["lifecycle"] == "Error" and failed["stalled"]
    assert half["stalled"], "image fetched two days ago and no config since"
    assert page.counts["lifecycle"]["Provisioned"] == 1 and page.counts["lifecycle"]["Error"] == 1
