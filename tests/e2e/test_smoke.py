"""End-to-end: simulated ISR1k devices provisioned by the real server under gunicorn."""

from __future__ import annotations

import pytest

from simulator import SimulatedDevice
from tests.helpers import assert_finished, drive


@pytest.mark.e2e
def test_fleet_on_sqlite_with_several_workers(start_server, lab):
    server = start_server(WORKERS=3)
    devices = [SimulatedDevice(server.url, f"FGL2548L{i:03d}", reload_seconds=0.3) for i in range(6)]
    results = drive(devices)
    assert_finished(server.url, f"sqlite:///{lab / 'pnp.sqlite3'}", devices, results)


@pytest.mark.e2e
@pytest.mark.mariadb
def test_fleet_on_mariadb_with_four_workers(start_server, mariadb_fresh):
    server = start_server(database_url=mariadb_fresh, WORKERS=4)
    devices = [SimulatedDevice(server.url, f"FGL2548M{i:03d}", reload_seconds=0.3) for i in range(8)]
    results = drive(devices)
    assert_finished(server.url, mariadb_fresh, devices, results)
