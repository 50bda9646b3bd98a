"""The per-message write of the device row (app/pnp/service.py ``_write_row``).

Most messages change neither the state nor the last error: their row changes are one Core
``UPDATE … WHERE id`` of the changed columns, fitted to the columns here, instead of the ORM
unit of work. A state change or a new error still goes through the ORM flush, whose hooks queue
webhooks and failure lines (app/ops/notify.py). Flask test client on a real SQLite file; the
statements are those the engine really executed (a SQLAlchemy listener).
"""

from __future__ import annotations

from sqlalchemy import event, select

from app.storage.db import get_sessions
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice

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
