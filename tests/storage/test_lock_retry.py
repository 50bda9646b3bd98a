"""app.storage.lock.locked on the embedded SQLite database: what is retried, how often, and
that nothing of a failed attempt is stored. (The real Galera failures: tests/storage/test_galera.py.)

The retryable errors here are the driver's exceptions raised by the unit itself (SQLite has
no certification failure); every other part is real."""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.storage.db import get_sessions, utcnow
from app.storage.lock import RetryPolicy, locked, retryable
from app.storage.models import DeviceState

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)


def _mysql_error(code: int) -> OperationalError:
    return OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, "from the test"))


@pytest.mark.parametrize(("code", "expected"), [(1213, True), (1047, True), (2006, True), (2013, True),
                                                 (1205, False), (1062, False), (1146, False)])
def test_which_errors_are_retried(code, expected):
    assert retryable(_mysql_error(code)) is expected


def test_delay_is_bounded_full_jitter():
    policy = RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.3)
    for attempt in range(1, 6):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= min(0.3, 0.05 * 2 ** (attempt - 1))


def _new(app, serial):
    now = utcnow()
    with app.app_context():
        sessions = get_sessions()
    locked(sessions, serial, lambda s, r: None, {"first_seen": now, "last_contact": now, "state": "NEW"})
    return sessions


def _attempts(sessions, serial):
    with sessions() as session:
        return session.scalars(select(DeviceState.attempts).where(DeviceState.serial_number == serial)).one()


def test_a_deadlock_is_run_again_and_the_failed_attempt_left_nothing(app):
    sessions = _new(app, "SN1")
    calls = []

    def unit(session, row):
        calls.append(row.attempts)
        row.attempts = (row.attempts or 0) + 1
        session.flush()
        if len(calls) < 3:
            raise _mysql_error(1213)
        return row.attempts

    assert locked(sessions, "SN1", unit, policy=FAST) == 1
    assert calls == [0, 0, 0]
    assert _attempts(sessions, "SN1") == 1


def test_attempts_are_bounded_then_the_error_propagates(app):
    sessions = _new(app, "SN2")
    calls = []

    def unit(session, row):
        calls.append(1)
        row.attempts = 99
        raise _mysql_error(1213)

    with pytest.raises(OperationalError):
        locked(sessions, "SN2", unit, policy=FAST)
    assert len(calls) == 3 and _attempts(sessions, "SN2") == 0


def test_other_errors_are_not_retried(app):
    sessions = _new(app, "SN3")
    calls = []

    def unit(session, row):
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate"))

    with pytest.raises(IntegrityError):
        locked(sessions, "SN3", unit, policy=FAST)
    with pytest.raises(ValueError):
        locked(sessions, "SN3", lambda s, r: (_ for _ in ()).throw(ValueError("bad")), policy=FAST)
    assert calls == [1]
