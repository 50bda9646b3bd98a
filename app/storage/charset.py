"""Can the database store the text the server writes? Checked once at start (run.py).

The server writes text that latin1 cannot hold: ``→`` in every state line of the
history, whatever non-ASCII a device or an inventory sends (hostnames, script
output). On a MariaDB table in latin1 each such write fails with DataError 1366
("Incorrect string value") and the message is lost. The tables declare utf8mb4
(app/storage/models.py ``TABLE_ARGS``), migration 0006 converts existing ones and
the connection asks for utf8mb4 (app/storage/db.py ``with_charset``); this module
checks the outcome on the live database: the connection's character set and
every text column and table default of the server's tables. SQLite stores all
text as UTF-8: nothing to check. Sources: MariaDB Knowledge Base, "Setting
Character Sets and Collations" and "information_schema COLUMNS Table".
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from app.storage.db import make_engine
from app.storage.models import CHARSET, COLLATION, Base

#: Text the server writes that only a Unicode character set can hold (arrow, ellipsis, emoji).
PROBE = "→ … ✓ 🙂"


def non_utf8mb4_tables(conn: Connection, tables: list[str] | None = None) -> dict[str, list[str]]:
    """``{table: [column or "(table default)" …]}`` of the current MariaDB database whose
    character set is not utf8mb4; ``tables`` limits the look (default: every table)."""
    found: dict[str, list[str]] = {}
    rows = conn.execute(text(
        "SELECT t.TABLE_NAME, c.CHARACTER_SET_NAME FROM information_schema.TABLES t "
        "JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY c "
        "ON c.COLLATION_NAME = t.TABLE_COLLATION "
        "WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'"))
    for table, charset in rows:
        if charset != CHARSET and (tables is None or table in tables):
            found.setdefault(table, []).append(f"(table default {charset})")
    rows = conn.execute(text(
        "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION"))
    for table, column, charset in rows:
        if charset != CHARSET and (tables is None or table in tables):
            found.setdefault(table, []).append(f"{column} {charset}")
    return found


def convert_statement(table: str) -> str:
    """The ALTER TABLE that converts ``table`` (and all its text columns) to utf8mb4."""
    return f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET {CHARSET} COLLATE {COLLATION}"


def schema_problem(url: str) -> str | None:
    """None when the database at ``url`` can store any text the server writes, else the
    reason in one line (what is wrong and the statement that fixes it).

    MariaDB/MySQL only (SQLite: always None). Connects once; raises SQLAlchemy errors
    when the database cannot be reached.
    """
    engine = make_engine(url, pool_size=1)
    if engine.dialect.name not in ("mysql", "mariadb"):
        engine.dispose()
        return None
    try:
        with engine.connect() as conn:
            client, connection = conn.execute(text(
                "SELECT @@character_set_client, @@character_set_connection")).one()
            if client != CHARSET or connection != CHARSET:
                return (f"the connection speaks {connection}, not {CHARSET}: remove the charset "
                        f"from DATABASE_URL or set charset={CHARSET}")
            bad = non_utf8mb4_tables(conn, sorted(Base.metadata.tables) + ["alembic_version"])
            if bad:
                table, columns = next(iter(bad.items()))
                more = f" (and {len(bad) - 1} more tables)" if len(bad) > 1 else ""
                return (f"table {table} cannot store the text the server writes (e.g. "
                        f"{PROBE[0]!r}): {', '.join(columns[:3])}{more}; "
                        f"fix: {convert_statement(table)}")
            stored = conn.execute(text("SELECT CAST(:probe AS CHAR CHARACTER SET utf8mb4)"),
                                  {"probe": PROBE}).scalar()
            if stored != PROBE:
                return f"the connection altered non-ASCII text ({PROBE!r} came back as {stored!r})"
    finally:
        engine.dispose()
    return None
