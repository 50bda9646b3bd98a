"""Operator actions by name, one device or many, each recorded in the audit log.

``act`` runs one action (retry, reset, claim, delete, resume) on one device
and writes its audit row (success or failure, with the reason); ``bulk`` runs
one action on many devices, each under its own row lock, and reports per
device. The console, the API and the CLI all call these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.ops import actions
from app.ops.audit import record
from app.ops.errors import ActionError, NotFound
from app.storage.models import DeviceEvent, DeviceState

BULK_ACTIONS = ("retry", "reset", "claim", "delete")
MAX_BULK = 1000


@dataclass(frozen=True)
class Actor:
    """Who acts and from where, for the device history and the audit log."""

    name: str
    via: str = "cli"
    address: str | None = None


@dataclass
class BulkResult:
    """``done``: serial → result; ``failed``: serial → reason."""

    action: str
    done: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)


def _events_of(sessions: sessionmaker[Session], serial: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(DeviceEvent.id)).join(DeviceState)
                              .where(DeviceState.serial_number == serial)) or 0


def act(sessions: sessionmaker[Session], action: str, serial: str, actor: Actor, state: str | None = None):
    """Run ``action`` on ``serial`` as ``actor`` and audit it; returns the action's result.

    Raises NotFound, ActionError (unknown action or state) after auditing the failure.
    """
    detail = None
    try:
        if action == "retry":
            result = actions.retry(sessions, serial, actor.name)
            detail = f"resumes {result}"
        elif action == "reset":
            result = actions.reset(sessions, serial, actor.name)
        elif action == "resume":
            result = actions.resume(sessions, serial, state or "", actor.name)
            detail = f"at {result}"
        elif action == "claim":
            result = actions.claim(sessions, serial, actor.name)
            detail = "newly claimed" if result else "already claimed"
        elif action == "accept-source":
            result = actions.accept_source(sessions, serial, actor.name)
            detail = f"source {result} accepted"
        elif action == "delete":
            events = _events_of(sessions, serial)
            result = actions.delete_device(sessions, serial, actor.name)
            detail = f"{events} history events deleted"
        else:
            raise ActionError(f"unknown action {action!r}")
    except (NotFound, ActionError) as exc:
        record(sessions, actor.name, actor.via, action, serial, actor.address, success=False, detail=str(exc))
        raise
    record(sessions, actor.name, actor.via, action, serial, actor.address, detail=detail)
    return result


def bulk(sessions: sessionmaker[Session], action: str, serials: list[str], actor: Actor) -> BulkResult:
    """Run ``action`` (one of BULK_ACTIONS) on each of ``serials`` (duplicates once, at most
    MAX_BULK). A device that fails is reported in ``failed`` and the others go on.
    Raises ActionError for an unknown action or too many serials."""
    if action not in BULK_ACTIONS:
        raise ActionError(f"unknown bulk action {action!r} (one of {', '.join(BULK_ACTIONS)})")
    unique = list(dict.fromkeys(s for s in serials if s))
    if not unique:
        raise ActionError("no device selected")
    if len(unique) > MAX_BULK:
        raise ActionError(f"at most {MAX_BULK} devices per bulk action ({len(unique)} given)")
    result = BulkResult(action)
    for serial in unique:
        try:
            result.done[serial] = act(sessions, action, serial, actor)
        except (NotFound, ActionError) as exc:
            result.failed[serial] = str(exc)
    return result
