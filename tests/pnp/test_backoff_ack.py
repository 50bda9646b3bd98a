"""A backoff acknowledgement only refreshes the contact time (the fast path used by polling devices)."""

from __future__ import annotations

from sqlalchemy import select

from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice


def _row(app, serial):
    with app.extensions["pnp_sessions"]() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one()
        events = session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)).all()
        return row, len(events)


def test_backoff_ack_touches_contact_time_only(app, client):
    dev = SimulatedDevice("http://127.0.0.1:9", "FGL2548B001")
    assert client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1")).status_code == 200
    row, events = _row(app, dev.serial)
    with app.extensions["pnp_sessions"].begin() as session:  # pretend it was seen long ago
        session.get(DeviceState, row.id).last_contact = row.first_seen.replace(year=2000)
        session.get(DeviceState, row.id).ip_address = None  # no address yet (a new one is held: app/pnp/source.py)
    ack = dev._response("backoff", "C-1", True)
    resp = client.post("/pnp/WORK-RESPONSE", data=ack, environ_base={"REMOTE_ADDR": "127.0.0.7"})
    assert resp.status_code == 200 and "bye" in resp.get_data(as_text=True)
    after, events_after = _row(app, dev.serial)
    assert after.last_contact.year != 2000 and after.ip_address == "127.0.0.7"
    assert (after.state, after.pending_service, after.pending_correlator, after.attempts) == \
        (row.state, row.pending_service, row.pending_correlator, row.attempts)
    assert events_after == events


def test_backoff_ack_from_unknown_device_is_ignored(app, client):
    dev = SimulatedDevice("http://127.0.0.1:9", "FGL2548B002")
    resp = client.post("/pnp/WORK-RESPONSE", data=dev._response("backoff", "C-9", True))
    assert resp.status_code == 200 and "bye" in resp.get_data(as_text=True)
    with app.extensions["pnp_sessions"]() as session:
        assert session.scalars(select(DeviceState)).all() == []
