"""The dashboard for a fleet: errors first, filters, natural sorts, page size and jump, CSV export,
failed step, bulk actions, inventory edit/delete — on SQLite and on MariaDB.

Rows are inserted with SQL, as an operator's import or a device's requests would leave them.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select

from app import ops as op
from app.storage.db import utcnow
from app.storage.models import (
    ApiToken,
    AuditEntry,
    DeviceEvent,
    DeviceState,
    InventoryItem,
    OperatorSession,
    OperatorUser,
    RateCounter,
)

PASSWORD = "fleet-admin-pw"


@pytest.fixture(params=["sqlite", "mariadb"])
def fleet_app(request, make_app):
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb_fresh")
        application = make_app(admin_password=PASSWORD, database_url=url)
        with application.extensions["pnp_sessions"].begin() as session:
            for model in (InventoryItem, AuditEntry, OperatorSession, ApiToken, OperatorUser, RateCounter):
                session.execute(delete(model))  # the shared database keeps other tests' rows
    else:
        application = make_app(admin_password=PASSWORD)
    return application


def _device(serial, state="CHECK_IMAGE", ip=None, version=None, pid="C1131-8PWB", minutes=0, **extra):
    now = utcnow()
    return {"serial_number": serial, "pid": pid, "vid": "V01", "udi": f"PID:{pid},SN:{serial}",
            "first_seen": now - timedelta(hours=1), "last_contact": now - timedelta(minutes=minutes),
            "state": state, "ip_address": ip, "running_version": version, "vendor": "cisco", **extra}


def seed(app, devices, inventory=()):
    now = utcnow()
    with app.extensions["pnp_sessions"].begin() as session:
        if devices:
            session.execute(insert(DeviceState), devices)
        for item in inventory:
            session.add(InventoryItem(created_at=now, updated_at=now, **{"pid": "", "template": None,
                                                                         "variables": {}, **item}))


def listing(app, **kw):
    query = op.DeviceQuery(**kw)
    return op.list_devices(app.extensions["pnp_sessions"], app.config["PNP"], query)


def serials(page):
    return [d["serial_number"] for d in page.items]


def test_errors_then_stalled_first_by_default(fleet_app):
    seed(fleet_app, [_device("FGL0A001"), _device("FGL0A002", "FINISHED"),
                     _device("FGL0A003", "ERROR", failed_state="INSTALL_IMAGE", last_error_code="1412",
                             last_error_message="image copy failed", error_kind="permanent"),
                     _device("FGL0A004", minutes=60), _device("FGL0A005", "BOOTFLASH_NO_SPACE")],
         inventory=[{"serial_number": "FGL0A000", "hostname": "planned-1"}])
    page = listing(fleet_app)
    assert serials(page)[:2] in (["FGL0A003", "FGL0A005"], ["FGL0A005", "FGL0A003"])
    assert serials(page)[2] == "FGL0A004", "then the silent device"
    assert serials(page)[-1] == "FGL0A000", "planned rows last"
    error = next(d for d in page.items if d["serial_number"] == "FGL0A003")
    assert error["failed_state"] == "INSTALL_IMAGE" and error["step"] == 4 and error["lifecycle"] == "Error"
    assert error["error_kind"] == "permanent"


def test_natural_sort_of_ip_and_version(fleet_app):
    seed(fleet_app, [_device("FGL0B001", ip="10.0.0.10", version="17.12.3a"),
                     _device("FGL0B002", ip="10.0.0.9", version="17.9.1"),
                     _device("FGL0B003", ip="10.0.0.100", version="16.12.10"),
                     _device("FGL0B004", ip="9.255.0.1", version="17.12.10")])
    assert serials(listing(fleet_app, sort="ip")) == ["FGL0B004", "FGL0B002", "FGL0B001", "FGL0B003"]
    assert serials(listing(fleet_app, sort="version")) == ["FGL0B003", "FGL0B002", "FGL0B001", "FGL0B004"]
    assert serials(listing(fleet_app, sort="ip", order="desc"))[0] == "FGL0B003"


def test_filters_and_inventory_hostname_search(fleet_app):
    seed(fleet_app,
         [_device("FGL0C001", pid="C1131-8PWB", version="17.9.1"),
          _device("FGL0C002", pid="C8200-1N-4T", version="17.12.3a"),
          _device("FGL0C003", "ERROR", last_error_code="CONFIG_REJECTED", last_error_message="% Invalid input",
                  error_kind="transient"),
          _device("aa:bb:cc:00:00:01", "ZTP_CONFIG_FETCHED", pid="ex4300-48p", vendor="juniper")],
         inventory=[{"serial_number": "FGL0C001", "hostname": "edge-lon-01", "template": "edge.j2",
                     "variables": {"site": "LON"}},
                    {"serial_number": "FGL0C002", "hostname": "edge-par-01", "variables": {"site": "PAR"}}])
    assert serials(listing(fleet_app, pid="C82")) == ["FGL0C002"]
    assert serials(listing(fleet_app, site="LON")) == ["FGL0C001"]
    assert serials(listing(fleet_app, version="17.12")) == ["FGL0C002"]
    assert serials(listing(fleet_app, error_kind="transient")) == ["FGL0C003"]
    assert serials(listing(fleet_app, template="edge.j2")) == ["FGL0C001"]
    assert serials(listing(fleet_app, vendor="juniper")) == ["aa:bb:cc:00:00:01"]
    assert serials(listing(fleet_app, state="ZTP_CONFIG_FETCHED")) == ["aa:bb:cc:00:00:01"]
    assert serials(listing(fleet_app, q="edge-par")) == ["FGL0C002"], "the inventory hostname is searched"
    choices = op.filter_choices(fleet_app.extensions["pnp_sessions"])
    assert choices["site"] == ["LON", "PAR"] and "juniper" in choices["vendor"]


def test_a_finished_device_shows_no_stale_error(fleet_app):
    seed(fleet_app, [_device("FGL0D001", "FINISHED", last_error_code="1412", last_error_message="old")])
    item = listing(fleet_app).items[0]
    assert item["last_error_message"] is None and item["lifecycle"] == "Provisioned"


def test_page_size_and_bad_values_are_refused_not_clamped(fleet_app):
    seed(fleet_app, [_device(f"FGL0E{i:03d}") for i in range(30)])
    page = listing(fleet_app, sort="serial", per_page=7, page=5)
    assert page.pages == 5 and serials(page) == ["FGL0E028", "FGL0E029"]
    for bad in ({"per_page": 501}, {"per_page": 0}, {"page": 0}):
        with pytest.raises(op.ActionError):
            listing(fleet_app, **bad)


def _log_in(client):
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    assert client.post("/login", data={"csrf_token": token, "user": "admin", "password": PASSWORD}).status_code == 302
    return token


def test_console_filters_page_jump_csv_export_and_api_validation(fleet_app):
    seed(fleet_app, [_device(f"FGL0F{i:03d}", ip=f"10.0.0.{i}") for i in range(1, 61)]
         + [_device("FGL0F999", "ERROR", failed_state="RUN_SCRIPT", last_error_message="Traceback")])
    client = fleet_app.test_client()
    _log_in(client)
    html = client.get("/dashboard?per_page=25&page=3").get_data(as_text=True)
    assert "Page 3 of 3" in html and 'name="page"' in html and 'id="page-jump"' in html
    first = client.get("/dashboard").get_data(as_text=True)
    assert first.index("device-FGL0F999") < first.index("device-FGL0F001"), "errors first"
    assert "failed at step 12 of 13" in first and "RUN_SCRIPT" in first
    export = client.get("/dashboard/export.csv?sort=ip&order=desc")
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert len(rows) == 61 and rows[0]["ip_address"] == "10.0.0.60" and rows[1]["ip_address"] == "10.0.0.59"
    assert client.get("/dashboard?per_page=9999").status_code == 400
    assert client.get("/api/v1/devices?per_page=9999").status_code == 400
    assert client.get("/api/v1/devices?page=0").status_code == 400


def test_bulk_retry_of_twelve_failed_devices_in_one_action(fleet_app):
    failed = [f"FGL0G{i:03d}" for i in range(12)]
    seed(fleet_app, [_device(s, "ERROR", failed_state="APPLY_DAY0_CONFIG", last_error_message="rejected")
                     for s in failed] + [_device("FGL0G999")])
    client = fleet_app.test_client()
    token = _log_in(client)
    response = client.post("/dashboard/bulk", data={"csrf_token": token, "action": "retry",
                                                    "serial": failed + ["NOPE"]})
    assert response.status_code == 302
    page = client.get("/dashboard").get_data(as_text=True)
    assert "retry: 12 device(s) done; failed: NOPE: no device NOPE" in page
    with fleet_app.extensions["pnp_sessions"]() as session:
        states = dict(session.execute(select(DeviceState.serial_number, DeviceState.state)).all())
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "retry")).all()
    assert all(states[s] == "APPLY_DAY0_CONFIG" for s in failed) and states["FGL0G999"] == "CHECK_IMAGE"
    assert len([a for a in audit if a.success]) == 12 and {a.actor for a in audit} == {"admin"}
    api = client.post("/api/v1/bulk", json={"action": "reset", "serials": failed[:3]},
                      headers={"X-CSRFToken": token})
    assert api.status_code == 200 and sorted(api.get_json()["done"]) == failed[:3]
    assert client.post("/api/v1/bulk", json={"action": "explode", "serials": failed},
                       headers={"X-CSRFToken": token}).status_code == 400


def test_bulk_delete_keeps_the_audit(fleet_app):
    seed(fleet_app, [_device("FGL0H001"), _device("FGL0H002")])
    with fleet_app.extensions["pnp_sessions"].begin() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == "FGL0H001")).one()
        session.add(DeviceEvent(device_id=row.id, at=utcnow(), kind="info", message="first contact"))
    result = op.bulk(fleet_app.extensions["pnp_sessions"], "delete", ["FGL0H001", "FGL0H002"],
                     op.Actor("olga", "session", "192.0.2.1"))
    assert sorted(result.done) == ["FGL0H001", "FGL0H002"] and not result.failed
    rows, total = op.list_audit(fleet_app.extensions["pnp_sessions"], action="delete")
    assert total == 2 and {r["target"] for r in rows} == {"FGL0H001", "FGL0H002"}
    assert any(r["detail"] == "1 history events deleted" for r in rows)


def test_inventory_rows_edit_delete_and_counts_agree(fleet_app):
    seed(fleet_app, [_device("FGL0I001")],
         inventory=[{"serial_number": "FGL0I001", "hostname": "a"}, {"serial_number": "FGL0I002", "hostname": "b"},
                    {"serial_number": "FGL0I003", "hostname": "c"}])
    (fleet_app.config["PNP"].configs_dir / "edge.j2").write_text("hostname {{ hostname }}\nip {{ mgmt_ip }}\n")
    client = fleet_app.test_client()
    token = _log_in(client)
    html = client.get("/inventory").get_data(as_text=True)
    assert "3 inventory rows: 2 planned (never seen), 1 seen" in html
    assert listing(fleet_app).counts["lifecycle"]["Planned"] == 2
    bad = client.post("/inventory/FGL0I002/edit", data={"csrf_token": token, "hostname": "b2", "pid": "C1131",
                                                         "template": "edge.j2", "variables": ""})
    assert bad.status_code == 400 and "mgmt_ip" in bad.get_data(as_text=True)
    ok = client.post("/inventory/FGL0I002/edit", data={"csrf_token": token, "hostname": "b2", "pid": "C1131",
                                                        "template": "edge.j2", "variables": "mgmt_ip=192.0.2.9\n"})
    assert ok.status_code == 302
    item = op.get_item(fleet_app.extensions["pnp_sessions"], "FGL0I002")
    assert item["hostname"] == "b2" and item["variables"] == {"mgmt_ip": "192.0.2.9"}
    assert client.post("/inventory/FGL0I003/delete", data={"csrf_token": token}).status_code == 302
    api = client.put("/api/v1/inventory/FGL0I001", json={"hostname": "x", "variables": {"site": "LON"}},
                     headers={"X-CSRFToken": token})
    assert api.status_code == 200 and api.get_json()["variables"] == {"site": "LON"}
    assert client.delete("/api/v1/inventory/NOPE", headers={"X-CSRFToken": token}).status_code == 404
    assert op.inventory_counts(fleet_app.extensions["pnp_sessions"]) == {"total": 2, "planned": 1, "seen": 1}
    rows, _ = op.list_audit(fleet_app.extensions["pnp_sessions"], action="inventory-edit")
    assert [r["target"] for r in rows] == ["FGL0I001", "FGL0I002"]
