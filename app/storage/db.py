"""Engine and sessions (flaskr's ``db.py``): one pooled engine per process.

``make_engine()`` builds the engine (``pool_pre_ping`` so a restarted MariaDB is
reconnected transparently; MariaDB connections speak utf8mb4 through either driver,
mysqlclient (``mysql+mysqldb://``, C) or PyMySQL (``mysql+pymysql://``, pure Python, the
fallback that always installs), see :func:`resolve_driver`; SQLite gets WAL and
``BEGIN IMMEDIATE``), ``make_sessionmaker()`` the session factory that
``create_app`` keeps in ``app.extensions`` (every flush fits values to their
columns, app/storage/fit.py), and ``get_sessions()`` hands it to request code. The
per-device lock is in app/storage/lock.py, migrations in app/storage/migrate.py.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.storage import fit
from app.storage.models import CHARSET

LOOPBACK = ("127.0.0.1", "::1", "localhost", None)
#: What each MySQL driver is told for a server on loopback without ``ssl*`` options in the
#: URL: no TLS (a TLS context per connect costs and protects nothing on loopback).
NO_TLS = {"pymysql": {"ssl_disabled": True}, "mysqldb": {"ssl_mode": "DISABLED"}}


def utcnow() -> datetime:
    """Naive UTC now, the form every DateTime column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def with_charset(url: str) -> str:
    """``url`` with ``charset=utf8mb4`` added for a MySQL/MariaDB driver when it names none.

    A URL that names another charset keeps it (app/storage/charset.py then refuses to
    start, saying so). Other URLs are returned unchanged.
    """
    parsed = make_url(url)
    if not parsed.drivername.startswith(("mysql", "mariadb")) or "charset" in parsed.query:
        return url
    return parsed.update_query_dict({"charset": CHARSET}).render_as_string(hide_password=False)


def mysqldb_available() -> bool:
    """True when mysqlclient (the C driver, module ``MySQLdb``) can be imported."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return False
    return True


def cooperative() -> bool:
    """True in a gevent worker (the socket module is monkey-patched): a driver in C, whose
    waits gevent cannot see, would stop every greenlet of the process while it waits."""
    gevent = sys.modules.get("gevent.monkey")
    return gevent is not None and gevent.is_module_patched("socket")


def resolve_driver(url: str, in_gevent: bool | None = None) -> str:
    """``url`` with a MySQL driver named: a URL without one (``mysql://…``, ``mariadb://…``)
    gets ``mysqldb`` (mysqlclient, C: less CPU per statement, BENCHMARKS.md "Per-message
    cost") when it is installed and the process is not a gevent worker, else ``pymysql``
    (pure Python, always installed, and cooperative under gevent: a blocking C driver there
    would stall the worker's other greenlets, and could wait on a row lock that a greenlet
    of the same worker holds). ``in_gevent`` (the server's WORKER_CLASS is gevent) is also
    true when this process is already monkey-patched (:func:`cooperative`). A URL that
    names its driver (``mysql+pymysql://``) keeps it; other URLs are returned unchanged.
    """
    parsed = make_url(url)
    if parsed.drivername not in ("mysql", "mariadb"):
        return url
    in_gevent = bool(in_gevent) or cooperative()
    driver = "mysqldb" if mysqldb_available() and not in_gevent else "pymysql"
    return parsed.set(drivername=f"{parsed.drivername}+{driver}").render_as_string(hide_password=False)


def driver_of(url: str) -> str:
    """The DBAPI driver SQLAlchemy uses for ``url`` as it is: ``mysqldb``, ``pymysql``, ``pysqlite``…"""
    return make_url(url).get_dialect().driver


def make_engine(url: str, pool_size: int = 10, wsrep_sync_wait: int = 0, gevent: bool = False,
                max_overflow: int = 10, pool_timeout: float = 30) -> Engine:
    """A pooled engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE.

    ``pool_size`` is the number of MariaDB connections kept open per process:
    give it the worker's thread count so that a busy worker never opens and
    closes connections per request (each PyMySQL connect builds a TLS context
    and logs in: measured at ~40 % of the worker's time, see BENCHMARKS.md).
    ``max_overflow`` more may be opened at a peak (closed again when returned), so one
    process never holds more than ``pool_size + max_overflow`` (Config.db_connections: a
    gevent worker's greenlets share them); a checkout that finds none free within
    ``pool_timeout`` seconds raises sqlalchemy.exc.TimeoutError (the PnP routes answer it
    with a backoff, app/storage/errors.py classifies it as contention).
    A MariaDB on loopback (127.0.0.1, ::1, localhost) is reached without TLS
    unless the URL asks for ssl options (both drivers, :data:`NO_TLS`). A URL without
    a driver gets one from :func:`resolve_driver` (``gevent``: for gevent workers).

    ``wsrep_sync_wait`` (MariaDB Galera, 0-15; 1 = reads) is set on every new
    connection (``SET SESSION wsrep_sync_wait``): a read on one node then waits
    until that node has applied every write the cluster committed before it, so a
    device's message sees its previous one whichever node serves it
    (docs/scale-out.md). Raises ValueError outside 0-15.
    """
    if not 0 <= wsrep_sync_wait <= 15:
        raise ValueError(f"wsrep_sync_wait must be 0-15, not {wsrep_sync_wait}")
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
    url = with_charset(resolve_driver(url, gevent))
    parsed = make_url(url)
    if parsed.host in LOOPBACK and not any(k.startswith("ssl") for k in parsed.query):
        connect_args.update(NO_TLS.get(driver_of(url), {}))  # TLS to ourselves: only costs
    engine = create_engine(url, pool_pre_ping=True, pool_recycle=3600, pool_size=pool_size,
                           max_overflow=max_overflow, pool_timeout=pool_timeout,
                           isolation_level="READ COMMITTED",
                           connect_args=connect_args)
    if wsrep_sync_wait:
        @event.listens_for(engine, "connect")
        def _causal_reads(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute(f"SET SESSION wsrep_sync_wait = {int(wsrep_sync_wait)}")
            cur.close()
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; objects stay readable after commit; every flush fits the values of
    its objects to their columns and records what it cut (app/storage/fit.py)."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    fit.install(sessions)
    return sessions


def get_sessions() -> sessionmaker[Session]:
    """The session factory of the current Flask application (``create_app`` made it)."""
    return current_app.extensions["pnp_sessions"]
