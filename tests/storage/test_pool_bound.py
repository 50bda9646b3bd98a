"""The database pool of a worker is bounded (DB_POOL_SIZE + DB_MAX_OVERFLOW): a request that finds
no free connection within DB_POOL_TIMEOUT is answered with a backoff (work-request) or a bye
(work-response), never a 5xx, and nothing is charged to the device. Real MariaDB database of its
own; the pool's connections are held by this test, as the greenlets of a busy gevent worker would.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text

from app.config import validate
from app.storage.db import get_sessions
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice

SN = "FGL2548POOL"



@pytest.mark.mariadb
def test_no_free_connection_within_the_pool_timeout_gets_a_backoff(own_mariadb_url, make_app):
    app = make_app(database_url=own_mariadb_url, db_pool_size=1, db_max_overflow=1, db_pool_timeout=1)
    engine = app.extensions["pnp_engine"]
    client = app.test_client()
    sim = SimulatedDevice("http://127.0.0.1:9", SN)
    answer = client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-1"))
    assert b"cli-config" in answer.data  # the first job, while connections are free
    with app.app_context(), get_sessions()() as s:
        row = s.scalars(select(DeviceState).where(DeviceState.serial_number == SN)).one()
        before = (row.state, row.pending_correlator, row.attempts, row.unknown_outcomes)
    held = [engine.connect(), engine.connect()]  # pool 1 + overflow 1: every connection taken
    try:
        for conn in held:
            conn.execute(text("SELECT 1"))
        assert engine.pool.checkedout() == 2
        started = time.monotonic()
        answer = client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-2"))
        waited = time.monotonic() - started
        assert answer.status_code == 200 and b"<backoff" in answer.data, answer.data
        assert b'correlator="C-2"' in answer.data
        assert 0.9 <= waited < 10, waited  # DB_POOL_TIMEOUT = 1 s, then the answer
        response = sim._response("cli-config", before[1], True)
        answer = client.post("/pnp/WORK-RESPONSE", data=response)
        assert answer.status_code == 200 and b"bye" in answer.data.lower(), answer.data
        assert engine.pool.checkedout() == 2  # never a third connection
    finally:
        for conn in held:
            conn.close()
    with app.app_context(), get_sessions()() as s:
        row = s.scalars(select(DeviceState).where(DeviceState.serial_number == SN)).one()
        after = (row.state, row.pending_correlator, row.attempts, row.unknown_outcomes)
        errors = s.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id,
                                                     DeviceEvent.success.is_(False))).all()
    assert after == before and errors == []  # the device is charged nothing
    # the job is still pending: the device's next work-response is taken as usual
    answer = client.post("/pnp/WORK-RESPONSE", data=sim._response("cli-config", before[1], True))
    assert answer.status_code == 200
    with app.app_context(), get_sessions()() as s:
        row = s.scalars(select(DeviceState).where(DeviceState.serial_number == SN)).one()
        assert (row.state, row.pending_correlator) != before[:2]


def test_more_connections_than_the_database_allows_is_refused_at_start(make_config):
    problems = validate(make_config(workers=8, threads=8, db_max_overflow=10, db_max_connections=150))
    assert any("WORKERS × (DB_POOL_SIZE + DB_MAX_OVERFLOW) = 8 × 20 = 160" in p for p in problems), problems
    assert not any("DB_POOL" in p for p in validate(make_config(workers=4, threads=8)))
    assert not any("DB_POOL" in p for p in validate(make_config(workers=8, db_pool_size=5, db_max_overflow=5)))


@pytest.mark.mariadb
def test_a_connection_killed_between_two_messages_is_not_noticed_by_the_device(own_mariadb_url, make_app):
    """KILL of the worker's pooled connection from another connection, between a job and its
    work-response: the pool's ping before use replaces it, the response is stored as usual (no
    5xx, no lost response, no unknown outcome), and so is the next work-request."""
    from sqlalchemy import create_engine

    app = make_app(database_url=own_mariadb_url, db_pool_size=1, db_max_overflow=0)
    engine = app.extensions["pnp_engine"]
    client = app.test_client()
    sim = SimulatedDevice("http://127.0.0.1:9", SN)
    assert b"cli-config" in client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-1")).data
    with engine.connect() as conn:  # the one pooled connection, the one the messages use
        victim = conn.execute(text("SELECT CONNECTION_ID()")).scalar()
    admin = create_engine(own_mariadb_url)
    with admin.connect() as conn:
        conn.execute(text(f"KILL {int(victim)}"))
    admin.dispose()
    with app.app_context(), get_sessions()() as s:
        pending = s.scalars(select(DeviceState.pending_correlator).where(DeviceState.serial_number == SN)).one()
    answer = client.post("/pnp/WORK-RESPONSE", data=sim._response("cli-config", pending, True))
    assert answer.status_code == 200 and b"bye" in answer.data.lower(), answer.data
    answer = client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-2"))
    assert answer.status_code == 200 and (b"<request" in answer.data or b"<backoff" in answer.data)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT CONNECTION_ID()")).scalar() != victim  # a new connection
    with app.app_context(), get_sessions()() as s:
        row = s.scalars(select(DeviceState).where(DeviceState.serial_number == SN)).one()
        events = s.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)).all()
    assert row.unknown_outcomes == 0 and row.pending_correlator != pending
    assert not [e for e in events if e.error_code == "SERVER_DATABASE" or "could not be stored" in (e.message or "")]
    assert [e for e in events if e.kind == "response" and e.correlator == pending]  # the response is stored
