"""Alembic migrations (``migrations/``): the one ``upgrade()`` that the server start,
``run.py db upgrade`` and the tests call.

Several instances starting at once against one MariaDB or a Galera cluster
migrate one at a time: :func:`migration_lock` is a row in ``pnp_migration_lock``
whose INSERT is committed by exactly one of them. A committed row is
cluster-wide on Galera (certification rejects the second INSERT of the same key
on another node), where ``GET_LOCK()`` would only be local to one node. The
others wait, then find the schema at head. SQLite needs no lock (BEGIN
IMMEDIATE already serialises writers on one host).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.exc import DBAPIError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
LOCK_TABLE = "pnp_migration_lock"
log = logging.getLogger("pnp.storage")


def alembic_config(url: str):
    """An Alembic Config pointing at ``migrations/`` and ``url``."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, wait: float = 600.0) -> None:
    """Apply all Alembic migrations to the database at ``url`` (idempotent).

    On MariaDB it first takes :func:`migration_lock` (waiting up to ``wait``
    seconds for another instance's migration); raises TimeoutError when that
    instance holds it longer.
    """
    from alembic import command

    if url.startswith("sqlite"):
        command.upgrade(alembic_config(url), "head")
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with migration_lock(engine, wait=wait):
            command.upgrade(alembic_config(url), "head")
    finally:
        engine.dispose()


@contextmanager
def migration_lock(engine: Engine, wait: float = 600.0, stale_after: float = 900.0,
                   poll: float = 0.5) -> Iterator[str]:
    """Hold the cluster-wide migration lock of ``engine``'s MariaDB database; yields the
    owner name (``host:pid``).

    The lock is row ``id=1`` of ``pnp_migration_lock`` (with a primary key, as
    Galera requires; no ``LOCK TABLES``). A row older than ``stale_after``
    seconds is a migration that crashed: it is taken over. Raises TimeoutError
    after ``wait`` seconds.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}"[:128]
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE} (id INTEGER NOT NULL PRIMARY KEY, "
                          "owner VARCHAR(128) NOT NULL, since DATETIME NOT NULL) ENGINE=InnoDB"))
    deadline = time.monotonic() + wait
    waited = False
    while True:
        try:
            with engine.begin() as conn:
                conn.execute(text(f"INSERT INTO {LOCK_TABLE} (id, owner, since) "
                                  "VALUES (1, :owner, UTC_TIMESTAMP())"), {"owner": owner})
            break
        except DBAPIError as exc:  # 1062 duplicate key (held), 1213 another node won certification
            if getattr(exc.orig, "args", (None,))[0] not in (1062, 1213):
                raise
        with engine.begin() as conn:
            held = conn.execute(text(f"SELECT owner, TIMESTAMPDIFF(SECOND, since, UTC_TIMESTAMP()) "
                                     f"FROM {LOCK_TABLE} WHERE id = 1")).first()
            if held is not None and held[1] is not None and held[1] > stale_after:
                log.warning("migration lock of %s is %ss old: taken over", held[0], held[1])
                conn.execute(text(f"DELETE FROM {LOCK_TABLE} WHERE id = 1 AND owner = :o"), {"o": held[0]})
                continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"another instance ({held[0] if held else '?'}) is migrating the database "
                               f"for more than {wait:.0f}s")
        if not waited:
            log.info("waiting for %s to finish migrating the database", held[0] if held else "another instance")
            waited = True
        time.sleep(poll)
    try:
        yield owner
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {LOCK_TABLE} WHERE id = 1 AND owner = :owner"), {"owner": owner})
