"""HISTORY_RAW_XML: which messages keep their raw XML in device_event.raw_xml.

A real server process (run.py under gunicorn, SQLite) and the simulated device (simulator/)
through every step, then the stored history is read back; a failed response through the Flask
test client.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from app.storage.db import get_sessions
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice


def _history(app, serial):
    with app.app_context(), get_sessions()() as s:
        device_id = s.scalar(select(DeviceState.id).where(DeviceState.serial_number == serial))
        return s.scalars(select(DeviceEvent).where(DeviceEvent.device_id == device_id)
                         .order_by(DeviceEvent.id)).all()


def _run(start_server, lab, serial, setting):
    """The whole workflow of one simulated device against run.py (gunicorn, SQLite); its history."""
    server = start_server(HISTORY_RAW_XML=setting)
    dev = SimulatedDevice(server.url, serial, reload_seconds=0.2, time_scale=0.0, max_sleep=0.0)
    assert dev.run(timeout=120), dev.log[-5:]
    engine = create_engine(f"sqlite:///{lab / 'pnp.sqlite3'}")
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT e.kind, e.service, e.success, e.message, e.raw_xml FROM device_event e "
            "JOIN device_state d ON d.id = e.device_id WHERE d.serial_number = :sn ORDER BY e.id"),
            {"sn": serial}).all()
    engine.dispose()
    return rows


@pytest.mark.parametrize("setting", ["jobs", "all"])
def test_raw_xml_is_kept_for_jobs_failures_and_the_first_device_info(start_server, lab, setting):
    events = _run(start_server, lab, "FDO2RAWXML01", setting)
    jobs = [e for e in events if e.kind == "job"]
    responses = [e for e in events if e.kind == "response"]
    assert jobs and responses
    assert all(e.raw_xml and "<request" in e.raw_xml for e in jobs)  # what was sent: always
    assert all(e.message for e in responses)  # every message is still a history line
    device_infos = [e for e in responses if e.service == "device-info"]
    assert device_infos[0].raw_xml and "<response" in device_infos[0].raw_xml
    kept = [e for e in responses if e.raw_xml]
    if setting == "all":
        assert kept == responses
    else:
        assert kept == [device_infos[0]]  # every other response of this run succeeded
        assert all(e.success for e in responses if not e.raw_xml)


def test_a_failed_response_keeps_its_raw_xml(make_app):
    app = make_app(history_raw_xml="jobs")
    client = app.test_client()
    dev = SimulatedDevice("http://127.0.0.1:9", "FDO2RAWXML02")
    client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1"))
    with app.app_context(), get_sessions()() as s:
        row = s.scalar(select(DeviceState).where(DeviceState.serial_number == dev.serial))
    failed = dev._response(row.pending_service, row.pending_correlator, False)
    client.post("/pnp/WORK-RESPONSE", data=failed)
    responses = [e for e in _history(app, dev.serial) if e.kind == "response"]
    assert len(responses) == 1 and responses[0].success is False
    assert responses[0].raw_xml and "<response" in responses[0].raw_xml


def test_an_unknown_setting_is_refused(make_config):
    from app.config import validate

    assert any("HISTORY_RAW_XML" in p for p in validate(make_config(history_raw_xml="some")))
