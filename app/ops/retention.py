"""Growth bounds: expire devices never seen past first contact, prune old history, in batches.

Two rules, both from settings (seconds):

* ``UNSEEN_DEVICE_EXPIRY`` (default 7 days): a Cisco row still in the first
  workflow step (``app.pnp.workflow.INITIAL_STATE``: it never answered a job)
  that is not in the inventory and has not been heard from for that long is
  deleted with its events. A made-up serial leaves no permanent row. A
  Juniper row that never got its config (``ZTP_ERROR`` or only the image,
  ``ZTP_IMAGE_FETCHED``, a download never finished) and whose MAC is in no inventory expires the same way.
* ``EVENT_RETENTION`` (default 180 days, 0 = keep): history events older than
  that are deleted. Each device keeps its summary, which lives in its
  ``device_state`` row (state, first/last contact, last error, finished_at),
  so the dashboard still says what happened.

Deletes go in batches of ``BATCH`` rows, one short transaction each, so a
large backlog never holds a long lock. ``prune()`` is what ``python3 run.py db
prune`` runs; :class:`AutoPrune` runs it at most once per ``PRUNE_INTERVAL``
per worker process, in a background thread started from a request (the
request itself does not wait).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.pnp import workflow as wf
from app.storage.db import utcnow
from app.storage.models import DeviceEvent, DeviceState, InventoryItem
from app.ztp.service import FETCHING, IMAGE_FETCHED, ZTP_ERROR

__all__ = ["BATCH", "AutoPrune", "PruneResult", "juniper_known", "prune"]

log = logging.getLogger("pnp.prune")
BATCH = 1000


@dataclass
class PruneResult:
    """What one prune removed: device rows expired and history events deleted (theirs included)."""

    devices: int = 0
    events: int = 0


def prune(sessions: sessionmaker[Session], config: Config,
          juniper_known: Callable[[str], object] | None = None, batch: int = BATCH) -> PruneResult:
    """Expire never-provisioned rows and delete old events (see the module docstring).

    ``juniper_known(mac)`` tells whether a MAC is in the Juniper inventory
    (app.ztp.juniper.InventoryLookup; None = no Juniper row expires). Raises
    SQLAlchemy errors.
    """
    result = PruneResult()
    now = utcnow()
    if config.unseen_device_expiry > 0:
        cutoff = now - timedelta(seconds=config.unseen_device_expiry)
        _expire_devices(sessions, cutoff, juniper_known, batch, result)
    if config.event_retention > 0:
        cutoff = now - timedelta(seconds=config.event_retention)
        while True:
            with sessions.begin() as session:
                ids = session.scalars(select(DeviceEvent.id).where(DeviceEvent.at < cutoff)
                                      .order_by(DeviceEvent.id).limit(batch)).all()
                if ids:
                    session.execute(delete(DeviceEvent).where(DeviceEvent.id.in_(ids)))
            result.events += len(ids)
            if len(ids) < batch:
                break
    if result.devices or result.events:
        log.info("pruned %d never-provisioned devices and %d old history events", result.devices, result.events)
    return result


def _expire_devices(sessions, cutoff, juniper_known, batch, result: PruneResult) -> None:
    not_claimed = ~exists().where(InventoryItem.serial_number == DeviceState.serial_number)
    cisco = (DeviceState.vendor != "juniper") & (DeviceState.state == wf.INITIAL_STATE.value) & not_claimed
    juniper = (DeviceState.vendor == "juniper") & DeviceState.state.in_((ZTP_ERROR, FETCHING, IMAGE_FETCHED))
    after = 0
    while True:
        with sessions.begin() as session:
            rows = session.execute(
                select(DeviceState.id, DeviceState.vendor, DeviceState.serial_number)
                .where(DeviceState.last_contact < cutoff, DeviceState.id > after,
                       cisco | juniper if juniper_known is not None else cisco)
                .order_by(DeviceState.id).limit(batch).with_for_update()).all()
            doomed = [r.id for r in rows if r.vendor != "juniper" or not juniper_known(r.serial_number)]
            if doomed:
                events = session.execute(delete(DeviceEvent).where(DeviceEvent.device_id.in_(doomed)))
                session.execute(delete(DeviceState).where(DeviceState.id.in_(doomed)))
                result.events += events.rowcount or 0
                result.devices += len(doomed)
        if len(rows) < batch:
            return
        after = rows[-1].id


def juniper_known(inventory) -> Callable[[str], bool] | None:
    """``mac -> bool`` over a Juniper inventory lookup (app.ztp.juniper.InventoryLookup); a broken
    inventory file counts every MAC as known, so no Juniper row expires by mistake."""
    if inventory is None:
        return None

    def known(mac: str) -> bool:
        try:
            return inventory(mac) is not None
        except ValueError:
            return True
    return known


class AutoPrune:
    """Runs :func:`prune` at most once per ``config.prune_interval`` seconds in this process.

    ``maybe_start()`` is cheap (a clock read) and never blocks: when a run is
    due it starts one daemon thread; a run still going is not doubled. A
    failure is logged and retried at the next interval.
    """

    def __init__(self, sessions: sessionmaker[Session], config: Config,
                 juniper_known: Callable[[str], object] | None = None):
        self.sessions, self.config, self.juniper_known = sessions, config, juniper_known
        self._lock = threading.Lock()
        self._next = time.monotonic() + min(60, config.prune_interval)  # not during start-up

    def maybe_start(self) -> bool:
        """Start a prune in the background when one is due; True when started."""
        interval = self.config.prune_interval
        if interval <= 0 or time.monotonic() < self._next or not self._lock.acquire(blocking=False):
            return False
        self._next = time.monotonic() + interval
        threading.Thread(target=self._run, name="pnp-prune", daemon=True).start()
        return True

    def _run(self) -> None:
        try:
            prune(self.sessions, self.config, self.juniper_known)
        except Exception as exc:  # noqa: BLE001 - a background job: log, try again next interval
            log.error("automatic prune failed: %s: %s", exc.__class__.__name__, exc)
        finally:
            self._lock.release()
