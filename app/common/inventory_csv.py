"""The inventory CSV, parsed once for Cisco PnP, Juniper ZTP and the DHCP helper.

A header line names the columns. Known columns (case-insensitive, with
aliases): ``serial`` (``sn``, ``serial_number``, ``serialnumber``), ``mac``
(``mac_address``), ``ip``, ``hostname``, ``pid``, ``vendor``, ``model``,
``template``; every other column is a template variable under its header
name (letters, digits, underscore). Lines starting with ``#`` are comments,
blank lines are skipped, values are stripped, a UTF-8 BOM is ignored. MACs
are normalised by app/common/mac.py (every form the field uses).

``parse_inventory_csv(text, key)`` returns ``(rows, errors)``; errors are
``"line N: reason"`` strings and nothing should be imported when there is any.
``key`` is the column that identifies a device and must be unique: ``serial``
(Cisco inventory: required on every row) or ``mac`` (Juniper ZTP and DHCP
reservations: rows without a MAC are kept but match nothing).
"""

from __future__ import annotations

import csv
import io
import re

from app.common.mac import normalize_mac

KNOWN_COLUMNS = ("serial", "mac", "ip", "hostname", "pid", "vendor", "model", "template")
ALIASES = {"serial_number": "serial", "sn": "serial", "serialnumber": "serial",
           "mac_address": "mac", "macaddress": "mac"}
SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _column(header: str) -> str:
    name = header.strip()
    lower = name.lower()
    return ALIASES.get(lower, lower if lower in KNOWN_COLUMNS else name)


def _uncomment(text: str) -> str:
    """Comment lines become blank lines, so csv line numbers stay those of the file."""
    return "".join("\n" if line.lstrip().startswith("#") else line
                   for line in text.splitlines(keepends=True))


def parse_inventory_csv(text: str, key: str = "serial") -> tuple[list[dict], list[str]]:
    """Parse and validate inventory CSV text (see the module docstring).

    Each row is a dict of its non-blank known columns plus ``line`` (its line
    number) and ``variables`` (the other columns, blank cells left out). Text the
    csv module cannot read (a bare carriage return inside a field, a field over
    its size limit) is one error, never an exception.
    """
    try:
        return _parse(text, key)
    except csv.Error as exc:
        return [], [f"the CSV cannot be read: {exc}"]


def _parse(text: str, key: str) -> tuple[list[dict], list[str]]:
    text = _uncomment(text.lstrip("\ufeff"))
    if not text.strip():
        return [], ["the CSV is empty"]
    reader = csv.DictReader(io.StringIO(text))
    header = [(h or "").strip() for h in (reader.fieldnames or [])]
    columns = [_column(h) for h in header]
    if key not in columns:
        return [], [f"line {reader.line_num}: no {key!r} column in the header ({', '.join(header)})"]
    if len(set(columns)) != len(columns):
        return [], [f"line {reader.line_num}: a column name appears twice"]
    errors = [f"line {reader.line_num}: column {name!r} is not a usable template variable name "
              "(letters, digits, underscore)"
              for name in columns if name not in KNOWN_COLUMNS and not _VARIABLE.match(name)]
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw:
            errors.append(f"line {line}: more fields than columns in the header")
            continue
        values = {c: (raw.get(h) or "").strip() for h, c in zip(reader.fieldnames, columns, strict=True)}
        if not any(values.values()):
            continue
        row, problem = _row(values, line)
        if problem:
            errors.append(f"line {line}: {problem}")
            continue
        ident = row.get(key)
        if key == "serial" and not ident:
            errors.append(f"line {line}: serial '' is not a serial number (letters, digits, . _ -; up to 64)")
            continue
        if ident and ident in seen:
            errors.append(f"line {line}: {key} {ident} repeats line {seen[ident]}")
            continue
        if ident:
            seen[ident] = line
        rows.append(row)
    return rows, errors


def _row(values: dict, line: int) -> tuple[dict, str | None]:
    """One validated row, or the problem with it."""
    row: dict = {"line": line, "variables": {}}
    for name, value in values.items():
        if name in KNOWN_COLUMNS:
            if value:
                row[name] = value
        elif value:
            row["variables"][name] = value
    serial = row.get("serial")
    if serial and not SERIAL.match(serial):
        return row, f"serial {serial!r} is not a serial number (letters, digits, . _ -; up to 64)"
    if "mac" in row:
        try:
            row["mac"] = normalize_mac(row["mac"])
        except ValueError as exc:
            return row, str(exc)
    template = row.get("template")
    if template and (template.startswith(("/", ".")) or ".." in template):
        return row, f"template {template!r} must be a file name under configs/"
    if len(row.get("hostname", "")) > 255:
        return row, "hostname longer than 255 characters"
    return row, None
