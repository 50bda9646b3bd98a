"""utf8mb4: every table of a MariaDB/MySQL database converted to the character set utf8mb4

A database created with the server's default character set (latin1 on upstream
MariaDB before 11.6) gave latin1 tables, which refuse the ``→`` of the history
lines (DataError 1366). Each table that is not utf8mb4 (its default or any text
column) is converted with ALTER TABLE … CONVERT TO CHARACTER SET utf8mb4, which
rewrites the table: on a large device_event table this takes a while, once. The
database's default becomes utf8mb4 too (when the account may change it), so
tables created later are utf8mb4 from the start. SQLite: nothing to do.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""
import logging

from alembic import op
from sqlalchemy import exc, text

from app.storage.charset import convert_statement, non_utf8mb4_tables
from app.storage.models import CHARSET, COLLATION

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    database = bind.execute(text("SELECT DATABASE()")).scalar()
    try:
        bind.execute(text(f"ALTER DATABASE `{database}` CHARACTER SET {CHARSET} COLLATE {COLLATION}"))
    except exc.DBAPIError as error:  # no ALTER privilege on the database: the tables still convert
        log.warning("database %s keeps its default character set: %s", database, error.orig)
    for table in non_utf8mb4_tables(bind):
        log.info("converting table %s to %s", table, CHARSET)
        bind.execute(text(convert_statement(table)))


def downgrade() -> None:
    """Nothing: converting back to latin1 would lose every character latin1 cannot hold."""
