"""Both MySQL drivers: mysqlclient (``mysql+mysqldb://``, C) and PyMySQL (``mysql+pymysql://``).

Real MariaDB, real server process (run.py under gunicorn) for the workflow end to end. The
driver choice (app/storage/db.py resolve_driver), utf8mb4 and no TLS on loopback are checked on
live connections; the retry and error classification are checked with MySQLdb's own exceptions.
"""

from __future__ import annotations

import MySQLdb
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.storage import db as storage_db
from app.storage.db import driver_of, make_engine, resolve_driver
from app.storage.errors import classify
from app.storage.lock import retryable
from simulator import SimulatedDevice
from tests.helpers import assert_finished, drive


def _with_driver(url: str, driver: str) -> str:
    return make_url(url).set(drivername=f"mysql+{driver}").render_as_string(hide_password=False)


def test_a_url_without_driver_gets_mysqlclient_when_installed():
    assert resolve_driver("mysql://pnp@127.0.0.1/pnp") == "mysql+mysqldb://pnp@127.0.0.1/pnp"
    assert resolve_driver("mariadb://pnp@db/pnp") == "mariadb+mysqldb://pnp@db/pnp"
    assert driver_of(resolve_driver("mysql://pnp@127.0.0.1/pnp")) == "mysqldb"


@pytest.mark.mariadb
def test_a_gevent_worker_gets_the_cooperative_driver(make_config, mariadb_url):
    assert resolve_driver("mysql://pnp@127.0.0.1/pnp", in_gevent=True) == "mysql+pymysql://pnp@127.0.0.1/pnp"
    assert resolve_driver("mysql+mysqldb://pnp@127.0.0.1/pnp", in_gevent=True) == "mysql+mysqldb://pnp@127.0.0.1/pnp"
    from app import create_app

    bare = make_url(mariadb_url).set(drivername="mysql").render_as_string(hide_password=False)
    for worker_class, driver in (("gevent", "pymysql"), ("gthread", "mysqldb")):
        app = create_app(make_config(worker_class=worker_class, database_url=bare), migrate=True)
        assert app.extensions["pnp_engine"].dialect.driver == driver, worker_class
        app.extensions["pnp_engine"].dispose()


def test_mysqlclient_named_with_gevent_workers_is_refused_at_start(make_config):
    from app.config import validate

    problems = validate(make_config(worker_class="gevent", database_url="mysql+mysqldb://pnp@127.0.0.1/pnp"))
    assert any("blocks gevent workers" in p for p in problems), problems
    for fine in (make_config(worker_class="gthread", database_url="mysql+mysqldb://pnp@127.0.0.1/pnp"),
                 make_config(worker_class="gevent", database_url="mysql://pnp@127.0.0.1/pnp")):
        assert not any("gevent" in p for p in validate(fine))


def test_a_named_driver_is_kept_and_pymysql_is_the_fallback(monkeypatch):
    assert resolve_driver("mysql+pymysql://pnp@127.0.0.1/pnp") == "mysql+pymysql://pnp@127.0.0.1/pnp"
    assert resolve_driver("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.setattr(storage_db, "mysqldb_available", lambda: False)  # mysqlclient not built
    assert resolve_driver("mysql://pnp@127.0.0.1/pnp") == "mysql+pymysql://pnp@127.0.0.1/pnp"


@pytest.mark.mariadb
@pytest.mark.parametrize("driver", ["mysqldb", "pymysql"])
def test_each_driver_speaks_utf8mb4_without_tls_on_loopback(mariadb_url, driver):
    engine = make_engine(_with_driver(mariadb_url, driver), pool_size=2)
    try:
        assert engine.dialect.driver == driver
        with engine.connect() as conn:
            assert conn.execute(text("SELECT @@character_set_connection")).scalar() == "utf8mb4"
            cipher = conn.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()[1]
            assert cipher == ""
            snowman = conn.execute(text("SELECT :s"), {"s": "☃ 𝄞"}).scalar()
            assert snowman == "☃ 𝄞"
    finally:
        engine.dispose()


@pytest.mark.mariadb
def test_mysqldb_errors_are_classified_and_retried(mariadb_url):
    engine = make_engine(_with_driver(mariadb_url, "mysqldb"), pool_size=1)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as raised:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert classify(raised.value).kind == "schema" and classify(raised.value).code == 1146
        assert not retryable(raised.value)
    finally:
        engine.dispose()
    lost = OperationalError("SELECT 1", {}, MySQLdb.OperationalError(2013, "Lost connection"))
    deadlock = OperationalError("SELECT 1", {}, MySQLdb.OperationalError(1213, "Deadlock found"))
    assert retryable(lost) and retryable(deadlock)
    assert classify(lost).outage and classify(deadlock).kind == "contention"


@pytest.mark.mariadb
def test_workflow_end_to_end_through_mysqlclient(start_server, mariadb_url):
    url = _with_driver(mariadb_url, "mysqldb")
    server = start_server(url, WORKER_CLASS="gthread")  # mysqlclient blocks gevent workers
    devices = [SimulatedDevice(server.url, f"FDO2MYSQLDB{i}", reload_seconds=0.2, time_scale=0.0,
                               max_sleep=0.0) for i in range(3)]
    results = drive(devices, timeout=120)
    assert_finished(server.url, url, devices, results)
    engine = create_engine(url)
    with engine.connect() as conn:
        kinds = {r[0] for r in conn.execute(text(
            "SELECT DISTINCT e.kind FROM device_event e JOIN device_state d ON d.id = e.device_id "
            "WHERE d.serial_number LIKE 'FDO2MYSQLDB%'"))}
    engine.dispose()
    assert {"job", "response"} <= kinds
