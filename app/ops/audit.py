"""The audit log: logins (success and failure), logouts, every operator action.

One row per event in ``audit_log`` (who, via what, what, on which device, from
where, whether it worked); rows name the user and the device as text, so they
stay when either is deleted. Each record is also logged at INFO on the
``pnp.audit`` logger (WARNING when it failed).
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.storage.db import utcnow
from app.storage.models import AuditEntry

log = logging.getLogger("pnp.audit")
MAX_PER_PAGE = 500


def record(sessions: sessionmaker[Session], actor: str, via: str, action: str, target: str | None = None,
           address: str | None = None, success: bool = True, detail: str | None = None) -> None:
    """Append one audit row and log it (``action`` e.g. login, logout, retry, user-add)."""
    with sessions.begin() as session:
        session.add(AuditEntry(at=utcnow(), actor=(actor or "-")[:64], via=(via or "-")[:16],
                               action=action[:32], target=(target or None) and target[:64],
                               address=(address or None) and address[:45], success=success,
                               detail=detail))
    level = logging.INFO if success else logging.WARNING
    log.log(level, "%s %s%s by %s (%s) from %s%s%s", action, "ok" if success else "FAILED",
            f" {target}" if target else "", actor, via, address or "-",
            ": " if detail else "", detail or "")


def entry_dict(entry: AuditEntry) -> dict:
    """The public view of an audit row."""
    return {"id": entry.id, "at": entry.at, "actor": entry.actor, "via": entry.via,
            "action": entry.action, "target": entry.target, "address": entry.address,
            "success": entry.success, "detail": entry.detail}


def list_audit(sessions: sessionmaker[Session], actor: str = "", action: str = "", target: str = "",
               page: int = 1, per_page: int = 100) -> tuple[list[dict], int]:
    """A page of audit rows, newest first, filtered by exact actor/action/target; ``(rows, total)``."""
    where = []
    if actor:
        where.append(AuditEntry.actor == actor)
    if action:
        where.append(AuditEntry.action == action)
    if target:
        where.append(AuditEntry.target == target)
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    with sessions() as session:
        total = session.scalar(select(func.count(AuditEntry.id)).where(*where)) or 0
        rows = session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id.desc())
                               .offset((max(page, 1) - 1) * per_page).limit(per_page)).all()
    return [entry_dict(r) for r in rows], total


def _text(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def to_csv(rows: list[dict], columns: list[str]) -> str:
    """``rows`` as CSV text with a header line of ``columns`` (times as UTC text)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(row.get(c)) for c in columns])
    return out.getvalue()


def now() -> datetime:
    """Naive UTC now (re-exported for the fronts' file names)."""
    return utcnow()
