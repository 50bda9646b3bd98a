"""The storage layer on a real three-node MariaDB Galera cluster (the ``galera`` fixture).

Galera differs from one server in the three ways these tests provoke for real:

* row locks are local to a node: a conflicting write committed on another node
  aborts ours at COMMIT with error 1213 (certification failure / brute-force
  abort) — app.storage.lock.locked runs the unit again from the re-read row;
* a connection can die mid-transaction (KILL here; a node or HAProxy lost in
  production) — run again as well, and a lost COMMIT that did land is not
  decided a second time;
* a node applies other nodes' commits asynchronously: with ``wsrep_sync_wait``
  (app.storage.db.make_engine) a read waits for them;

and migrations: one instance migrates at a time (app.storage.migrate.migration_lock)
and every table has a primary key.
"""

from __future__ import annotations

import threading
import time
import uuid

import pymysql
import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError

from app.storage.db import make_engine, make_sessionmaker
from app.storage.lock import RetryPolicy, locked
from app.storage.migrate import migration_lock, upgrade

pytestmark = pytest.mark.galera


@pytest.fixture(scope="module")
def galera_db(galera):
    """A migrated database on the cluster: ``(name, [url of node 1, 2, 3])``."""
    name = f"pnp_g_{uuid.uuid4().hex[:8]}"
    galera.create_database(name)
    urls = [node.url(name) for node in galera.nodes]
    upgrade(urls[0])
    return name, urls


@pytest.fixture
def node_sessions(galera_db):
    """``sessions(i, **engine_kw)``: a session factory on node ``i``; engines disposed after."""
    engines = []

    def make(index: int, **kw):
        engine = make_engine(galera_db[1][index], **kw)
        engines.append(engine)
        return make_sessionmaker(engine)
    yield make
    for engine in engines:
        engine.dispose()


def _device(sessions, serial: str) -> None:
    from app.storage.db import utcnow

    now = utcnow()
    locked(sessions, serial, lambda s, row: None,
           {"first_seen": now, "last_contact": now, "state": "NEW", "attempts": 0})


