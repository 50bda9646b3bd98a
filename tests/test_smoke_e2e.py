"""End-to-end: simulated ISR1k devices provisioned by the real server under gunicorn."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from simulator import SimulatedDevice
from tests.conftest import IMAGE_NAME, IMAGE_VERSION


def _drive(devices, timeout=90):
    results = {}
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d.serial, d.run(timeout=timeout)))
               for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _rows(url):
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT serial_number, state, running_version, configured, "
                                 "tarball_transferred, script_transferred, config_register, "
                                 "script_output FROM device_state")).mappings().all()
    engine.dispose()
    return {r["serial_number"]: r for r in rows}


def _assert_finished(server_url, db_url, devices, results):
    assert all(results.values()), {d.serial: d.log[-5:] for d in devices}
    rows = _rows(db_url)
    image_url = f"{server_url}/images/{IMAGE_NAME}"
    for dev in devices:
        row = rows[dev.serial]
        assert row["state"] == "FINISHED"
        assert row["running_version"] == IMAGE_VERSION == dev.version
        assert row["configured"] and row["tarball_transferred"] and row["script_transferred"]
        assert row["config_register"] == "0x2102" == dev.config_register
        assert "PNP-SCRIPT-OK" in row["script_output"]
        assert dev.downloads[image_url] == 1, "the image must be downloaded exactly once"
        assert "guest-share/pxs.py" in dev.files
        assert dev.guestshell == "RUNNING"
        assert any("InstallGuestShell" in line for line in dev.startup_config)


@pytest.mark.e2e
def test_fleet_on_sqlite_with_several_workers(start_server, lab):
    server = start_server(WORKERS=3)
    devices = [SimulatedDevice(server.url, f"FGL2548L{i:03d}", reload_seconds=0.3) for i in range(6)]
    results = _drive(devices)
    _assert_finished(server.url, f"sqlite:///{lab / 'pnp.sqlite3'}", devices, results)


@pytest.mark.e2e
@pytest.mark.mariadb
def test_fleet_on_mariadb_with_four_workers(start_server, mariadb_fresh):
    server = start_server(database_url=mariadb_fresh, WORKERS=4)
    devices = [SimulatedDevice(server.url, f"FGL2548M{i:03d}", reload_seconds=0.3) for i in range(8)]
    results = _drive(devices)
    _assert_finished(server.url, mariadb_fresh, devices, results)
