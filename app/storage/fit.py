"""Values that fit their column: what a device sends is made storable here, once.

A device sends what it likes: a 76-character versionString, a 100 kB
errorMessage, free space of 10^20 bytes, a negative number. MariaDB in strict
mode refuses such a value with a DataError (1406 "Data too long", 1264 "Out of
range") and the whole message would be lost; SQLite stores it as it is. Every
value written to the tables of app/storage/models.py passes through
``fit_value`` first, so both backends store the same thing. The limits are read
from the column definitions (their MariaDB form), never written by hand:

* ``String(n)``: at most n characters (MariaDB counts VARCHAR in characters);
* ``Text``: at most 65,535 bytes of UTF-8 (TEXT), ``MEDIUMTEXT`` 16 MiB - 1;
  a cut text ends with a marker that says how long it was;
* ``Integer``: -2^31 .. 2^31 - 1, ``BigInteger``: -2^63 .. 2^63 - 1 (INT and
  BIGINT; SQLite's integers are 64-bit too), narrowed by ``info={"min": …}`` or
  ``info={"max": …}`` on the column; a number outside is stored as the nearest
  end of the range.

Every value changed is reported as a :class:`Fitted`; ``install(sessions)``
makes every ORM flush fit its rows and add a history line of kind ``clamped``
to the device (see :func:`clamp_event`), and ``fit_values`` serves Core
statements. ``ascii_only`` (a session's ``info["fit_ascii"]``) also escapes
non-ASCII characters: the last retry for a table that cannot store them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import BigInteger, Column, Integer, SmallInteger, String, Table, event, inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Session, sessionmaker

from app.storage.models import DeviceEvent, DeviceState

log = logging.getLogger("pnp.storage")

_MYSQL = mysql.dialect()
_TEXT_BYTES = {mysql.TINYTEXT: 255, mysql.MEDIUMTEXT: 16_777_215, mysql.LONGTEXT: 4_294_967_295}
_INT_BITS = {mysql.TINYINT: 8, mysql.SMALLINT: 16, SmallInteger: 16, mysql.MEDIUMINT: 24,
             mysql.BIGINT: 64, BigInteger: 64}
CLAMPED = "clamped"  # device_event.kind of the history line


@dataclass(frozen=True)
class Limit:
    """What a column can hold: ``chars`` (String), ``octets`` (Text, UTF-8 bytes) or an
    integer range ``low``..``high``; None where there is no limit."""

    chars: int | None = None
    octets: int | None = None
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class Fitted:
    """One value that did not fit: ``column`` (table.column), what was sent and what was stored."""

    column: str
    sent: str
    stored: str

    def __str__(self) -> str:
        return f"{self.column}: {self.sent} did not fit, stored {self.stored}"


@cache
def limit_of(column: Column) -> Limit:
    """The :class:`Limit` of ``column``, from its type as MariaDB creates it and its ``info``."""
    impl = column.type.dialect_impl(_MYSQL)
    if isinstance(column.type, Integer) and not column.primary_key and not column.foreign_keys:
        bits = next((b for cls, b in _INT_BITS.items() if isinstance(impl, cls)), 32)
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        low = max(low, column.info.get("min", low))
        high = min(high, column.info.get("max", high))
        return Limit(low=low, high=high)
    if isinstance(impl, mysql.TEXT | mysql.TINYTEXT | mysql.MEDIUMTEXT | mysql.LONGTEXT) or (
            isinstance(column.type, String) and column.type.length is None):
        octets = next((n for cls, n in _TEXT_BYTES.items() if isinstance(impl, cls)), 65_535)
        return Limit(octets=octets)
    if isinstance(column.type, String) and column.type.length:
        return Limit(chars=column.type.length)
    return Limit()


def _marker(original_octets: int) -> str:
    return f" ... [cut: {original_octets} bytes sent]"  # ASCII: fits any character set


def _cut_octets(text: str, octets: int) -> str:
    """``text`` cut to at most ``octets`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:octets].decode("utf-8", "ignore")


def fit_value(column: Column, value, ascii_only: bool = False):
    """``(value that fits column, Fitted | None)``. Raises nothing; non-text/number values pass."""
    limit = limit_of(column)
    if isinstance(value, bool) or value is None:
        return value, None
    if isinstance(value, int) and limit.low is not None:
        if value < limit.low or value > limit.high:
            stored = limit.low if value < limit.low else limit.high
            return stored, Fitted(_name(column), str(value), f"{stored} (the column's "
                                  f"{'minimum' if value < limit.low else 'maximum'})")
        return value, None
    if not isinstance(value, str):
        return value, None
    original = value
    if ascii_only and not value.isascii():
        value = value.encode("ascii", "backslashreplace").decode("ascii")
    if limit.chars is not None and len(value) > limit.chars:
        value = value[:limit.chars]
        return value, Fitted(_name(column), f"{len(original)} characters",
                             f"the first {limit.chars}")
    if limit.octets is not None:
        size = len(value.encode("utf-8"))
        if size > limit.octets:
            marker = _marker(size)
            value = _cut_octets(value, limit.octets - len(marker.encode("utf-8"))) + marker
            return value, Fitted(_name(column), f"{size} bytes",
                                 f"the first {limit.octets} bytes")
    if value != original:
        return value, Fitted(_name(column), "non-ASCII text", "it escaped")
    return value, None


def _name(column: Column) -> str:
    return f"{column.table.name}.{column.name}"


def fit_values(table: Table, values: dict, ascii_only: bool = False) -> tuple[dict, list[Fitted]]:
    """``values`` (column name → value, for a Core INSERT/UPDATE of ``table``) made to fit;
    returns the new dict and what was changed."""
    out, fitted = {}, []
    for name, value in values.items():
        column = table.columns.get(name)
        if column is None:
            out[name] = value
            continue
        out[name], note = fit_value(column, value, ascii_only)
        if note:
            fitted.append(note)
    return out, fitted


@cache
def _columns_of(mapper) -> dict[str, Column]:
    """attribute key → its column, for the single-column attributes of ``mapper``."""
    return {attr.key: attr.columns[0] for attr in mapper.column_attrs if len(attr.columns) == 1}


def fit_object(obj, ascii_only: bool = False) -> list[Fitted]:
    """Fit the changed column attributes of ORM object ``obj`` in place; what was changed.

    A loaded (persistent) object is looked at only for the attributes set since it was
    loaded (``committed_state``), a new one for every attribute it has: a flush of a
    40-column row that changed 3 of them fits 3 values, not 40.
    """
    state = inspect(obj)
    columns = _columns_of(state.mapper)
    keys = list(state.committed_state) if state.persistent else list(state.dict)
    fitted = []
    for key in keys:
        column = columns.get(key)
        if column is None or key not in state.dict:
            continue
        value = state.dict[key]
        new, note = fit_value(column, value, ascii_only)
        if note:
            setattr(obj, key, new)
            fitted.append(note)
    return fitted


def clamp_message(fitted: list[Fitted]) -> str:
    """The history line for values that did not fit."""
    return "value stored clamped (it did not fit its column): " + "; ".join(map(str, fitted))


def _before_flush(session: Session, _context, _instances) -> None:
    ascii_only = bool(session.info.get("fit_ascii"))
    for obj in list(session.new) + list(session.dirty):
        fitted = fit_object(obj, ascii_only)
        if not fitted:
            continue
        who = getattr(obj, "serial_number", None) or getattr(obj, "device_id", "?")
        log.warning("%s: %s", who, clamp_message(fitted))
        if isinstance(obj, DeviceState):
            note = DeviceEvent(kind=CLAMPED, message=clamp_event_text(fitted),
                               at=obj.last_contact or datetime.now(UTC).replace(tzinfo=None))
            note.device = obj  # the new row's id is not known yet; no load of obj.events
            session.add(note)
        elif isinstance(obj, DeviceEvent) and obj.kind != CLAMPED and obj.device_id:
            session.add(DeviceEvent(device_id=obj.device_id, kind=CLAMPED, at=obj.at,
                                    message=clamp_event_text(fitted)))


def clamp_event_text(fitted: list[Fitted]) -> str:
    """:func:`clamp_message`, itself made to fit device_event.message."""
    return fit_value(DeviceEvent.__table__.c.message, clamp_message(fitted))[0]


def clamp_event(device_id: int, at, fitted: list[Fitted]) -> dict:
    """A device_event row (Core values) recording ``fitted`` for ``device_id``."""
    return {"device_id": device_id, "at": at, "kind": CLAMPED, "service": None,
            "correlator": None, "success": None, "error_code": None,
            "message": clamp_event_text(fitted), "raw_xml": None}


def install(sessions: sessionmaker[Session]) -> None:
    """Make every flush of ``sessions`` fit the values of its objects (before_flush)."""
    event.listen(sessions, "before_flush", _before_flush)
