"""A database error that is not an outage is logged as what it is, and the response survives.

Real MariaDB databases of their own (a table converted back to latin1, a trigger that
refuses every update): the errors are the server's own DataErrors, nothing is mocked.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine, select, text

from app.storage.db import get_sessions
from app.storage.errors import classify
from app.storage.models import DeviceEvent, DeviceState
from simulator import SimulatedDevice
from tests.helpers import free_port

pytestmark = pytest.mark.mariadb
SN = "FGL2548DERR"



def sql(url: str, statement: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


def state_of(app):
    with app.app_context():
        with get_sessions()() as s:
            row = s.scalars(select(DeviceState).where(DeviceState.serial_number == SN)).one()
            events = s.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)
                               .order_by(DeviceEvent.id)).all()
            return row, events


def first_job(app, sim):
    client = app.test_client()
    assert b"cli-config" in client.post("/pnp/WORK-REQUEST", data=sim.work_request_xml("C-1")).data
    row, _ = state_of(app)
    return client, row.pending_correlator


def test_data_error_is_logged_as_such_and_the_response_is_stored_ascii(own_mariadb_url, make_app, caplog):
    # device_event back in latin1: the "→" of the state line raises DataError 1366
    sql(own_mariadb_url, "ALTER TABLE device_event CONVERT TO CHARACTER SET latin1")
    app = make_app(database_url=own_mariadb_url)
    sim = SimulatedDevice("http://127.0.0.1:9", SN)
    client, correlator = first_job(app, sim)
    caplog.set_level(logging.INFO, "pnp")
    answer = sim._response("cli-config", correlator, True, {"resultEntry": [
        {"@lineNumber": "1", "@cliString": "config-register 0x2102",
         "success": {"@change": "CHANGE", "@mode": "IMMEDIATE"}}]})
    reply = client.post("/pnp/WORK-RESPONSE", data=answer)
    assert reply.status_code == 200 and b"bye" in reply.data
    route = "\n".join(r.getMessage() for r in caplog.records if r.name == "pnp")  # not the webhook thread
    assert "database error, not an outage (data: DataError 1366: Incorrect string value" in route
    assert "database unavailable" not in route
    row, events = state_of(app)
    assert row.state == "SAVE_CONFIG_REGISTER" and row.attempts == 0 and row.pending_correlator is None
    assert any(e.kind == "state" and e.message == "CONFIG_REGISTER \\u2192 SAVE_CONFIG_REGISTER"
               for e in events)


def test_response_that_cannot_be_stored_is_noted_and_not_charged(own_mariadb_url, make_app, caplog):
    app = make_app(database_url=own_mariadb_url)
    sim = SimulatedDevice("http://127.0.0.1:9", SN)
    client, correlator = first_job(app, sim)
    sql(own_mariadb_url, "CREATE TRIGGER refuse BEFORE UPDATE ON device_state FOR EACH ROW "
                 "SIGNAL SQLSTATE '22003' SET MESSAGE_TEXT = 'refused by a test trigger', "
                 "MYSQL_ERRNO = 1264")
    caplog.set_level(logging.INFO, "pnp")
    answer = sim._response("cli-config", correlator, False, error=("PnP Service Error 1401", "x"))
    reply = client.post("/pnp/WORK-RESPONSE", data=answer)
    assert reply.status_code == 200 and b"bye" in reply.data
    route = "\n".join(r.getMessage() for r in caplog.records if r.name == "pnp")  # not the webhook thread
    assert route.count("DataError 1264: refused by a test trigger") == 2
    assert "database error again, not recorded" in route
    assert "database unavailable" not in route
    row, events = state_of(app)
    assert row.pending_correlator == correlator and row.attempts == 0 and row.last_error_code is None
    note = events[-1]
    assert note.kind == "error" and note.error_code == "SERVER_DATABASE"
    assert note.message.startswith(f"work-response cli-config ({correlator}, PnP Service Error 1401) "
                                   "could not be stored: data: DataError 1264")
    assert note.message.endswith("the job stays pending, its outcome unknown")


def test_only_an_outage_is_database_unavailable(make_config, own_mariadb_url):
    from sqlalchemy.exc import SQLAlchemyError

    down = create_engine(f"mysql+pymysql://root@127.0.0.1:{free_port()}/pnp")
    with pytest.raises(SQLAlchemyError) as refused:
        down.connect()
    assert classify(refused.value).outage and classify(refused.value).code == 2003
    engine = create_engine(own_mariadb_url)
    with engine.connect() as conn:
        with pytest.raises(SQLAlchemyError) as too_long:
            conn.execute(text("INSERT INTO device_event (device_id, at, kind, message) "
                              "VALUES (1, NOW(), :k, 'x')"), {"k": "k" * 40})
        with pytest.raises(SQLAlchemyError) as missing:
            conn.execute(text("SELECT nope FROM device_state"))
    engine.dispose()
    assert (classify(too_long.value).kind, classify(too_long.value).code) == ("data", 1406)
    assert not classify(too_long.value).outage
    assert classify(missing.value).kind == "schema"
