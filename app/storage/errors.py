"""What a database error means: an outage, contention, or a value or schema problem.

Only an outage (no connection, the server gone away or shutting down, a file that
cannot be opened) is "database unavailable". A DataError (a value the schema
refuses), an IntegrityError, a deadlock or a schema error is something else and is
logged as what it is: the HTTP layer retries those (app/pnp/routes.py). MariaDB
error numbers: https://mariadb.com/kb/en/mariadb-error-codes/ (client errors
2002-2055, server errors 1040-1927); SQLite: https://www.sqlite.org/rescode.html.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exc as sa

#: MariaDB/MySQL errors that mean the database cannot be reached or is going away.
OUTAGE_CODES = {
    1040,  # too many connections
    1042, 1043,  # cannot get host name, bad handshake
    1045,  # access denied
    1053,  # server shutdown in progress
    1077, 1080, 1152, 1184,  # normal shutdown, forced close, aborted connection
    1927,  # connection was killed
    2002, 2003, 2005, 2006, 2013, 2026, 2055,  # cannot connect, gone away, lost connection
    4031,  # disconnected by the server (inactivity)
}
#: Errors of two transactions in each other's way: retrying is the cure.
CONTENTION_CODES = {1205, 1213}  # lock wait timeout, deadlock
#: Statements the schema does not fit: unknown column or table, syntax.
SCHEMA_CODES = {1054, 1064, 1146}
_SQLITE_SCHEMA = ("no such table", "no such column", "syntax error")
_SQLITE_OUTAGE = ("unable to open database", "disk i/o error",
                  "database disk image is malformed", "readonly database")
_SQLITE_CONTENTION = ("database is locked", "database table is locked")


@dataclass(frozen=True)
class DbFault:
    """A classified database error.

    ``kind``: ``outage`` (database unavailable), ``contention`` (deadlock, lock wait,
    SQLite busy), ``data`` (a value the schema refuses), ``integrity`` (a constraint),
    ``schema`` (ProgrammingError: a missing column, a bad statement) or ``other``.
    ``code`` is the driver's error number when it has one; ``text`` is one line.
    """

    kind: str
    code: int | None
    text: str
    name: str

    @property
    def outage(self) -> bool:
        """True only when the database cannot be reached: "database unavailable"."""
        return self.kind == "outage"

    def __str__(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        return f"{self.kind}: {self.name}{code}: {self.text}"


def _code_and_text(error: BaseException) -> tuple[int | None, str]:
    orig = getattr(error, "orig", None) or error
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    text = str(args[1]) if code is not None and len(args) > 1 else str(orig)
    return code, (text.splitlines() or [""])[0][:300]


def classify(error: BaseException) -> DbFault:
    """The :class:`DbFault` for a SQLAlchemy (or DBAPI) error. Never raises."""
    code, text = _code_and_text(error)
    name = type(getattr(error, "orig", None) or error).__name__
    lowered = text.lower()
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        kind = "outage"
    elif isinstance(error, sa.DisconnectionError | sa.InterfaceError) or code in OUTAGE_CODES:
        kind = "outage"
    elif isinstance(error, sa.TimeoutError):  # no pooled connection came free in time
        kind = "contention"
    elif code in CONTENTION_CODES or any(s in lowered for s in _SQLITE_CONTENTION):
        kind = "contention"
    elif isinstance(error, sa.DataError):
        kind = "data"
    elif isinstance(error, sa.IntegrityError):
        kind = "integrity"
    elif isinstance(error, sa.OperationalError) and (
            code is None and any(s in lowered for s in _SQLITE_OUTAGE)):
        kind = "outage"
    elif isinstance(error, sa.OperationalError) and code is not None and code >= 2000:
        kind = "outage"  # any other client-side connection error
    elif isinstance(error, sa.ProgrammingError) or code in SCHEMA_CODES or (
            code is None and any(s in lowered for s in _SQLITE_SCHEMA)):
        kind = "schema"
    else:
        kind = "other"
    return DbFault(kind, code, text, name)
