"""A serial driven from a new address: flagged and held until an operator accepts it.

A device's flow starts from one address (``device_state.ip_address``, written
at first contact). When a later PnP message for the same serial comes from
another address, :func:`check` does not let it advance the device: the
message is answered with a backoff (work-request) or a bye (work-response,
not recorded), ``source_hold`` keeps the new address, and the history and the
dashboard (``last_error_code = SOURCE_CHANGED``) say so, once per new address.
Messages from the recorded address go on as before. An operator who knows
the move is real (a new DHCP lease, a re-cabled device) accepts it with
:func:`accept` (console, API, ``run.py devices accept-source``), and the new
address becomes the device's. ``ALLOW_SOURCE_CHANGE = True`` turns the hold
off. It stops a second host from answering a device's jobs (and taking its
day-0 config URL) while the flow runs; it cannot stop a host that speaks
first for a serial it knows: DEVICE_NETWORKS, REQUIRE_CLAIM and HTTPS with a
trustpool do that (docs/config-secrecy.md).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.storage.db import utcnow
from app.storage.lock import LockedRow, device_lock
from app.storage.models import DeviceEvent, DeviceState

__all__ = ["SOURCE_CHANGED", "accept", "check", "hold_locked", "passes"]

log = logging.getLogger("pnp")
SOURCE_CHANGED = "SOURCE_CHANGED"


def _reason(serial: str, recorded: str, source_ip: str) -> str:
    return (f"held: {serial} started from {recorded} and is now driven from {source_ip}; "
            "an operator must accept the new address")


def passes(config: Config, recorded: str | None, source_ip: str | None) -> bool:
    """True when a message from ``source_ip`` may drive a device whose recorded address is
    ``recorded`` (no hold: ALLOW_SOURCE_CHANGE, no address on either side, the same one)."""
    return config.allow_source_change or not source_ip or not recorded or recorded == source_ip


def hold_locked(session: Session, row: DeviceState | LockedRow, config: Config, source_ip: str | None,
                now) -> str | None:
    """:func:`check` on a row the caller holds locked (app/storage/lock.py), in its transaction:
    no statement of its own when the message may be handled (None); else the hold reason,
    with the hold recorded on ``row`` (``source_hold``, ``last_error_*``, one history event)
    the first time this address is seen (a Core :class:`~app.storage.lock.LockedRow` through
    its ORM object, so the ORM flush and its hooks record it). The PnP messages use this one,
    so the check costs no SELECT of its own."""
    if passes(config, row.ip_address, source_ip):
        return None
    reason = _reason(row.serial_number, row.ip_address, source_ip)
    held = source_ip[:45]
    if row.source_hold != held:
        orm = row.attach(session) if isinstance(row, LockedRow) else row  # flushed at COMMIT
        for target in (row, orm) if orm is not row else (row,):
            target.source_hold, target.last_error_code, target.last_error_message = held, SOURCE_CHANGED, reason
        session.add(DeviceEvent(device_id=row.id, at=now, kind="error", error_code=SOURCE_CHANGED,
                                success=False, message=reason))
        log.warning("%s", reason)
    return reason


def check(sessions: sessionmaker[Session], config: Config, serial: str, source_ip: str | None) -> str | None:
    """None when a message for ``serial`` from ``source_ip`` may be handled, else the hold reason.

    Unknown serials, rows without an address and the recorded address pass. The
    first message from a new address records the hold (``source_hold``,
    ``last_error_*`` and a history event); later ones only read. Raises
    SQLAlchemy errors (the route answers them like any database trouble).
    """
    if passes(config, "?", source_ip):
        return None
    with sessions() as session:
        found = session.execute(select(DeviceState.ip_address, DeviceState.source_hold)
                                .where(DeviceState.serial_number == serial)).first()
    if found is None or passes(config, found.ip_address, source_ip):
        return None
    reason = _reason(serial, found.ip_address, source_ip)
    if found.source_hold != source_ip[:45]:
        _record_hold(sessions, serial, source_ip[:45], reason)
    return reason


def _record_hold(sessions: sessionmaker[Session], serial: str, source_ip: str, reason: str) -> None:
    now = utcnow()
    with sessions.begin() as session:
        row_id = session.scalar(select(DeviceState.id).where(DeviceState.serial_number == serial))
        if row_id is None:
            return
        session.execute(update(DeviceState).where(DeviceState.id == row_id).values(
            source_hold=source_ip, last_error_code=SOURCE_CHANGED, last_error_message=reason)
            .execution_options(synchronize_session=False))
        session.add(DeviceEvent(device_id=row_id, at=now, kind="error", error_code=SOURCE_CHANGED,
                                success=False, message=reason))
    log.warning("%s", reason)


def accept(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> str | None:
    """Operator action: the held address becomes the device's (``ip_address``), the hold and its
    error are cleared, the history says who accepted. Returns the accepted address, None when
    nothing was held. Raises LookupError for an unknown serial."""
    now = utcnow()
    with device_lock(sessions, serial) as (session, row):
        if row is None:
            raise LookupError(serial)
        held = row.source_hold
        if not held:
            return None
        old = row.ip_address
        row.ip_address, row.source_hold = held, None
        if row.last_error_code == SOURCE_CHANGED:
            row.last_error_code = row.last_error_message = None
        session.add(DeviceEvent(device_id=row.id, at=now, kind="info",
                                message=f"source address {held} accepted by {actor} (was {old})"))
    log.info("%s: source %s accepted by %s", serial, held, actor)
    return held
