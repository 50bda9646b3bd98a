"""Engine, sessions, migrations and the per-device row lock.

One pooled engine per process (``pool_pre_ping`` so a restarted MariaDB is
reconnected transparently). ``device_lock()`` serialises everything done to
one device: ``SELECT … FOR UPDATE`` on MariaDB, ``BEGIN IMMEDIATE`` on SQLite
(one writer at a time across all gunicorn workers). Migrations are Alembic's
(``migrations/``), applied by ``upgrade()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models import DeviceState

LOOPBACK = ("127.0.0.1", "::1", "localhost", None)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def utcnow() -> datetime:
    """Naive UTC now, the form every DateTime column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """A pooled engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE.

    ``pool_size`` is the number of MariaDB connections kept open per process:
    give it the worker's thread count so that a busy worker never opens and
    closes connections per request (each PyMySQL connect builds a TLS context
    and logs in: measured at ~40 % of the worker's time, see BENCHMARKS.md).
    A MariaDB on loopback (127.0.0.1, ::1, localhost) is reached without TLS
    unless the URL asks for ssl options.

    With ``PNP_COUNT_STATEMENTS=1`` in the environment every SQL statement is
    counted in the ``pnp_db_statements_total`` metric (used by bench/run).
    """
    engine = _make_engine(url, pool_size)
    if os.environ.get("PNP_COUNT_STATEMENTS") == "1":
        from app.metrics import DB_STATEMENTS

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_args):
            DB_STATEMENTS.inc()

        @event.listens_for(engine, "commit")
        def _count_commit(*_args):
            DB_STATEMENTS.inc()
    return engine


def _make_engine(url: str, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {}
    parsed = make_url(url)
    if (parsed.drivername.endswith("pymysql") and parsed.host in LOOPBACK
            and not any(k.startswith("ssl") for k in parsed.query)):
        connect_args["ssl_disabled"] = True  # TLS to ourselves: only costs a context per connect
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600, pool_size=pool_size,
                         max_overflow=10, isolation_level="READ COMMITTED",
                         connect_args=connect_args)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    """An Alembic Config pointing at ``migrations/`` and ``url``."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Apply all Alembic migrations to the database at ``url`` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


@contextmanager
def device_lock(sessions: sessionmaker[Session], serial: str,
                defaults: dict | None = None) -> Iterator[tuple[Session, DeviceState | None]]:
    """Open a transaction holding the device's row lock; commit on success.

    Yields ``(session, row)``. With ``defaults`` a missing device is created
    (two workers racing to create it: the loser retries and locks the winner's
    row). Without ``defaults`` a missing device yields None. Any exception rolls
    back and propagates.
    """
    for attempt in range(3):
        session = sessions()
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