def _attempts(url: str, serial: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
        value = conn.execute(text("SELECT attempts FROM device_state WHERE serial_number = :s"),
                             {"s": serial}).scalar_one()
    engine.dispose()
    return value


def test_cluster_is_three_synced_utf8mb4_nodes(galera, galera_db):
    assert galera.size() == 3
    for node in galera.nodes:
        status = node.status()
        assert status["wsrep_local_state_comment"] == "Synced" and status["wsrep_ready"] == "ON"
        assert node.execute("SELECT @@character_set_server")[0][0] == "utf8mb4"
        assert node.execute("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
                            "WHERE SCHEMA_NAME = %s", galera_db[0])[0][0] == "utf8mb4"


def test_every_table_has_a_primary_key(galera, galera_db):
    """Galera replicates row events by primary key: a table without one is unsafe."""
    without = galera.nodes[2].execute(
        "SELECT t.TABLE_NAME FROM information_schema.TABLES t LEFT JOIN information_schema.TABLE_CONSTRAINTS c "
        "ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY' "
        "WHERE t.TABLE_SCHEMA = %s AND c.CONSTRAINT_NAME IS NULL", galera_db[0])
    tables = {r[0] for r in galera.nodes[2].execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", galera_db[0])}
    assert {"device_state", "device_event", "alembic_version", "pnp_migration_lock"} <= tables
    assert without == []


def test_certification_failure_is_run_again_from_the_reread_row(galera, galera_db, node_sessions):
    """Node 2 commits a write to the row node 1 holds locked: node 1's COMMIT fails with 1213,
    and the second attempt decides from node 2's value."""
    serial = f"CERT{uuid.uuid4().hex[:6]}"
    sessions = node_sessions(0)
    _device(sessions, serial)
    seen = []

    def unit(session, row):
        seen.append(row.attempts)
        if len(seen) == 1:  # another instance on another node wins the race
            galera.nodes[1].execute("UPDATE device_state SET attempts = 100 WHERE serial_number = %s", serial,
                                     database=galera_db[0])
        row.attempts += 1
        return row.attempts

    assert locked(sessions, serial, unit) == 101
    assert seen == [0, 100], "the retry re-read the row node 2 committed"
    assert _attempts(galera_db[1][2], serial) == 101


def test_certification_failure_without_retry_is_error_1213(galera, galera_db, node_sessions):
    """The failure the retry exists for is real: with one attempt the 1213 reaches the caller
    and nothing of the aborted unit is stored."""
    serial = f"CERT{uuid.uuid4().hex[:6]}"
    sessions = node_sessions(0)
    _device(sessions, serial)

    def unit(session, row):
        galera.nodes[1].execute("UPDATE device_state SET attempts = 7 WHERE serial_number = %s", serial,
                                 database=galera_db[0])
        row.attempts = 1000

    with pytest.raises(OperationalError) as err:
        locked(sessions, serial, unit, policy=RetryPolicy(attempts=1))
    assert err.value.orig.args[0] == 1213
    assert _attempts(galera_db[1][2], serial) == 7


def test_connection_killed_mid_transaction_is_run_again(galera, galera_db, node_sessions):
    serial = f"KILL{uuid.uuid4().hex[:6]}"
    sessions = node_sessions(0)
    _device(sessions, serial)
    calls = []

    def unit(session, row):
        calls.append(row.attempts)
        if len(calls) == 1:
            cid = session.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            galera.nodes[0].execute(f"KILL CONNECTION {int(cid)}")
        row.attempts += 5
        session.flush()  # the dead connection shows here, before COMMIT
        return row.attempts

    assert locked(sessions, serial, unit) == 5
    assert calls == [0, 0], "the killed attempt stored nothing; the second one started from the row"
    assert _attempts(galera_db[1][1], serial) == 5


def test_a_lost_commit_that_landed_sends_the_same_job_once(galera, galera_db, node_sessions, make_config):
    """The connection drops right after COMMIT (simulated: the driver raises its 2013 after
    the real COMMIT returned): the re-read row shows the job pending, so the same job is
    answered, not a second decision."""
    from app.pnp import protocol as p
    from app.pnp import service
    from simulator import SimulatedDevice

    sessions = node_sessions(0)
    config = make_config(database_url=galera_db[1][0])
    serial = f"FGL{uuid.uuid4().hex[:8].upper()}"
    xml = SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml("CiscoPnP-1.0-R1-I1-P1-T1-2")
    wr = p.parse_work_request(xml.encode())
    fired = []

    def lose_connection_after_commit(dbapi_conn, _record):
        real_commit = dbapi_conn.commit

        def commit():
            real_commit()
            if not fired:
                fired.append(True)
                raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
        dbapi_conn.commit = commit

    event.listen(sessions.kw["bind"], "connect", lose_connection_after_commit)
    reply = service.work_request(sessions, config, wr, xml.encode(), "127.0.0.1")
    assert fired and reply.service not in ("", "backoff")
    assert 'correlator="CiscoPnP-1.0-R1-I1-P1-T1-2"' in reply.xml
    jobs = galera.nodes[2].execute(
        "SELECT e.service, e.correlator FROM device_event e JOIN device_state s ON s.id = e.device_id "
        "WHERE s.serial_number = %s AND e.kind = 'job'", serial, database=galera_db[0])
    assert jobs == [(reply.service, "CiscoPnP-1.0-R1-I1-P1-T1-2")], "one job, stored once"


def test_wsrep_sync_wait_makes_a_read_see_another_nodes_commit(galera, galera_db, node_sessions):
    """Node 3's applier is paused (FLUSH TABLES WITH READ LOCK desyncs it): a plain read there
    sees the old row, a read with wsrep_sync_wait = 1 waits until the commit is applied."""
    serial = f"SYNC{uuid.uuid4().hex[:6]}"
    _device(node_sessions(0), serial)
    node3 = galera.nodes[2]
    node3.wait_synced()
    while _attempts(galera_db[1][2], serial) != 0:
        time.sleep(0.1)
    pause = pymysql.connect(host="127.0.0.1", port=node3.port, user="root", autocommit=True)
    plain = make_engine(galera_db[1][2])
    causal = make_engine(galera_db[1][2], wsrep_sync_wait=1)
    query = text("SELECT attempts FROM device_state WHERE serial_number = :s")
    try:
        with pause.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
        galera.nodes[0].execute("UPDATE device_state SET attempts = 42 WHERE serial_number = %s", serial,
                                database=galera_db[0])
        with plain.connect() as conn:
            assert conn.execute(query, {"s": serial}).scalar_one() == 0, "node 3 is behind"
        seen = []
        reader = threading.Thread(target=lambda: seen.append(
            causal.connect().execute(query, {"s": serial}).scalar_one()))
        reader.start()
        reader.join(1.5)
        assert reader.is_alive() and not seen, "the causal read waits for node 3 to catch up"
        with pause.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        reader.join(30)
        assert seen == [42]
    finally:
        pause.close()
        plain.dispose()
        causal.dispose()
    assert inspect(causal).dialect.name == "mysql"


def test_instances_migrate_one_at_a_time(galera):
    """An instance starting while another migrates waits for the lock, then finds the schema
    at head; three instances on three nodes starting together all succeed."""
    name = f"pnp_m_{uuid.uuid4().hex[:8]}"
    galera.create_database(name)
    urls = [node.url(name) for node in galera.nodes]
    holder = create_engine(urls[0])
    done, errors = [], []
    with migration_lock(holder, wait=5) as owner:
        assert owner
        waiting = threading.Thread(target=lambda: (upgrade(urls[1], wait=60), done.append(time.monotonic())))
        waiting.start()
        time.sleep(2.0)
        assert waiting.is_alive() and not done, "the second instance waits on another node"
        assert not galera.nodes[1].execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'alembic_version'",
            name)
        released = time.monotonic()
    waiting.join(120)
    assert done and done[0] >= released
    holder.dispose()

    def run(url):
        try:
            upgrade(url, wait=120)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    fresh = f"pnp_m_{uuid.uuid4().hex[:8]}"
    galera.create_database(fresh)
    threads = [threading.Thread(target=run, args=(node.url(fresh),)) for node in galera.nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    from alembic.script import ScriptDirectory

    from app.storage.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(urls[0])).get_current_head()
    for node in galera.nodes:
        assert node.execute(f"SELECT version_num FROM `{fresh}`.alembic_version") == [(head,)]
        assert node.execute(f"SELECT COUNT(*) FROM `{fresh}`.pnp_migration_lock") == [(0,)]


def test_a_stale_migration_lock_is_taken_over(galera):
    """A lock row left by an instance that died while migrating does not block forever."""
    name = f"pnp_m_{uuid.uuid4().hex[:8]}"
    galera.create_database(name)
    node = galera.nodes[0]
    node.execute(f"CREATE TABLE `{name}`.pnp_migration_lock (id INTEGER NOT NULL PRIMARY KEY, "
                 "owner VARCHAR(128) NOT NULL, since DATETIME NOT NULL)")
    node.execute(f"INSERT INTO `{name}`.pnp_migration_lock VALUES "
                 "(1, 'dead-host:1', UTC_TIMESTAMP() - INTERVAL 2 HOUR)")
    upgrade(node.url(name), wait=30)
    assert node.execute(f"SELECT COUNT(*) FROM `{name}`.device_state") == [(0,)]
    assert node.execute(f"SELECT COUNT(*) FROM `{name}`.pnp_migration_lock") == [(0,)]
