"""utf8mb4 on MariaDB: migration 0006 converts latin1 tables, run.py refuses a schema that
cannot store its text, the connection speaks utf8mb4.

Real MariaDB databases created with ``CHARACTER SET latin1`` (what ``CREATE DATABASE pnp;``
gives on a server whose default is latin1, upstream MariaDB before 11.6).
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from app.storage.charset import non_utf8mb4_tables, schema_problem
from app.storage.db import make_engine, with_charset
from app.storage.migrate import alembic_config, upgrade
from tests.helpers import ServerProcess, drop_database, free_port, scratch_database

pytestmark = pytest.mark.mariadb


@pytest.fixture
def latin1_url():
    url = scratch_database("latin1")
    yield url
    drop_database(url)


def charsets(url: str) -> dict[str, str]:
    """``{table.column: character set}`` of every text column, plus the database default."""
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {f"{t}.{c}": cs for t, c, cs in conn.execute(text(
            "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL"))}
        out["(database)"] = conn.execute(text(
            "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = DATABASE()")).scalar()
    engine.dispose()
    return out


def test_migration_converts_latin1_tables_and_keeps_their_rows(latin1_url):
    command.upgrade(alembic_config(latin1_url), "0004")  # the schema before utf8mb4
    before = charsets(latin1_url)
    assert before["device_state.hostname"] == "latin1" and before["device_event.message"] == "latin1"
    engine = create_engine(latin1_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO device_state (serial_number, vendor, pid, vid, udi, hostname, "
                          "first_seen, last_contact, image_installs, tarball_transferred, "
                          "script_transferred, configured, guestshell_checks, state, attempts) "
                          "VALUES ('FGL1', 'cisco', 'C1131', 'V01', 'PID:C1131,VID:V01,SN:FGL1', "
                          "'Zürich-1', NOW(), NOW(), 0, 0, 0, 0, 0, 'CONFIG_REGISTER', 0)"))
        device_id = conn.execute(text("SELECT id FROM device_state")).scalar()
        with pytest.raises(Exception, match="1366"):  # latin1 cannot hold the arrow
            conn.execute(text("INSERT INTO device_event (device_id, at, kind, message) "
                              "VALUES (:d, NOW(), 'state', 'A → B')"), {"d": device_id})
    assert schema_problem(latin1_url) is not None

    upgrade(latin1_url)
    after = charsets(latin1_url)
    assert set(after.values()) == {"utf8mb4"}, after
    with engine.begin() as conn:
        assert conn.execute(text("SELECT hostname FROM device_state")).scalar() == "Zürich-1"
        conn.execute(text("INSERT INTO device_event (device_id, at, kind, message) "
                          "VALUES (:d, NOW(), 'state', 'A → B 🙂')"), {"d": device_id})
        assert conn.execute(text("SELECT message FROM device_event")).scalar() == "A → B 🙂"
    engine.dispose()
    assert schema_problem(latin1_url) is None
    upgrade(latin1_url)  # idempotent: nothing left to convert


def test_run_py_refuses_a_table_that_cannot_store_its_text(latin1_url, lab):
    upgrade(latin1_url)
    engine = create_engine(latin1_url)
    with engine.begin() as conn:  # e.g. restored from a latin1 dump after the migration
        conn.execute(text("ALTER TABLE device_event CONVERT TO CHARACTER SET latin1"))
        assert non_utf8mb4_tables(conn) == {"device_event": [
            "(table default latin1)", "kind latin1", "service latin1", "correlator latin1",
            "error_code latin1", "message latin1", "raw_xml latin1"]}
    engine.dispose()
    server = ServerProcess(lab, free_port(), latin1_url)
    server.start(timeout=60, expect_exit=True)
    assert server.proc.wait(30) == 2
    lines = server.output().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("pnp-server: cannot start: database ")
    assert "table device_event cannot store the text the server writes" in lines[0]
    assert "(table default latin1), kind latin1" in lines[0]
    assert "fix: ALTER TABLE `device_event` CONVERT TO CHARACTER SET utf8mb4" in lines[0]


def test_a_fresh_latin1_database_is_converted_at_start(latin1_url, lab):
    """``CREATE DATABASE pnp;`` on a latin1 server: run.py migrates, converts and starts."""
    server = ServerProcess(lab, free_port(), latin1_url)
    server.start(timeout=60)
    try:
        assert set(charsets(latin1_url).values()) == {"utf8mb4"}
    finally:
        server.stop()


def test_connection_asks_for_utf8mb4(mariadb_url):
    assert with_charset(mariadb_url).endswith("?charset=utf8mb4")
    engine = make_engine(mariadb_url, pool_size=1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT @@character_set_connection")).scalar() == "utf8mb4"
    engine.dispose()
    assert schema_problem(mariadb_url + "?charset=latin1") == (
        "the connection speaks latin1, not utf8mb4: remove the charset from DATABASE_URL "
        "or set charset=utf8mb4")


def test_sqlite_needs_no_check(tmp_path):
    assert schema_problem(f"sqlite:///{tmp_path / 'x.sqlite3'}") is None
