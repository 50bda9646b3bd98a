"""Juniper image and config downloads in the device's history: size, completion, ZTP_DONE, VCI checks.

The Flask test client stands in for the WSGI server here: a download ends when
the response is closed, after the last byte (``buffered=True``) or after the
first chunk (an interrupted transfer). tests/ztp/test_ztp_e2e.py runs the same
through gunicorn.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from app.ops.lifecycle import Lifecycle, lifecycle_of

IMAGE = "jinstall-ex-4300-21.4R3.15-signed.tgz"
OWN_IMAGE = "jinstall-ex-4300-22.4R3.25-signed.tgz"
MODELS = {"ex4300-48p": IMAGE, "ex4300": ""}
INVENTORY = ("mac,ip,hostname,model,serial,image\n"
             "02:00:00:00:00:01,192.0.2.21,sw-01,ex4300-48p,PE3714AB0001,\n"
             "0200.0000.0002,192.0.2.22,sw-02,ex4300-48p,,jinstall-ex-4300-22.4R3.25-signed.tgz\n"
             "02:00:00:00:00:03,192.0.2.23,sw-03,ex4300,,\n")
CONF = "system { host-name sw; }\n"
SIZE = 3 * 1024 * 1024 + 5  # several 1 MiB blocks: an interrupted download is visible


TOKEN = "t0ken-for-ztp-tests"


@pytest.fixture
def app(lab, make_app):
    folder = lab / "configs" / "juniper"
    folder.mkdir()
    for n in (1, 2, 3):
        (folder / f"02-00-00-00-00-0{n}.conf").write_text(CONF)
    (folder / "inventory.csv").write_text(INVENTORY)
    (lab / "images" / IMAGE).write_bytes(b"A" * SIZE)
    (lab / "images" / OWN_IMAGE).write_bytes(b"B" * 1000)
    return make_app(juniper_models=MODELS, admin_token=TOKEN)


def fetch(app, path: str) -> bytes:
    resp = app.test_client().get(path, buffered=True)
    assert resp.status_code == 200, resp.data
    return resp.data


def state(lab, mac: str):
    engine = create_engine(f"sqlite:///{lab / 'pnp.sqlite3'}")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM device_state WHERE serial_number = :m"), {"m": mac}).mappings().one()
        events = conn.execute(text("SELECT kind, service, success, error_code, message FROM device_event "
                                   "WHERE device_id = :i ORDER BY id"), {"i": row["id"]}).mappings().all()
    engine.dispose()
    return row, events


def test_provisioned_only_after_config_and_image(app, lab):
    mac = "02:00:00:00:00:01"
    fetch(app, "/ztp_fetch/conf/Juniper-ex4300-48p-PE3714AB0001/02-00-00-00-00-01.conf")
    row, _ = state(lab, mac)
    assert row["state"] == "ZTP_CONFIG_FETCHED" and row["configured"] and row["image_fetched_at"] is None
    assert lifecycle_of(row["state"], True) == Lifecycle.ONBOARDING  # config alone is not enough: it has an image
    body = fetch(app, f"/ztp_fetch/image/Juniper-ex4300-48p-PE3714AB0001/02-00-00-00-00-01/{IMAGE}")
    assert len(body) == SIZE
    row, events = state(lab, mac)
    assert row["state"] == "ZTP_DONE" and row["image_fetched_at"] is not None and row["finished_at"] is not None
    assert lifecycle_of(row["state"], True) == Lifecycle.PROVISIONED
    assert [(e["service"], e["success"]) for e in events] == [
        ("ztp-conf", None), ("ztp-conf", 1), ("ztp-image", None), ("ztp-image", 1)]
    assert f"complete ({SIZE} bytes)" in events[-1]["message"]
    assert f"({len(CONF)} bytes)" in events[0]["message"]


def test_model_without_image_is_done_after_the_config(app, lab):
    fetch(app, "/ztp_fetch/conf/Juniper-ex4300-24t/02-00-00-00-00-03.conf")
    row, _ = state(lab, "02:00:00:00:00:03")
    assert row["state"] == "ZTP_DONE"


def test_interrupted_image_download_is_recorded_and_does_not_count(app, lab):
    fetch(app, "/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf")
    resp = app.test_client().get(f"/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01/{IMAGE}")
    first = next(iter(resp.response))  # the device reads one chunk, then goes away
    assert 0 < len(first) < SIZE
    resp.close()
    row, events = state(lab, "02:00:00:00:00:01")
    assert row["state"] == "ZTP_CONFIG_FETCHED" and row["image_fetched_at"] is None
    last = events[-1]
    assert (last["kind"], last["success"], last["error_code"]) == ("error", 0, "INCOMPLETE")
    assert f"interrupted after {len(first)} of {SIZE} bytes" in last["message"]


def test_resumed_range_download_completes(app, lab):
    client = app.test_client()
    url = f"/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01/{IMAGE}"
    resp = client.get(url, headers={"Range": f"bytes={SIZE - 1000}-{SIZE - 1}"}, buffered=True)
    assert resp.status_code == 206 and len(resp.data) == 1000
    row, events = state(lab, "02:00:00:00:00:01")
    assert row["image_fetched_at"] is not None and events[-1]["success"] == 1


def test_per_device_image_from_the_inventory(app, lab):
    # the DHCP helper sends this device ztp_fetch/image/Juniper-ex4300-48p/<mac>/<its own image>
    body = fetch(app, f"/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-02/{OWN_IMAGE}")
    assert body == b"B" * 1000
    resp = app.test_client().get(f"/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-02/{IMAGE}", buffered=True)
    assert resp.status_code == 404  # not this device's image
    row, _ = state(lab, "02:00:00:00:00:02")
    assert row["target_image"] == OWN_IMAGE


@pytest.mark.parametrize("vci, problem", [
    ("Juniper-qfx5100-48s-6q", "model qfx5100-48s-6q (inventory: ex4300-48p)"),
    ("Juniper-ex4300-48p-XX0000000001", "serial XX0000000001 (inventory: PE3714AB0001)"),
])
def test_vci_disagreeing_with_the_inventory_is_recorded(app, lab, vci, problem):
    fetch(app, f"/ztp_fetch/conf/{vci}/02-00-00-00-00-01.conf")  # the MAC decides: still served
    row, events = state(lab, "02:00:00:00:00:01")
    assert row["last_error_code"] == "VCI_MISMATCH" and problem in row["last_error_message"]
    assert any(e["error_code"] == "VCI_MISMATCH" and problem in e["message"] for e in events)


def test_mismatch_and_progress_are_shown_to_the_operator(app, lab):
    fetch(app, "/ztp_fetch/conf/Juniper-qfx5100-48s-6q/02-00-00-00-00-01.conf")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    device = app.test_client().get("/api/v1/devices/02:00:00:00:00:01", headers=auth).get_json()["summary"]
    assert device["last_error_code"] == "VCI_MISMATCH"
    assert "model qfx5100-48s-6q (inventory: ex4300-48p)" in device["last_error_message"]
    assert device["state"] == "ZTP_CONFIG_FETCHED" and device["lifecycle"] != "Provisioned"  # image pending
    fetch(app, f"/ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-01/{IMAGE}")
    device = app.test_client().get("/api/v1/devices/02:00:00:00:00:01", headers=auth).get_json()["summary"]
    assert device["state"] == "ZTP_DONE" and device["lifecycle"] == "Provisioned"
    assert device["last_error_code"] is None  # the matching VCI of the image fetch


def test_matching_vci_records_no_mismatch(app, lab):
    fetch(app, "/ztp_fetch/conf/JUNIPER-EX4300-48P-PE3714AB0001/02-00-00-00-00-01.conf")  # any case
    row, events = state(lab, "02:00:00:00:00:01")
    assert row["last_error_code"] is None and row["pid"] == "ex4300-48p"
    assert not [e for e in events if e["error_code"]]


def test_dotted_mac_in_the_url(app, lab):
    fetch(app, "/ztp_fetch/conf/Juniper-ex4300-48p/0200.0000.0001.conf")
    row, _ = state(lab, "02:00:00:00:00:01")
    assert row["configured"]


def test_old_ztp_fetch_image_path(app, lab):
    assert app.test_client().get("/ztp_fetch_image/nosuch.tgz").status_code == 404
    assert app.test_client().get("/ztp_fetch_image/..%2Fpnp.sqlite3").status_code == 404
    # unknown address: served, nothing recorded
    assert len(fetch(app, f"/ztp_fetch_image/{IMAGE}")) == SIZE
    engine = create_engine(f"sqlite:///{lab / 'pnp.sqlite3'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM device_state")).scalar() == 0
    engine.dispose()
    # after its config fetch from 127.0.0.1 the device is known at that address
    fetch(app, "/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-01.conf")
    assert len(fetch(app, f"/ztp_fetch_image/{IMAGE}")) == SIZE
    row, events = state(lab, "02:00:00:00:00:01")
    assert row["state"] == "ZTP_DONE" and row["target_image"] == IMAGE
    assert "via /ztp_fetch_image" in events[-2]["message"] and events[-1]["success"] == 1


def test_old_ztp_fetch_image_path_finds_the_reservation(app, lab):
    inventory = lab / "configs" / "juniper" / "inventory.csv"
    inventory.write_text(inventory.read_text() + "02:00:00:00:00:09,127.0.0.1,sw-09,ex4300-48p,,\n")
    assert len(fetch(app, f"/ztp_fetch_image/{IMAGE}")) == SIZE  # first contact: no fetch from it before
    row, events = state(lab, "02:00:00:00:00:09")
    assert row["image_fetched_at"] is not None and row["pid"] == "ex4300-48p"
    assert [e["success"] for e in events] == [None, 1]
