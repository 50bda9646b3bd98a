"""Migration 0012: the device list's indexes ((state, last_contact), pid, running_version,
inventory template) are created on SQLite and on MariaDB, with the rows kept, and removed
again by a downgrade to 0011."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from app.storage.migrate import alembic_config, upgrade
from tests.helpers import drop_database, scratch_database

INDEX = "ix_device_state_state_last_contact"


def _indexes(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        return {ix["name"]: ix["column_names"] for table in ("device_state", "inventory")
                for ix in inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def _check(url: str) -> None:
    command.upgrade(alembic_config(url), "0011")
    assert INDEX not in _indexes(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO device_state (serial_number, pid, vid, udi, first_seen, last_contact, image_installs, "
            "tarball_transferred, script_transferred, configured, guestshell_checks, state, attempts) VALUES "
            "('FGL0IDX01', 'C1131-8PWB', 'V01', 'PID:C1131-8PWB,SN:FGL0IDX01', '2026-12-01 10:00:00', "
            "'2026-12-01 10:00:00', 0, 0, 0, 0, 0, 'ERROR', 0)"))
    upgrade(url)
    indexes = _indexes(url)
    assert indexes[INDEX] == ["state", "last_contact"]
    assert indexes["ix_device_state_pid"] == ["pid"] and indexes["ix_inventory_template"] == ["template"]
    assert indexes["ix_device_state_running_version"] == ["running_version"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM device_state WHERE serial_number = 'FGL0IDX01'")).all() \
            == [("ERROR",)], "the rows are kept"
    engine.dispose()
    command.downgrade(alembic_config(url), "0011")
    assert not {INDEX, "ix_device_state_pid", "ix_inventory_template"} & set(_indexes(url))
    upgrade(url)
    assert INDEX in _indexes(url)


def test_listing_index_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'pnp.sqlite3'}")


@pytest.mark.mariadb
def test_listing_index_on_mariadb():
    url = scratch_database()
    try:
        _check(url)
    finally:
        drop_database(url)
