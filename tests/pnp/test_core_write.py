"""The per-message write of the device row (app/pnp/service.py ``_write_row``).

Every message's row changes are one Core ``UPDATE … WHERE id`` of the changed columns, fitted
to the columns here, instead of the ORM unit of work, after a Core ``SELECT … FOR UPDATE``. A
state change or a new error calls the row-change hooks (app/storage/hooks.py), which queue the
webhooks and the failure lines of app/ops/notify.py in the same transaction. Flask test client
on a real SQLite file; the statements are those the engine really executed (a SQLAlchemy
listener).
"""

from __future__ import annotations

import io
import logging

import pytest
import requests
from requests.adapters import BaseAdapter
from sqlalchemy import event, select

from app.storage.db import get_sessions
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice
from simulator.device import Faults

LONG_HOSTNAME = "edge-" + "x" * 400


def _statements(app):
    seen: list[str] = []
    event.listen(app.extensions["pnp_engine"], "before_cursor_execute",
                 lambda conn, cursor, statement, *a: seen.append(" ".join(statement.split())[:80]))
    return seen


def _row_and_events(app, serial):
    with app.app_context(), get_sessions()() as s:
        row = s.scalar(select(DeviceState).where(DeviceState.serial_number == serial))
        return row, s.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)
                              .order_by(DeviceEvent.id)).all()


def test_a_message_without_state_change_is_one_fitted_update(make_app, caplog):
    app = make_app()
    client = app.test_client()
    dev = SimulatedDevice("http://127.0.0.1:9", "FDO2COREW01")
    assert b"<request" in client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1")).data
    row, _ = _row_and_events(app, dev.serial)
    state, pending = row.state, row.pending_correlator
    seen = _statements(app)
    # the same device asks again, from the same address, with a hostname too long for its column
    again = dev.work_request_xml("C-2").replace("<hostname>Router</hostname>",
                                                f"<hostname>{LONG_HOSTNAME}</hostname>")
    assert client.post("/pnp/WORK-REQUEST", data=again).status_code == 200
    updates = [s for s in seen if s.startswith("UPDATE device_state")]
    assert len(updates) == 1, seen  # one write of the row, not an ORM flush on top of it
    inserts = [s for s in seen if s.startswith("INSERT INTO device_event")]
    assert len(inserts) == 1, seen  # the clamped line goes in with the message's events
    row, events = _row_and_events(app, dev.serial)
    assert row.state == state and row.hostname == LONG_HOSTNAME[:255]
    assert row.pending_correlator in (pending, "C-2")
    clamped = [e for e in events if e.kind == "clamped"]
    assert len(clamped) == 1 and "device_state.hostname" in clamped[0].message
    assert "device_state.hostname" in caplog.text


def test_state_changes_through_pnp_still_queue_their_webhooks(make_app, start_server):
    """A whole workflow against run.py (gunicorn, SQLite): the move to FINISHED is queued."""
    from app.ops import notify
    from app.storage.models import WebhookDelivery

    app = make_app()  # the same SQLite file as the server's: the webhook is configured first
    notify.add_webhook(app.extensions["pnp_sessions"], "noc", "http://127.0.0.1:9/hook",
                       ["device_error", "device_finished"])
    server = start_server()
    dev = SimulatedDevice(server.url, "FDO2COREW02", reload_seconds=0.2, time_scale=0.0, max_sleep=0.0)
    assert dev.run(timeout=120), dev.log[-5:]
    with app.extensions["pnp_sessions"]() as s:
        queued = s.scalars(select(WebhookDelivery).where(WebhookDelivery.serial == dev.serial)).all()
    assert [d.event for d in queued] == ["device_finished"]


class _TestClientAdapter(BaseAdapter):
    """requests transport into the Flask test client (the simulated device talks to the app
    in this process, so the test sees every statement the message ran)."""

    def __init__(self, app):
        super().__init__()
        self.client = app.test_client()

    def send(self, request, **kwargs):
        answer = self.client.open(request.path_url, method=request.method, data=request.body,
                                  headers=dict(request.headers), environ_base={"REMOTE_ADDR": "127.0.0.1"})
        response = requests.Response()
        response.status_code, response.url, response.request = answer.status_code, request.url, request
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response.raw, response.encoding = io.BytesIO(answer.get_data()), "utf-8"
        return response

    def close(self):
        pass


def test_a_failure_is_core_writes_and_still_queues_its_webhook_and_warning(make_app, caplog):
    """A device whose config-register job is rejected: every message of it is the Core read and
    the Core UPDATE (no ORM SELECT of the row, no second UPDATE of a flush); the move to ERROR
    still queues the device_error webhook and logs the failure once at WARNING."""
    from app.ops import notify
    from app.storage.models import WebhookDelivery

    app = make_app(max_attempts=1, error_retry_rounds=0)
    notify.add_webhook(app.extensions["pnp_sessions"], "noc", "http://127.0.0.1:9/hook",
                       ["device_error", "device_finished"])
    dev = SimulatedDevice("http://127.0.0.1:9", "FDO2COREW03", time_scale=0.0, max_sleep=0.0,
                          faults=Faults(reject_cli={"config-register 0x2102"}))
    dev.http.mount("http://", _TestClientAdapter(app))
    seen = _statements(app)
    flushed: list[str] = []  # device rows the ORM unit of work wrote
    event.listen(app.extensions["pnp_sessions"], "before_flush", lambda session, *_: flushed.extend(
        o.serial_number for o in [*session.new, *session.dirty] if isinstance(o, DeviceState)))
    caplog.set_level(logging.INFO)
    assert dev.run(timeout=30, until=lambda d: d.parked), dev.log[-5:]
    assert flushed == []  # the first contact, the job, the failure, the move to ERROR: all Core
    row, events = _row_and_events(app, dev.serial)
    assert row.state == "ERROR" and "Invalid input" in row.last_error_message
    # the row is only ever read by the locking Core SELECT (all columns, FOR UPDATE on MariaDB)
    reads = [s for s in seen if s.startswith("SELECT device_state.id, device_state.serial_number")]
    assert reads, seen
    assert not [s for s in seen if s.startswith("SELECT device_state.id AS device_state_id")], seen
    with app.extensions["pnp_sessions"]() as s:
        queued = s.scalars(select(WebhookDelivery).where(WebhookDelivery.serial == dev.serial)).all()
    assert [d.event for d in queued] == ["device_error"]
    assert "Invalid input" in queued[0].payload and '"state": "ERROR"' in queued[0].payload
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "pnp.failure" and r.levelno == logging.WARNING and dev.serial in r.getMessage()]
    assert len(warnings) == 1 and "failed at CONFIG_REGISTER (config_rejected)" in warnings[0], warnings
    assert any("Invalid input" in (e.message or "") for e in events)  # the history has it too


@pytest.mark.mariadb
def test_first_contact_is_in_the_history_on_mariadb(make_app):
    """MariaDB's DATETIME keeps whole seconds: the row the Core INSERT created, read back, no
    longer equals the clock, yet the first message still records the first contact."""
    from tests.helpers import drop_database, scratch_database

    url = scratch_database("utf8mb4")
    try:
        app = make_app(database_url=url)
        dev = SimulatedDevice("http://127.0.0.1:9", "FDO2COREW04")
        assert b"<request" in app.test_client().post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1")).data
        _, events = _row_and_events(app, dev.serial)
        assert [e.message for e in events if e.kind == "info"][:1] == [
            f"first contact from 127.0.0.1 ({dev.udi})"], [(e.kind, e.message) for e in events]
        app.extensions["pnp_engine"].dispose()
    finally:
        drop_database(url)
