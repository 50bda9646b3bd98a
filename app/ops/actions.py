"""Operator actions: resume, retry, reset, claim, delete, accept a new source address.

Each takes the device's row lock (app/storage/lock.py, through
app.pnp.service.set_state) exactly like a PnP message does, so an operator
edit and a device's request never interleave. Which columns a move clears is
the workflow's rule (``app.pnp.workflow.operator_move``).
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.ops.errors import ActionError, NotFound
from app.pnp import service, source
from app.pnp import workflow as wf
from app.storage.db import utcnow
from app.storage.lock import locked
from app.storage.models import DeviceEvent, DeviceState, InventoryItem

log = logging.getLogger("pnp.operator")


def _current(sessions: sessionmaker[Session], serial: str) -> DeviceState:
    with sessions() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one_or_none()
    if row is None:
        raise NotFound(f"no device {serial}")
    return row


def resume(sessions: sessionmaker[Session], serial: str, state: str, actor: str = "operator") -> str:
    """Resume a device at workflow ``state``: that step starts afresh at the next work-request.

    Clears the pending job, attempts, retry timer and the last error. Returns
    the new state. Raises NotFound, ActionError (unknown state).
    """
    if state not in wf.State.__members__:
        raise ActionError(f"unknown state {state!r} (one of {', '.join(wf.State)})")
    if not service.set_state(sessions, serial, state,
                             reason=f"resumed by {actor}"):
        raise NotFound(f"no device {serial}")
    log.info("%s resumed at %s by %s", serial, state, actor)
    return state


def failed_step(sessions: sessionmaker[Session], serial: str) -> str:
    """The step a retry resumes (``workflow.step_to_retry``). Raises NotFound."""
    row = _current(sessions, serial)
    return wf.step_to_retry(row.state, row.failed_state).value


def retry(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> str:
    """Retry the failed (or current) step now. Returns the state resumed. Raises NotFound."""
    step = failed_step(sessions, serial)
    service.set_state(sessions, serial, step, reason=f"retry by {actor}")
    log.info("%s retries %s (by %s)", serial, step, actor)
    return step


def reset(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> str:
    """Start the device's provisioning over at step 1, forgetting its progress. Raises NotFound."""
    if not service.set_state(sessions, serial, wf.INITIAL_STATE.value,
                             reason=f"reset by {actor}", start_over=True):
        raise NotFound(f"no device {serial}")
    log.info("%s reset to %s by %s", serial, wf.INITIAL_STATE.value, actor)
    return wf.INITIAL_STATE.value


def delete_device(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> None:
    """Forget a device and its history (its inventory row stays). Raises NotFound.

    If it polls again it starts over as a new device.
    """
    def unit(session: Session, row: DeviceState | None) -> None:
        if row is None:
            raise NotFound(f"no device {serial}")
        session.execute(delete(DeviceEvent).where(DeviceEvent.device_id == row.id))
        session.delete(row)

    locked(sessions, serial, unit)  # run again after a Galera certification failure (app/storage/lock.py)
    log.info("%s deleted by %s", serial, actor)


def claim(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> bool:
    """Claim a seen device: add its serial (with PID and hostname) to the inventory.

    Returns False when it was already claimed. Raises NotFound.
    """
    now = utcnow()
    def unit(session: Session, row: DeviceState | None) -> bool:
        if row is None:
            raise NotFound(f"no device {serial}")
        if session.scalars(select(InventoryItem.id).where(InventoryItem.serial_number == serial)).first():
            return False
        session.add(InventoryItem(serial_number=serial, hostname=row.hostname, pid=row.pid or "",
                                  template=None, variables={}, created_at=now, updated_at=now))
        session.add(DeviceEvent(device_id=row.id, at=now, kind="info", message=f"claimed by {actor}"))
        return True

    if not locked(sessions, serial, unit):
        return False
    log.info("%s claimed by %s", serial, actor)
    return True


def accept_source(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> str:
    """Accept the new address a held device is driven from (app/pnp/source.py): it becomes the
    device's address and the device goes on. Returns that address. Raises NotFound, ActionError
    (nothing held)."""
    try:
        held = source.accept(sessions, serial, actor)
    except LookupError:
        raise NotFound(f"no device {serial}") from None
    if held is None:
        raise ActionError(f"{serial} is not held for a new source address: nothing to accept")
    return held
