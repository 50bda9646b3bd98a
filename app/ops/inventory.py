"""The Cisco inventory (planned devices): CSV import and listing.

The CSV is parsed by the project's one inventory parser
(app/common/inventory_csv.py); each row with a template is test-rendered
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.common.inventory_csv import parse_inventory_csv
from app.config import Config
from app.files import day0
from app.storage.db import utcnow
from app.storage.models import InventoryItem

MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000  # a larger page number would overflow the SQL OFFSET
MAX_CSV_BYTES = 32 * 1024 * 1024  # an inventory CSV upload (the app's default limit is 1 MB)


@dataclass
class ImportResult:
    """Outcome of a CSV import: rows ``created``/``updated`` or per-line ``errors``.

    Nothing is written when there is any error.
    """

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)
    #: per row: ``{"serial_number", "action": create|update|unchanged, "changes": {field: [before, after]}}``
    changes: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_inventory(text: str) -> tuple[list[dict], list[str]]:
    """Cisco inventory rows from CSV text (app/common/inventory_csv.py, keyed by serial).

    Returns ``(rows, errors)``: rows as ``{"line", "serial_number", "hostname",
    "pid", "template", "variables"}``; the columns ``mac``, ``ip``, ``vendor``
    and ``model`` are template variables here like any other column.
    """
    parsed, errors = parse_inventory_csv(text, key="serial")
    rows = []
    for row in parsed:
        variables = {k: row[k] for k in ("mac", "ip", "vendor", "model") if k in row}
        variables.update(row["variables"])
        rows.append({"line": row["line"], "serial_number": row["serial"],
                     "hostname": row.get("hostname"), "pid": row.get("pid", "")[:64],
                     "template": row.get("template"), "variables": variables})
    return rows, errors


def import_inventory(sessions: sessionmaker[Session], config: Config, text: str,
                     dry_run: bool = False) -> ImportResult:
    """Validate inventory CSV text and upsert it in one transaction.

    Each row with a template is test-rendered (StrictUndefined): a missing
    template or variable is an error of that line. Any error: nothing is
    written. ``dry_run`` validates only.
    """
    rows, errors = parse_inventory(text)
    for row in rows:
        if row["template"]:
            item = day0.InventoryView(row["serial_number"], row["hostname"], row["pid"],
                                      row["template"], row["variables"])
            try:
                day0.render_template(config, item)
            except day0.Day0Error as exc:
                errors.append(f"line {row['line']}: {row['serial_number']}: {exc}")
    result = ImportResult(errors=errors)
    if errors:
        return result
    result.changes = _changes(sessions, rows)
    if dry_run:
        result.created = sum(1 for c in result.changes if c["action"] == "create")
        result.updated = sum(1 for c in result.changes if c["action"] == "update")
        return result
    now = utcnow()
    try:
        _upsert(sessions, rows, result, now)
    except IntegrityError:
        result.created = result.updated = 0
        result.errors.append("another import added some of these serials at the same time: "
                             "nothing imported, try again")
    return result


_FIELDS = ("hostname", "pid", "template", "variables")


def _changes(sessions: sessionmaker[Session], rows: list[dict]) -> list[dict]:
    """What importing ``rows`` changes, row by row (the dry run's answer)."""
    with sessions() as session:
        existing = {i.serial_number: i for i in session.scalars(select(InventoryItem).where(
            InventoryItem.serial_number.in_([r["serial_number"] for r in rows])))}
    out = []
    for row in rows:
        item = existing.get(row["serial_number"])
        if item is None:
            out.append({"serial_number": row["serial_number"], "action": "create",
                        "changes": {f: [None, row[f]] for f in _FIELDS if row[f] not in (None, "", {})}})
            continue
        before = {"hostname": item.hostname, "pid": item.pid, "template": item.template,
                  "variables": dict(item.variables or {})}
        diff = {f: [before[f], row[f]] for f in _FIELDS if before[f] != row[f]}
        out.append({"serial_number": row["serial_number"], "action": "update" if diff else "unchanged",
                    "changes": diff})
    return out


def _upsert(sessions: sessionmaker[Session], rows: list[dict], result: ImportResult, now: datetime) -> None:
    with sessions() as session, session.begin():
        existing = {i.serial_number: i for i in session.scalars(select(InventoryItem).where(
            InventoryItem.serial_number.in_([r["serial_number"] for r in rows])))}
        for row in rows:
            item = existing.get(row["serial_number"])
            if item is None:
                session.add(InventoryItem(serial_number=row["serial_number"], hostname=row["hostname"],
                                          pid=row["pid"], template=row["template"],
                                          variables=row["variables"], created_at=now, updated_at=now))
                result.created += 1
            else:
                item.hostname, item.pid, item.template = row["hostname"], row["pid"], row["template"]
                item.variables, item.updated_at = row["variables"], now
                result.updated += 1


def inventory_dict(item: InventoryItem) -> dict:
    return {"serial_number": item.serial_number, "hostname": item.hostname, "pid": item.pid,
            "template": item.template, "variables": dict(item.variables or {}),
            "created_at": item.created_at, "updated_at": item.updated_at, "source": item.source or "csv",
            "sot_id": item.sot_id, "sot_status": item.sot_status, "site": item.site, "vendor": item.vendor,
            "model": item.model, "mac_address": item.mac_address, "ip_address": item.ip_address,
            "image": item.image}


def list_inventory(sessions: sessionmaker[Session], page: int = 1, per_page: int = 100) -> tuple[list[dict], int]:
    """One page of inventory rows (by serial) and the total count."""
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    with sessions() as session:
        total = session.scalar(select(func.count(InventoryItem.id)))
        items = session.scalars(select(InventoryItem).order_by(InventoryItem.serial_number)
                                .offset((min(max(1, page), MAX_PAGE) - 1) * per_page).limit(per_page)).all()
        return [inventory_dict(i) for i in items], total or 0


def inventory_counts(sessions: sessionmaker[Session]) -> dict:
    """``{"total", "planned", "seen"}``: inventory rows, those never seen (lifecycle Planned,
    the same number as the dashboard's) and those whose device has contacted us."""
    from app.storage.models import DeviceState

    with sessions() as session:
        total = session.scalar(select(func.count(InventoryItem.id))) or 0
        seen = session.scalar(select(func.count(InventoryItem.id)).join(
            DeviceState, DeviceState.serial_number == InventoryItem.serial_number)) or 0
    return {"total": total, "planned": total - seen, "seen": seen}


def get_item(sessions: sessionmaker[Session], serial: str) -> dict:
    """One inventory row. Raises NotFound."""
    from app.ops.errors import NotFound

    with sessions() as session:
        item = session.scalars(select(InventoryItem).where(InventoryItem.serial_number == serial)).one_or_none()
    if item is None:
        raise NotFound(f"no inventory row {serial}")
    return inventory_dict(item)


def update_item(sessions: sessionmaker[Session], config: Config, serial: str, hostname: str | None,
                pid: str, template: str | None, variables: dict) -> dict:
    """Change one inventory row (hostname, PID, template, variables); a template is
    test-rendered first, as on import. Raises NotFound, ActionError (the reason)."""
    from app.ops.errors import ActionError, NotFound

    if not isinstance(variables, dict) or not all(isinstance(k, str) and k for k in variables):
        raise ActionError("variables must be an object of name → value")
    hostname = (hostname or "").strip()[:255] or None
    template = (template or "").strip()[:255] or None
    pid = (pid or "").strip()[:64]
    if template:
        view = day0.InventoryView(serial, hostname, pid, template, variables)
        try:
            day0.render_template(config, view)
        except day0.Day0Error as exc:
            raise ActionError(str(exc)) from None
    with sessions.begin() as session:
        item = session.scalars(select(InventoryItem).where(InventoryItem.serial_number == serial)).one_or_none()
        if item is None:
            raise NotFound(f"no inventory row {serial}")
        item.hostname, item.pid, item.template = hostname, pid, template
        item.variables, item.updated_at = {str(k): v for k, v in variables.items()}, utcnow()
        out = inventory_dict(item)
    return out


def delete_item(sessions: sessionmaker[Session], serial: str) -> None:
    """Remove one inventory row (a seen device becomes Unclaimed). Raises NotFound."""
    from sqlalchemy import delete

    from app.ops.errors import NotFound

    with sessions.begin() as session:
        gone = session.execute(delete(InventoryItem).where(InventoryItem.serial_number == serial)).rowcount
    if not gone:
        raise NotFound(f"no inventory row {serial}")
