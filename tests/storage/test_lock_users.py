"""Every writer of a device row runs as one unit of work under app.storage.lock.locked, so a
Galera certification failure (error 1213 at COMMIT) or a lost connection runs it again from a
fresh read instead of failing: Juniper ZTP fetch records and the operator's claim and delete.

The 1213 is raised by a ``before_commit`` listener (SQLite has no certification); the database,
the row lock and the code under test are real. The real cluster: tests/storage/test_galera.py.
"""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from app.ops import actions
from app.storage.db import get_sessions, utcnow
from app.storage.lock import locked
from app.storage.models import DeviceEvent, DeviceState, InventoryItem
from app.ztp import service as ztp
from app.ztp.juniper import FetchRequest

MAC = "02:00:00:00:00:42"
REQ = FetchRequest(mode="conf", vci="Juniper-ex4300-48p", model="ex4300-48p", serial=None, mac=MAC)


@pytest.fixture
def sessions(app):
    with app.app_context():
        return get_sessions()


@pytest.fixture
def certification_failures(sessions):
    """``fail(n)``: the next ``n`` COMMITs fail as a Galera node's certification failure does."""
    left = [0]

    def before_commit(session):
        if left[0] > 0:
            left[0] -= 1
            raise OperationalError("COMMIT", {}, pymysql.err.OperationalError(
                1213, "Deadlock found when trying to get lock; try restarting transaction"))

    event.listen(sessions, "before_commit", before_commit)
    yield lambda n: left.__setitem__(0, n)
    event.remove(sessions, "before_commit", before_commit)
    assert left[0] == 0, "not every injected failure was met"


def _events(sessions, kind=None):
    with sessions() as session:
        query = select(func.count()).select_from(DeviceEvent)
        if kind:
            query = query.where(DeviceEvent.kind == kind)
        return session.scalar(query)


def test_a_ztp_fetch_record_survives_a_certification_failure(sessions, certification_failures):
    certification_failures(2)
    ztp.record_fetch(sessions, REQ, "127.0.0.9", served="config sw-01.conf")
    certification_failures(1)
    ztp.record_transfer(sessions, REQ, what="config", sent=120, size=120, complete=True, needs_image=False)
    with sessions() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == MAC)).one()
        assert row.configured and row.state == ztp.DONE
    assert _events(sessions, "fetch") == 2  # one each: the failed attempts left nothing


def test_claim_and_delete_survive_a_certification_failure(sessions, certification_failures):
    now = utcnow()
    locked(sessions, "FCZ1", lambda s, r: None, {"first_seen": now, "last_contact": now, "state": "NEW"})
    certification_failures(1)
    assert actions.claim(sessions, "FCZ1", actor="alice") is True
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(InventoryItem)
                              .where(InventoryItem.serial_number == "FCZ1")) == 1
    certification_failures(1)
    actions.delete_device(sessions, "FCZ1", actor="alice")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeviceState)) == 0
