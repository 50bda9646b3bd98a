"""End-to-end against the real gunicorn server: failures, operator resume, concurrency."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from simulator import Faults, SimulatedDevice
from tests.helpers import IMAGE_NAME, fixture_text

pytestmark = pytest.mark.e2e


def _query(url, sql, **params):
    engine = create_engine(url)
    with engine.begin() as conn:
        result = conn.execute(text(sql), params)
        rows = result.mappings().all() if result.returns_rows else None
    engine.dispose()
    return rows


@pytest.mark.mariadb
def test_parked_device_resumes_after_sql_edit(start_server, mariadb_fresh):
    """Step 11: low bootflash parks the device; an operator frees space and edits the row."""
    server = start_server(database_url=mariadb_fresh)
    dev = SimulatedDevice(server.url, "FGL2548L0AW", bootflash_size=1_500_000_000,
                          bootflash_used=900_000_000, reload_seconds=0.2)
    assert dev.run(timeout=60, until=lambda d: d.parked), dev.log[-5:]
    row = _query(mariadb_fresh, "SELECT state, last_error_message, bootflash_free FROM device_state")[0]
    assert row["state"] == "BOOTFLASH_NO_SPACE" and "RUN_EVENT_MANAGER" in row["last_error_message"]
    assert row["bootflash_free"] < 1026107392
    # A few more polls: still parked, the row unchanged.
    for _ in range(3):
        dev.poll_once()
    assert dev.parked
    # The operator cleans bootflash ("delete bootflash:old.bin") and resumes with SQL.
    dev.bootflash_used = 0
    _query(mariadb_fresh, "UPDATE device_state SET state='RUN_EVENT_MANAGER' WHERE serial_number='FGL2548L0AW'")
    dev.last_backoff_reason = ""
    assert dev.run(timeout=60), dev.log[-5:]
    row = _query(mariadb_fresh, "SELECT state FROM device_state")[0]
    assert row["state"] == "FINISHED"
    events = [r["message"] for r in _query(mariadb_fresh, "SELECT message FROM device_event ORDER BY id")]
    assert any("changed outside the workflow" in m for m in events)


def test_injected_failures_are_recorded_and_retried(start_server, lab):
    server = start_server()
    faults = Faults(transfer_errors=1, faults={"cli-exec": 1}, early_poll=True, drop_responses=1)
    dev = SimulatedDevice(server.url, "FGL2548L0XY", faults=faults, reload_seconds=0.3)
    assert dev.run(timeout=90), dev.log[-8:]
    db = f"sqlite:///{lab / 'pnp.sqlite3'}"
    events = _query(db, "SELECT kind, service, error_code, message FROM device_event ORDER BY id")
    codes = {e["error_code"] for e in events if e["kind"] == "error"}
    assert "PnP Service Error 1702" in codes and "XSVC:Client" in codes
    assert any("no response to" in e["message"] for e in events), "the dropped response is noticed"
    assert dev.downloads[f"{server.url}/images/{IMAGE_NAME}"] == 1, "early poll must not reinstall"
    assert _query(db, "SELECT state FROM device_state")[0]["state"] == "FINISHED"


def test_image_that_never_boots_ends_in_error_after_bounded_installs(start_server, lab):
    server = start_server(MAX_ATTEMPTS=2)
    dev = SimulatedDevice(server.url, "FGL2548L0ZZ", faults=Faults(silent_reload=True), reload_seconds=0.2)
    assert dev.run(timeout=90, until=lambda d: d.parked), dev.log[-8:]
    row = _query(f"sqlite:///{lab / 'pnp.sqlite3'}", "SELECT state, last_error_message FROM device_state")[0]
    assert row["state"] == "ERROR" and "did not take" in row["last_error_message"]
    assert dev.downloads[f"{server.url}/images/{IMAGE_NAME}"] == 2


@pytest.mark.mariadb
def test_concurrent_requests_for_one_device_are_serialised(start_server, mariadb_fresh):
    """20 simultaneous first work-requests of one serial: one row, 20 valid replies, no 5xx."""
    server = start_server(database_url=mariadb_fresh, WORKERS=4)
    base = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml").replace("99CWJ5DOLWQ", "FOC0000RACE")

    def post(i):
        body = base.replace("T43891-2", f"T{i}-2")
        return requests.post(server.url + "/pnp/WORK-REQUEST", data=body, timeout=30)

    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(post, range(20)))
    assert [r.status_code for r in replies] == [200] * 20
    for r in replies:
        assert ET.fromstring(r.text)[0].get("correlator")
    rows = _query(mariadb_fresh, "SELECT serial_number, pending_correlator, attempts FROM device_state")
    assert len(rows) == 1 and rows[0]["serial_number"] == "FOC0000RACE"
    jobs = _query(mariadb_fresh, "SELECT correlator FROM device_event WHERE kind='job'")
    assert rows[0]["pending_correlator"] == jobs[-1]["correlator"], "the last job sent is the pending one"


@pytest.mark.mariadb
def test_many_devices_many_workers_each_step_once(start_server, mariadb_fresh):
    server = start_server(database_url=mariadb_fresh, WORKERS=4, THREADS=4)
    devices = [SimulatedDevice(server.url, f"FDO{i:05d}", reload_seconds=0.2) for i in range(12)]
    done = {}
    threads = [threading.Thread(target=lambda d=d: done.__setitem__(d.serial, d.run(timeout=120))) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(done.values())
    per_device = _query(mariadb_fresh, "SELECT device_id, COUNT(*) AS n FROM device_event "
                                       "WHERE kind='job' GROUP BY device_id")
    # 13 steps: config-register, write mem, device-info, image-install, device-info, 2 transfers,
    # config-upgrade, write mem, device-info, EEM, app-hosting check, script = 13 jobs, no repeats.
    assert {r["n"] for r in per_device} == {13}, json.dumps([dict(r) for r in per_device])
