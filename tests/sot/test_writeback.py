"""Status write-back through the queue table (app/sot/writeback.py) to NetBox (replayed, real pynetbox).

Devices talk to the real PnP routes (Flask test client); the queue is read
back from SQLite; NetBox is tests/sot/netbox_replay.py (NetBox is not installable here).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.pnp.service import set_state
from app.sot import writeback
from app.sot.sources import make_source
from app.sot.sync import sync
from app.storage.db import utcnow
from app.storage.models import SotWriteback
from simulator import SimulatedDevice
from tests.sot.netbox_replay import NetboxReplay

pytestmark = pytest.mark.sot


@pytest.fixture
def netbox():
    replay = NetboxReplay()
    replay.add_device(101, "br-hamburg-1", "FGL2548HH01", mac="00:53:00:00:21:01", ip="192.0.2.21")
    yield replay
    replay.close()


def settings(netbox, **extra) -> dict:
    return {"inventory_source": "netbox", "sot_url": netbox.url, "sot_token": netbox.token,
            "sot_retry_backoff": 10, **extra}


def queue(app) -> list[SotWriteback]:
    with app.extensions["pnp_sessions"]() as session:
        return list(session.scalars(select(SotWriteback).order_by(SotWriteback.id)))


def contact(app, serial: str = "FGL2548HH01") -> None:
    device = SimulatedDevice("http://unused", serial)
    answer = app.test_client().post("/pnp/WORK-REQUEST", data=device.work_request_xml("c-1"),
                                    content_type="text/xml")
    assert answer.status_code == 200
    answer.close()  # like gunicorn once the reply is sent: runs the write-back drain (call_on_close)


def test_off_by_default_nothing_is_queued(make_app, netbox):
    app = make_app(**settings(netbox))
    assert not writeback.enabled(app.config["PNP"])
    sync(app.extensions["pnp_sessions"], app.config["PNP"], make_source(app.config["PNP"]))
    contact(app)
    assert queue(app) == [] and not [r for r in netbox.requests if r[0] == "PATCH"]


def test_each_status_change_is_queued_once_and_written_in_order(make_app, netbox):
    app = make_app(**settings(netbox, sot_status_first_contact="staged", sot_status_finished="active",
                              sot_status_failed="failed"))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    netbox.fail("PATCH", "/api/dcim/devices/101/", 502)
    contact(app)  # the drain runs after the reply: the first PATCH fails
    contact(app)  # the same status again: nothing new queued
    rows = queue(app)
    assert [(r.action, r.status, r.attempts) for r in rows] == [("status", "staged", 1)]
    assert "HTTP 502" in rows[0].last_error and rows[0].done_at is None
    assert rows[0].next_try_at >= rows[0].created_at + timedelta(seconds=10)
    assert netbox.devices[101]["status"]["value"] == "planned"

    assert set_state(sessions, "FGL2548HH01", "FINISHED", "test")
    assert writeback.queue_for(sessions, config, "FGL2548HH01")
    assert not writeback.queue_for(sessions, config, "FGL2548HH01")
    done = writeback.drain(sessions, config, now=utcnow() + timedelta(seconds=11))
    assert (done.done, done.superseded, done.failed) == (1, 1, [])  # "staged" is stale: never sent after "active"
    assert netbox.devices[101]["status"]["value"] == "active"
    # the 502 "staged" attempt, then only "active"
    assert [r[3] for r in netbox.requests if r[0] == "PATCH"] == [{"status": "staged"}, {"status": "active"}]
    rows = queue(app)
    assert rows[0].last_error == writeback.SUPERSEDED and all(r.done_at for r in rows)
    assert [e["comments"][:11] for e in netbox.journal] == ["Provisioned"]


def test_failed_device_and_retry_backoff(make_app, netbox):
    app = make_app(**settings(netbox, sot_status_failed="failed"))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    contact(app)
    assert queue(app) == []  # no first-contact status configured
    set_state(sessions, "FGL2548HH01", "ERROR", "test", changes={"last_error_code": "1403",
                                                                 "last_error_message": "Config hash check failed"})
    for _ in range(3):
        netbox.fail("PATCH", "/api/dcim/devices/101/")
    writeback.queue_for(sessions, config, "FGL2548HH01")
    delays, now = [], utcnow()
    for _ in range(3):
        row = queue(app)[0]
        now = row.next_try_at
        assert writeback.drain(sessions, config, now=now).failed
        delays.append((queue(app)[0].next_try_at - now).total_seconds())
    assert delays == [10.0, 20.0, 40.0]  # SOT_RETRY_BACKOFF, doubling
    assert writeback.drain(sessions, config, now=now).done == 0, "not due yet"
    assert writeback.drain(sessions, config, now=queue(app)[0].next_try_at).done == 1
    assert netbox.devices[101]["status"]["value"] == "failed"
    entry = netbox.journal[0]
    assert entry["kind"]["value"] == "danger" and "1403: Config hash check failed" in entry["comments"]


def test_a_claimed_row_is_not_sent_twice(make_app, netbox):
    app = make_app(**settings(netbox, sot_status_first_contact="staged"))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    with sessions() as session, session.begin():
        session.add(SotWriteback(serial_number="FGL2548HH01", source="netbox", sot_id="101", action="status",
                                 status="staged", note="n", created_at=utcnow(), next_try_at=utcnow()))
    now = utcnow()
    first = writeback._claim(sessions, now, 10)
    assert len(first) == 1 and writeback._claim(sessions, now, 10) == []  # another worker gets nothing
    later = now + timedelta(seconds=writeback.CLAIM_SECONDS + 1)  # a worker that died: claim expires
    assert len(writeback._claim(sessions, later, 10)) == 1


def test_an_unreachable_source_is_stored_on_the_row(make_app, netbox):
    app = make_app(**settings(netbox, sot_status_first_contact="staged"))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    netbox.close()
    contact(app)  # provisioning goes on: the device got its job
    row = queue(app)[0]
    assert row.done_at is None and row.attempts == 1 and "setting status 'staged'" in row.last_error
