"""Status write-back to the source of truth through a queue table (``sot_writeback``).

What is written (each status a setting, all off by default):

* first contact (and any step before the end) -> ``SOT_STATUS_FIRST_CONTACT`` (e.g. ``staged``);
* FINISHED -> ``SOT_STATUS_FINISHED`` (``active``) with a journal entry (NetBox) / note
  (Nautobot): versions, time taken;
* ERROR / BOOTFLASH_NO_SPACE -> ``SOT_STATUS_FAILED`` (``failed``) with the error code and message;
* Juniper ZTP alike: a fetch -> first contact, done (config and image fetched) -> finished, a ZTP
  error -> failed;
* with ``REQUIRE_CLAIM`` and ``SOT_UNKNOWN_STATUS``: an unknown serial is created in the
  source with that status (``planned``), so the engineer claims it where they work.

The PnP HTTP layer calls :func:`after_message` after each message's transaction:
it queues a row when the device's target status changed (one SELECT when
write-back is on, nothing at all when off) and returns a callable the server
runs after the reply has been sent (:func:`drain`). A failure is stored on the
row (``last_error``) and retried after ``SOT_RETRY_BACKOFF`` seconds (doubling,
at most 32 times that); provisioning never waits for or fails on the source.
Workers claim a row with a conditional UPDATE, so several gunicorn workers or
hosts never send one row twice at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.pnp import workflow as wf
from app.sot.sources import SourceError, make_source
from app.storage.db import utcnow
from app.storage.models import DeviceState, InventoryItem, SotWriteback
from app.ztp import service as ztp

log = logging.getLogger("pnp.sot")
CLAIM_SECONDS = 120
SUPERSEDED = "superseded by a newer status"


def enabled(config: Config) -> bool:
    """True when a NetBox/Nautobot source is configured and any write-back setting is on."""
    return config.inventory_source in ("netbox", "nautobot") and any(
        (config.sot_status_first_contact, config.sot_status_finished, config.sot_status_failed,
         config.require_claim and config.sot_unknown_status))


def target_status(config: Config, row: DeviceState) -> tuple[str, str, bool]:
    """``(status, note, ok)`` the source should show for a device row ("" = none configured).

    Cisco PnP: FINISHED / ERROR, BOOTFLASH_NO_SPACE / anything else. Juniper ZTP: done (config
    and, when it has one, image fetched completely) / ZTP error / anything else.
    """
    if row.vendor == "juniper":
        if row.state == ztp.DONE:
            return (config.sot_status_finished,
                    f"Provisioned by Juniper ZTP: config{' and image' if row.image_fetched_at else ''} fetched "
                    f"from {row.ip_address or '?'} ({row.pid}, MAC {row.mac_address}).", True)
        if row.state == ztp.ZTP_ERROR:
            return (config.sot_status_failed, f"Juniper ZTP failed: {row.last_error_code or 'error'}: "
                                              f"{row.last_error_message or '(no message)'}", False)
        return (config.sot_status_first_contact, f"First ZTP request from {row.ip_address or '?'} ({row.pid}).",
                True)
    if row.state == wf.State.FINISHED.value:
        seconds = int(((row.finished_at or row.last_contact) - row.first_seen).total_seconds())
        versions = f"IOS-XE {row.running_version or '?'}" + (
            f" after {row.image_installs} image install(s)" if row.image_installs else " (no upgrade needed)")
        return (config.sot_status_finished,
                f"Provisioned by the PnP server in {seconds} s: {row.pid} {row.serial_number}, {versions}, "
                f"from {row.ip_address or '?'}.", True)
    if row.state in {s.value for s in wf.PARKED}:
        return (config.sot_status_failed,
                f"PnP provisioning failed in step {row.failed_state or row.state}: "
                f"{row.last_error_code or 'error'}: {row.last_error_message or '(no message)'}", False)
    return (config.sot_status_first_contact,
            f"First contact with the PnP server from {row.ip_address or '?'} ({row.pid}, "
            f"IOS-XE {row.running_version or '?'}).", True)


def _enqueue(session: Session, now: datetime, **values) -> None:
    session.add(SotWriteback(created_at=now, next_try_at=now, attempts=0, **values))


def queue_for(sessions: sessionmaker[Session], config: Config, serial: str, now: datetime | None = None) -> bool:
    """Queue what the source should learn about ``serial`` now; True when a row was queued."""
    now = now or utcnow()
    with sessions() as session, session.begin():
        found = session.execute(select(DeviceState, InventoryItem).outerjoin(
            InventoryItem, InventoryItem.serial_number == DeviceState.serial_number)
            .where(DeviceState.serial_number == serial)).one_or_none()
        if found is None:
            return False
        row, item = found
        if item is None and row.vendor == "juniper":  # Juniper ZTP rows are keyed by MAC
            item = session.scalars(select(InventoryItem).where(InventoryItem.mac_address == row.serial_number)
                                   .limit(1)).first()
            if item is None:
                return False
        if item is None:
            if not (config.require_claim and config.sot_unknown_status):
                return False
            if session.scalar(select(SotWriteback.id).where(SotWriteback.serial_number == serial,
                                                             SotWriteback.action == "create").limit(1)):
                return False
            _enqueue(session, now, serial_number=serial, source=config.inventory_source, sot_id=None,
                     action="create", status=config.sot_unknown_status,
                     note=f"Unknown device {row.pid} {serial} asked the PnP server for work from "
                          f"{row.ip_address or '?'}: created as {config.sot_unknown_status}; "
                          "give it a name and status to provision it.")
            return True
        if item.source != config.inventory_source or not item.sot_id:
            return False
        status, note, _ok = target_status(config, row)
        if not status:
            return False
        last = session.scalar(select(SotWriteback.status).where(
            SotWriteback.serial_number == item.serial_number, SotWriteback.action == "status")
            .order_by(SotWriteback.id.desc()).limit(1))
        if last == status:
            return False
        _enqueue(session, now, serial_number=item.serial_number, source=config.inventory_source,
                 sot_id=item.sot_id, action="status", status=status, note=note)
        return True


def after_message(sessions: sessionmaker[Session], config: Config, serial: str,
                  state: dict) -> Callable[[], None] | None:
    """After a PnP message's transaction: queue a write-back if due; returns the drain to run after the
    reply, or None. ``state`` is per-process memory (the next time due retries are looked at).

    Never raises: a broken write-back is logged and provisioning goes on.
    """
    if not enabled(config):
        return None
    try:
        queued = queue_for(sessions, config, serial)
    except Exception:  # noqa: BLE001 - never block provisioning on the write-back
        log.exception("%s: status write-back not queued", serial)
        return None
    now = utcnow()
    if not queued and now < state.get("next_drain", now):
        return None
    state["next_drain"] = now + timedelta(seconds=max(1, config.sot_retry_backoff))

    def run() -> None:
        try:
            drain(sessions, config)
        except Exception:  # noqa: BLE001 - runs after the reply; nothing may escape into the server
            log.exception("status write-back failed")
    return run


@dataclass
class DrainResult:
    """Rows written (``done``), failed this time (``failed``: one line each), ``superseded``."""

    done: int = 0
    superseded: int = 0
    failed: list[str] = field(default_factory=list)


def _claim(sessions: sessionmaker[Session], now: datetime, limit: int) -> list[SotWriteback]:
    with sessions() as session, session.begin():
        ids = session.scalars(select(SotWriteback.id).where(
            SotWriteback.done_at.is_(None), SotWriteback.next_try_at <= now,
            or_(SotWriteback.claimed_until.is_(None), SotWriteback.claimed_until < now))
            .order_by(SotWriteback.id).limit(limit)).all()
    claimed = []
    for row_id in ids:
        with sessions() as session, session.begin():
            got = session.execute(update(SotWriteback).where(
                SotWriteback.id == row_id, SotWriteback.done_at.is_(None),
                or_(SotWriteback.claimed_until.is_(None), SotWriteback.claimed_until < now))
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
                .execution_options(synchronize_session=False)).rowcount
            if got:
                row = session.get(SotWriteback, row_id)
                session.expunge(row)
                claimed.append(row)
    return claimed


def _superseded(sessions: sessionmaker[Session], row: SotWriteback) -> bool:
    if row.action != "status":
        return False
    with sessions() as session:
        return bool(session.scalar(select(SotWriteback.id).where(
            SotWriteback.serial_number == row.serial_number, SotWriteback.action == "status",
            SotWriteback.id > row.id).limit(1)))


def _send(sessions: sessionmaker[Session], source, row: SotWriteback, config: Config) -> str | None:
    """Perform one row against the source; returns the created device's id for ``create``."""
    if row.action == "create":
        with sessions() as session:
            pid = session.scalar(select(DeviceState.pid).where(DeviceState.serial_number == row.serial_number))
        sot_id = source.create_device(row.serial_number, pid or "", row.status, config.sot_unknown_site,
                                      config.sot_unknown_role)
        source.add_note(sot_id, row.note, True)
        return sot_id
    source.set_status(row.sot_id, row.status)
    source.add_note(row.sot_id, row.note, row.status != config.sot_status_failed)
    return row.sot_id


