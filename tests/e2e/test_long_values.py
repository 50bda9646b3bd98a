"""End-to-end: devices that send values longer than their column lose no response.

Real run.py under gunicorn, on SQLite and on MariaDB; the MariaDB database is created
with ``CHARACTER SET latin1`` (``CREATE DATABASE pnp;`` on a server whose default is
latin1), so the start-up migration must convert it. Three simulated devices:

* LV01 sends a 300-character hostname, a 300-character image file name, free space
  of 10^20 bytes, and a 105 kB errorMessage on its first file-transfer: it finishes,
  every cut value is in its history, the image is downloaded once;
* LV02 reports a 76-character versionString and LV03 negative free space: both are
  parked in ERROR for the reason their own answer gives (the answer was stored), not
  for "no response".

Before values were fitted to their columns, MariaDB raised DataError on each of
these and the server logged "database unavailable": the responses were lost.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from simulator import SimulatedDevice
from tests.helpers import IMAGE_NAME, drive, drop_database, scratch_database

BIGINT_MAX = 2**63 - 1
LONG_HOSTNAME = "lab-router-" + "é" * 289
LONG_IMAGE = "c1100-universalk9.17.09.04a." + "x" * 268 + ".SPA.bin"
LONG_VERSION = "17.9.4a" + ".x" * 34 + "z"
BIG_ERROR = "File copy failed: " + "→" * 35_000


class LongValuesDevice(SimulatedDevice):
    """A simulated device whose work-requests carry a 300-character hostname and whose
    first file-transfer fails with a 105 kB errorMessage (1702, a transfer error)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.big_errors = 1

    def work_request_xml(self, correlator: str) -> str:
        return super().work_request_xml(correlator).replace(
            "<hostname>Router</hostname>", f"<hostname>{LONG_HOSTNAME}</hostname>")

    def _do_file_transfer(self, request, correlator):
        if self.big_errors:
            self.big_errors -= 1
            return self._response("file-transfer", correlator, False,
                                  error=("PnP Service Error 1702", BIG_ERROR)), False
        return super()._do_file_transfer(request, correlator)


@pytest.fixture(params=["sqlite", pytest.param("mariadb-latin1", marks=pytest.mark.mariadb)])
def database_url(request, lab):
    if request.param == "sqlite":
        yield f"sqlite:///{lab / 'pnp.sqlite3'}"
        return
    url = scratch_database("latin1")
    yield url
    drop_database(url)


def history(url: str) -> dict[str, dict]:
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        for row in conn.execute(text("SELECT * FROM device_state")).mappings():
            events = conn.execute(text("SELECT kind, message FROM device_event WHERE device_id=:i "
                                       "ORDER BY id"), {"i": row["id"]}).all()
            out[row["serial_number"]] = {**row, "events": events}
    engine.dispose()
    return out


def clamped(device: dict) -> str:
    return "\n".join(message for kind, message in device["events"] if kind == "clamped")


@pytest.mark.e2e
def test_over_long_values_lose_no_response(start_server, database_url, lab):
    server = start_server(database_url=database_url, WORKERS=2)
    lv01 = LongValuesDevice(server.url, "FGL2548LV01", image_file=LONG_IMAGE,
                            bootflash_size=10**20, reload_seconds=0.3)
    lv02 = SimulatedDevice(server.url, "FGL2548LV02", version=LONG_VERSION)
    lv03 = SimulatedDevice(server.url, "FGL2548LV03", bootflash_size=1000, bootflash_used=5000)
    finished = drive([lv01], timeout=90)
    parked = {d.serial: d.run(timeout=60, until=lambda d: d.parked) for d in (lv02, lv03)}
    assert finished == {"FGL2548LV01": True}, lv01.log[-8:]
    assert parked == {"FGL2548LV02": True, "FGL2548LV03": True}, (lv02.log[-5:], lv03.log[-5:])
    rows = history(database_url)

    one = rows["FGL2548LV01"]
    assert one["state"] == "FINISHED" and one["hostname"] == LONG_HOSTNAME[:255]
    assert one["bootflash_free"] == BIGINT_MAX and lv01.downloads[f"{server.url}/images/{IMAGE_NAME}"] == 1
    errors = [m for k, m in one["events"] if k == "error"]
    assert len(errors) == 1 and errors[0].startswith("file-transfer failed: File copy failed: →→→")
    assert len(errors[0].encode()) <= 65_535 and errors[0].endswith("bytes sent]")
    cut = clamped(one)
    for column in ("device_state.hostname: 300 characters", "device_state.image_file",
                   "device_state.bootflash_free", "device_state.last_error_message",
                   "device_event.message"):
        assert column in cut, cut

    two = rows["FGL2548LV02"]
    assert two["state"] == "ERROR" and "cannot be compared" in two["last_error_message"]
    assert two["running_version"] == LONG_VERSION[:64] and two["attempts"] == 1
    assert "device_state.running_version: 76 characters" in clamped(two)

    three = rows["FGL2548LV03"]
    assert three["state"] == "ERROR" and "bootflash free -" in three["last_error_message"]
    assert three["bootflash_free"] == 0
    assert "stored 0 (the column's minimum)" in clamped(three)

    log = (lab / "logs" / "pnp_debug.log").read_text(errors="replace")
    assert "FGL2548LV01 " in log and "value stored clamped" in log
    assert "database unavailable" not in log and "database error" not in log
