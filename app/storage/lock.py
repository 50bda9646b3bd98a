"""The per-device row lock: everything done to one device is serialised here.

``SELECT … FOR UPDATE`` on MariaDB, ``BEGIN IMMEDIATE`` on SQLite (one writer
at a time across all gunicorn workers). PnP messages, Juniper ZTP fetches and
operator actions all take it, so they never interleave.

On a MariaDB Galera cluster the row lock is local to one node: a conflicting
write on another node fails at COMMIT with error 1213 (certification failure),
and a node or the load balancer may drop the connection mid-transaction.
:func:`locked` runs a whole unit of work under the lock and runs it again from a
fresh read of the row on such errors (docs/scale-out.md).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from app.storage.fit import fit_value, fit_values
from app.storage.models import DeviceState

log = logging.getLogger("pnp.storage")
T = TypeVar("T")


class LockedRow:
    """The locked ``device_state`` row read with SQLAlchemy Core (no ORM identity map, no
    unit of work): every column is an attribute, ``row.state``, ``row.id``… ; ``created`` is
    True when this transaction inserted it (its ``first_seen`` as read back is cut to what
    the column stores, whole seconds on MariaDB, so it cannot be compared with the clock).

    The PnP hot path (app/pnp/service.py) reads it, writes its changes with a Core
    ``UPDATE`` and sets them here with ``setattr`` (a plain attribute: nothing is flushed).
    :meth:`attach` hands out an ORM ``DeviceState`` for the same row, without a statement,
    for the changes that go through the ORM flush and its hooks.
    """

    def __init__(self, values, created: bool = False) -> None:
        self.__dict__.update(values)
        self.__dict__["_orm"] = None
        self.created = created  # True when this transaction inserted the row

    def attach(self, session: Session) -> DeviceState:
        """A persistent ORM ``DeviceState`` of this row in ``session`` with these values as
        committed (``make_transient_to_detached``; no SELECT): attributes set on it are
        flushed as an ``UPDATE`` of what changed, through the session's flush hooks. The
        same object on every call."""
        if self._orm is None:
            obj = DeviceState(**{c.key: self.__dict__[c.key] for c in DeviceState.__table__.columns})
            make_transient_to_detached(obj)
            session.add(obj)
            self.__dict__["_orm"] = obj
        return self._orm


def _read_locked(session: Session, serial: str, defaults: dict | None, core: bool):
    """The row of ``serial`` locked (``SELECT … FOR UPDATE``), created first from ``defaults``
    when missing; an ORM DeviceState, or a :class:`LockedRow` with ``core``. None when missing
    and no ``defaults``. Raises IntegrityError when another transaction created it first."""
    if not core:
        row = session.scalars(select(DeviceState).where(
            DeviceState.serial_number == serial).with_for_update()).one_or_none()
        if row is None and defaults is not None:
            row = DeviceState(serial_number=serial, **defaults)
            session.add(row)
            session.flush()
        return row
    table = DeviceState.__table__
    query = select(table).where(table.c.serial_number == serial).with_for_update()
    found = session.execute(query).mappings().one_or_none()
    if found is None and defaults is not None:
        # fitted as an ORM flush would (a value cut here is cut again, and recorded as a
        # clamped history line, by the caller's write of the same identity columns)
        values, _ = fit_values(table, {**defaults, "serial_number": serial},
                               bool(session.info.get("fit_ascii")))
        session.execute(insert(table).values(**values))
        return LockedRow(session.execute(query).mappings().one(), created=True)  # with the column defaults
    return None if found is None else LockedRow(found)


@contextmanager
def device_lock(sessions: sessionmaker[Session], serial: str, defaults: dict | None = None,
                info: dict | None = None, *, core: bool = False,
                ) -> Iterator[tuple[Session, DeviceState | LockedRow | None]]:
    """Open a transaction holding the device's row lock; commit on success.

    Yields ``(session, row)``. With ``defaults`` a missing device is created
    (two workers racing to create it: the loser retries and locks the winner's
    row). Without ``defaults`` a missing device yields None. Any exception rolls
    back and propagates. ``serial`` is fitted to its column first (a serial longer
    than ``serial_number`` is keyed by its first characters, app/storage/fit.py), so
    the row is found again; ``info`` goes into ``session.info``. With ``core`` the row is
    read (and created) with Core and yielded as a :class:`LockedRow`, else as an ORM
    DeviceState.
    """
    serial = fit_value(DeviceState.__table__.c.serial_number, serial)[0]
    for attempt in range(3):
        session = sessions()
        session.info.update(info or {})
        try:
            row = _read_locked(session, serial, defaults, core)
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


#: MariaDB/Galera error codes after which the whole unit of work is run again:
#: 1213 deadlock or Galera certification failure ("try restarting transaction"),
#: 1047 node not ready (not Primary/Synced), 1927 connection killed,
#: 2003/2006/2013/2055 connection refused or lost (a node or HAProxy went away).
RETRY_CODES = frozenset({1213, 1047, 1927, 2003, 2006, 2013, 2055})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast :func:`locked` runs a unit of work again.

    ``attempts`` runs in all (the first included); before attempt n+1 it sleeps a
    random time in ``[0, base_delay * 2**(n-1)]`` seconds (full jitter), at most
    ``max_delay``.
    """

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 1.0

    def delay(self, attempt: int) -> float:
        """Seconds to sleep after failed attempt ``attempt`` (1-based)."""
        return random.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def retryable(exc: BaseException) -> bool:
    """True for a database error after which the transaction may simply be run again:
    a deadlock / certification failure, a node not ready, or a lost connection."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    args = getattr(exc, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in RETRY_CODES


def locked(sessions: sessionmaker[Session], serial: str, unit: Callable[[Session, DeviceState | None], T],
           defaults: dict | None = None, *, landed: Callable[[DeviceState, T], bool] | None = None,
           policy: RetryPolicy = RetryPolicy(), info: dict | None = None, core: bool = False) -> T:
    """Run ``unit(session, row)`` under :func:`device_lock` and commit; run it again on a
    :func:`retryable` error (bounded, with jitter) and return its result once committed.

    Every attempt is a new transaction that re-reads and re-locks the row, so the
    decision is recomputed from what is committed; ``unit`` must therefore only
    compute from the session and row it is given. The result is returned only
    after its COMMIT succeeded: a caller never sends a reply whose state was not
    stored. When a connection is lost at COMMIT the commit may or may not have
    happened; ``landed(row, previous_result)`` is asked on the re-read row at the
    next attempt and, when it answers True (the row shows the previous attempt's
    write), that result is returned as is instead of deciding a second time (no
    second, different job for one request). ``info`` and ``core`` (the row as a
    :class:`LockedRow`) as in :func:`device_lock`. Galera reports a conflicting write
    of another node at COMMIT as error 1213 (certification failure).

    Raises the last error when every attempt failed, any other error at once.
    """
    previous: list[T] = []
    for attempt in range(1, policy.attempts + 1):
        computed: list[T] = []
        try:
            with device_lock(sessions, serial, defaults, info=info, core=core) as (session, row):
                if previous and landed is not None and row is not None and landed(row, previous[-1]):
                    log.warning("%s: the previous attempt was committed; its result is used", serial)
                    return previous[-1]
                computed.append(unit(session, row))
            return computed[0]
        except DBAPIError as exc:
            if not retryable(exc) or attempt == policy.attempts:
                raise
            previous[:] = computed or previous
            delay = policy.delay(attempt)
            log.warning("%s: attempt %d failed (%s); again in %.0f ms", serial, attempt,
                        str(exc.orig or exc).splitlines()[0][:200], delay * 1000)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
