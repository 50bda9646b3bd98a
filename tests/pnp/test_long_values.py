"""Values longer than their column, numbers beyond its range: stored cut, recorded, never lost.

The same messages go to the app on SQLite and on MariaDB (strict mode, where such a
value used to raise DataError and lose the message); both must store the same row.
The limits come from app/storage/models.py through app/storage/fit.py.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select, text

from app.storage.db import get_sessions
from app.storage.fit import fit_value, limit_of
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice

SN = "FGL2548LONG"
BIGINT_MAX = 2**63 - 1
LONG_VERSION = "17.9.4a" + ".x" * 34 + "z"  # 76 characters
LONG_HOSTNAME = "router-" + "é" * 293  # 300 characters, non-ASCII
LONG_IMAGE = "c1100-universalk9." + "a" * 290 + ".bin"
BIG_ERROR = "copy failed: " + "→" * 35_000  # 105 kB of UTF-8


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def backend_app(request, make_app):
    """The app on a migrated SQLite file, then on the session's MariaDB database."""
    if request.param == "sqlite":
        return make_app()
    return make_app(database_url=request.getfixturevalue("mariadb_fresh"))


def device(**kwargs) -> SimulatedDevice:
    """A simulated C1131 whose messages are posted through the test client (no HTTP)."""
    return SimulatedDevice("http://127.0.0.1:9", kwargs.pop("serial", SN), **kwargs)


def rows(app, serial=SN):
    with app.app_context():
        with get_sessions()() as s:
            row = s.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one()
            events = s.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)
                               .order_by(DeviceEvent.id)).all()
            return row, events


def clamped_lines(events) -> str:
    return "\n".join(e.message for e in events if e.kind == "clamped")


def test_limits_come_from_the_column_definitions():
    table = DeviceState.__table__
    assert limit_of(table.c.running_version).chars == 64
    assert limit_of(table.c.hostname).chars == 255
    assert limit_of(table.c.last_error_message).octets == 65_535  # TEXT
    assert limit_of(DeviceEvent.__table__.c.raw_xml).octets == 16_777_215  # MEDIUMTEXT
    assert (limit_of(table.c.bootflash_free).low, limit_of(table.c.bootflash_free).high) == (0, BIGINT_MAX)
    assert (limit_of(table.c.attempts).low, limit_of(table.c.attempts).high) == (-2**31, 2**31 - 1)
    assert fit_value(table.c.bootflash_free, 10**20)[0] == BIGINT_MAX
    assert fit_value(table.c.bootflash_free, -5)[0] == 0
    assert fit_value(table.c.bootflash_free, 5) == (5, None)
    cut, note = fit_value(table.c.last_error_message, BIG_ERROR)
    assert len(cut.encode()) <= 65_535 and cut.endswith(f"[cut: {len(BIG_ERROR.encode())} bytes sent]")
    assert "did not fit" in str(note)


def test_long_hostname_and_huge_error_message_are_stored_cut_and_recorded(backend_app, caplog):
    client = backend_app.test_client()
    sim = device()
    wr = sim.work_request_xml("C-1").replace("<hostname>Router</hostname>",
                                             f"<hostname>{LONG_HOSTNAME}</hostname>")
    assert client.post("/pnp/WORK-REQUEST", data=wr.encode()).status_code == 200
    row, events = rows(backend_app)
    assert row.hostname == LONG_HOSTNAME[:255] and row.pending_service == "cli-config"
    assert "device_state.hostname: 300 characters did not fit, stored the first 255" in clamped_lines(events)

    caplog.set_level(logging.INFO, "pnp")
    answer = sim._response("cli-config", row.pending_correlator, False,
                           error=("PnP Service Error 1401", BIG_ERROR))
    reply = client.post("/pnp/WORK-RESPONSE", data=answer.encode())
    assert reply.status_code == 200 and b"bye" in reply.data
    row, events = rows(backend_app)
    # the response was recorded: a device-reported failure, counted once, with its code
    assert row.pending_correlator is None and row.attempts == 1
    assert row.last_error_code == "PnP Service Error 1401"
    assert len(row.last_error_message.encode()) <= 65_535
    assert row.last_error_message.startswith("cli-config failed: copy failed: →→→")
    assert "bytes sent]" in row.last_error_message
    response = next(e for e in events if e.kind == "response")
    assert response.error_code == "PnP Service Error 1401" and len(response.message.encode()) <= 65_535
    assert "device_state.last_error_message" in clamped_lines(events)
    assert "device_event.message" in clamped_lines(events)
    assert "database unavailable" not in caplog.text


@pytest.mark.parametrize("size, used, stored, error", [
    (10**20, 0, BIGINT_MAX, "cannot be compared"),
    (1000, 5000, 0, "cannot be compared"),
])
def test_device_info_beyond_the_columns_is_stored_as_the_flagged_limit(backend_app, size, used,
                                                                       stored, error):
    client = backend_app.test_client()
    sim = device(version=LONG_VERSION, image_file=LONG_IMAGE, bootflash_size=size,
                 bootflash_used=used, config_register="0x2102")
    client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-1").encode())
    with backend_app.app_context():
        with get_sessions().begin() as s:  # an operator sends the device to the image check
            s.execute(text("UPDATE device_state SET state='CHECK_IMAGE' WHERE serial_number=:s"),
                      {"s": SN})
    job = ET.fromstring(client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-2")).data)[0]
    assert job.tag == "{urn:cisco:pnp:device-info}request"
    assert client.post("/pnp/WORK-RESPONSE", data=sim.device_info_xml(job.get("correlator"))).status_code == 200
    row, events = rows(backend_app)
    assert row.running_version == LONG_VERSION[:64]
    assert row.image_file == LONG_IMAGE[:255]
    assert row.bootflash_free == stored
    # the device's answer was used (ERROR for the reason it gave, not "no response")
    assert row.state == "ERROR" and error in row.last_error_message and row.attempts == 1
    lines = clamped_lines(events)
    assert "device_state.running_version: 76 characters did not fit, stored the first 64" in lines
    assert "device_state.image_file" in lines
    limit = "maximum" if stored else "minimum"
    assert f"device_state.bootflash_free: {size - used} did not fit, stored {stored} (the column's {limit})" in lines


def test_serial_longer_than_its_column_is_refused_with_the_reason(backend_app):
    """The SN keys the row: it is refused (400, the reason in one line), never cut."""
    client = backend_app.test_client()
    sim = device(serial="FGL" + "9" * 80)
    reply = client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-1"))
    assert reply.status_code == 400 and reply.data == b"WORK-REQUEST: SN of 83 characters exceeds 64\n"
    with backend_app.app_context():
        with get_sessions()() as s:
            assert s.scalars(select(DeviceState)).all() == []
