"""The per-device row lock: everything done to one device is serialised here.

``SELECT … FOR UPDATE`` on MariaDB, ``BEGIN IMMEDIATE`` on SQLite (one writer
at a time across all gunicorn workers). PnP messages, Juniper ZTP fetches and
operator actions all take it, so they never interleave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.storage.fit import fit_value
from app.storage.models import DeviceState


@contextmanager
def device_lock(sessions: sessionmaker[Session], serial: str, defaults: dict | None = None,
                info: dict | None = None) -> Iterator[tuple[Session, DeviceState | None]]:
    """Open a transaction holding the device's row lock; commit on success.

    Yields ``(session, row)``. With ``defaults`` a missing device is created
    (two workers racing to create it: the loser retries and locks the winner's
    row). Without ``defaults`` a missing device yields None. Any exception rolls
    back and propagates. ``serial`` is fitted to its column first (a serial longer
    than ``serial_number`` is keyed by its first characters, app/storage/fit.py), so
    the row is found again; ``info`` goes into ``session.info``.
    """
    serial = fit_value(DeviceState.__table__.c.serial_number, serial)[0]
    for attempt in range(3):
        session = sessions()
        session.info.update(info or {})
        try:
            row = session.scalars(select(DeviceState).where(
                DeviceState.serial_number == serial).with_for_update()).one_or_none()
            if row is None and defaults is not None:
                row = DeviceState(serial_number=serial, **defaults)
                session.add(row)
                session.flush()
        except IntegrityError:
            session.rollback()
            session.close()
            if attempt == 2:
                raise
            continue
        except BaseException:
            session.rollback()
            session.close()
            raise
        try:
            yield session, row
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        return