def drain(sessions: sessionmaker[Session], config: Config, source=None, limit: int = 50,
          now: datetime | None = None) -> DrainResult:
    """Send the due queue rows (oldest first) to the source; failures are stored and retried later."""
    now = now or utcnow()
    result = DrainResult()
    rows = _claim(sessions, now, limit)
    if not rows:
        return result
    try:
        source = source or make_source(config)
    except Exception as exc:  # noqa: BLE001 - e.g. a bad SOT_URL: stored on every claimed row
        source, setup_error = None, f"source of truth unusable: {exc}"
    for row in rows:
        values: dict = {"claimed_until": None}
        try:
            if source is None:
                raise SourceError(setup_error)
            if _superseded(sessions, row):
                values.update(done_at=now, last_error=SUPERSEDED)
                result.superseded += 1
            else:
                sot_id = _send(sessions, source, row, config)
                values.update(done_at=utcnow(), last_error=None, attempts=row.attempts + 1, sot_id=sot_id)
                result.done += 1
                log.info("%s: %s %s written to %s", row.serial_number, row.action, row.status, row.source)
        except Exception as exc:  # noqa: BLE001 - SourceError and anything else a source raises
            delay = config.sot_retry_backoff * min(2 ** row.attempts, 32)
            values.update(attempts=row.attempts + 1, last_error=str(exc)[:2000],
                          next_try_at=now + timedelta(seconds=delay))
            result.failed.append(f"{row.serial_number}: {row.action} {row.status}: {exc}")
            log.warning("%s: write-back %s %s failed (retry in %d s): %s", row.serial_number, row.action,
                        row.status, delay, exc)
        with sessions() as session, session.begin():
            session.execute(update(SotWriteback).where(SotWriteback.id == row.id).values(**values)
                            .execution_options(synchronize_session=False))
    return result


def queue_summary(sessions: sessionmaker[Session]) -> dict:
    """``{"pending": n, "failing": n, "rows": [...]}``: not yet written rows, newest first (for the dashboard/API)."""
    with sessions() as session:
        pending = session.scalar(select(func.count(SotWriteback.id)).where(SotWriteback.done_at.is_(None))) or 0
        failing = session.scalar(select(func.count(SotWriteback.id)).where(
            SotWriteback.done_at.is_(None), SotWriteback.last_error.is_not(None))) or 0
        rows = session.scalars(select(SotWriteback).where(SotWriteback.done_at.is_(None))
                               .order_by(SotWriteback.id.desc()).limit(50)).all()
        return {"pending": pending, "failing": failing, "rows": [
            {"serial_number": r.serial_number, "action": r.action, "status": r.status, "attempts": r.attempts,
             "next_try_at": r.next_try_at, "last_error": r.last_error, "created_at": r.created_at} for r in rows]}
