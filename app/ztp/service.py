"""History of Juniper ZTP fetches: one device_state row per MAC, events per fetch.

Storage rules (documented for the dashboard):

* ``vendor='juniper'``; ``serial_number`` = ``mac_address`` = ``aa:bb:cc:dd:ee:ff``
  (the MAC of the ZTP interface keys the device: the VCI carries a serial only
  on some models, and may differ between interfaces); ``pid`` = the model from
  the VCI; ``udi`` = ``PID:<model>,VID:,SN:<serial from the VCI>``;
  ``vci`` = option 60 as sent; ``hostname`` from the inventory.
* A download is two events: kind ``fetch`` when it starts (what, how many
  bytes; ``success`` NULL) and, when the response is closed, kind ``fetch``
  (``success`` true: every byte sent) or ``error`` (``INCOMPLETE``: the device
  went away after N of M bytes). Only a complete download counts:
  ``configured`` (config) and ``image_fetched_at`` (image).
* ``state``: :data:`DONE` once the config **and**, when the device has an
  image (model catalogue or the inventory row's ``image``), the image were
  fetched completely; else :data:`CONFIG_FETCHED` / :data:`IMAGE_FETCHED` for
  the half done, :data:`FETCHING` before; :data:`ZTP_ERROR` when nothing could
  be served (no config, no image, template error).
* A VCI whose model or serial disagrees with the device's inventory row is an
  ``error`` event ``VCI_MISMATCH`` and the row's last error (the file is still
  served: the MAC decides).

Each change runs under the row lock as one unit of work (app.storage.lock.locked, like PnP:
run again from a fresh read after a Galera certification failure or a lost connection).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from app.storage.db import utcnow
from app.storage.lock import locked
from app.storage.models import DeviceEvent, DeviceState
from app.ztp.juniper import FetchRequest

__all__ = ["CONFIG_FETCHED", "DONE", "FETCHING", "IMAGE_FETCHED", "ZTP_ERROR", "record_fetch",
           "record_transfer", "vci_mismatch"]

log = logging.getLogger("pnp.ztp")

FETCHING = "ZTP_FETCHING"
CONFIG_FETCHED = "ZTP_CONFIG_FETCHED"
IMAGE_FETCHED = "ZTP_IMAGE_FETCHED"
DONE = "ZTP_DONE"
ZTP_ERROR = "ZTP_ERROR"
MISMATCH = "VCI_MISMATCH"


def vci_mismatch(req: FetchRequest, row: dict) -> str | None:
    """What in the VCI disagrees with the inventory row (model, serial), or None."""
    problems = []
    model = (row.get("model") or "").strip().lower()
    if model and model != req.model:
        problems.append(f"model {req.model} (inventory: {model})")
    serial = (row.get("serial") or "").strip()
    if serial and req.serial and serial.upper() != req.serial.upper():
        problems.append(f"serial {req.serial} (inventory: {serial})")
    return f"VCI {req.vci} says {' and '.join(problems)}" if problems else None


def _state(row: DeviceState, needs_image: bool) -> str:
    image = row.image_fetched_at is not None
    if row.configured and (image or not needs_image):
        return DONE
    if row.configured:
        return CONFIG_FETCHED
    return IMAGE_FETCHED if image else FETCHING


def _identify(row: DeviceState, req: FetchRequest, now) -> None:
    row.vendor = "juniper"
    row.mac_address = req.mac
    row.vci = req.vci
    row.pid = req.model
    if req.serial or not row.udi or not row.udi.startswith(f"PID:{req.model},"):
        row.udi = f"PID:{req.model},VID:,SN:{req.serial or ''}"  # a VCI without serial keeps the SN
    row.last_contact = now


def record_fetch(sessions: sessionmaker[Session], req: FetchRequest, source_ip: str | None, *,
                 served: str | None = None, error: str | None = None, status: int = 200,
                 hostname: str | None = None, image: str | None = None, mismatch: str | None = None,
                 ascii_only: bool = False, create: bool = True) -> None:
    """Record the start of one ``/ztp_fetch`` download (creating the device row on first contact).

    ``served`` describes what is being sent, or ``error`` why nothing is
    (with ``status``, the HTTP status answered). ``hostname`` (inventory) is
    stored when given, ``image`` (image mode) as ``target_image``,
    ``mismatch`` (:func:`vci_mismatch`) as an event and the last error.
    Values longer than their column (a VCI, a model, a hostname) are cut and recorded by
    app/storage/fit.py at flush; ``ascii_only`` also escapes non-ASCII text (the route's
    retry after a database error that is not an outage).
    With ``create=False`` a MAC without a row only gets a log line (a failed fetch of a MAC
    that is in no inventory: made-up MACs must not add a row per request).
    Raises SQLAlchemy errors (the route logs them and still answers the device).
    """
    now = utcnow()
    defaults = {"vendor": "juniper", "mac_address": req.mac, "first_seen": now, "last_contact": now,
                "state": ZTP_ERROR if error else FETCHING}
    info = {"fit_ascii": True} if ascii_only else {}
    def unit(session: Session, row: DeviceState | None) -> tuple:
        """The row changes and events of this fetch; returns the log lines to write once committed."""
        if row is None:
            return ((logging.WARNING, "ztp %s %s from %s (%s): %d %s (unknown MAC: not recorded)",
                     req.mode, req.mac, source_ip, req.vci, status, error),)
        _identify(row, req, now)
        if source_ip:
            row.ip_address = source_ip
        if hostname:
            row.hostname = hostname
        service = f"ztp-{req.mode}"
        if error:
            row.state = ZTP_ERROR
            row.last_error_code = str(status)
            row.last_error_message = f"{service}: {error}"
            session.add(DeviceEvent(device_id=row.id, at=now, kind="error", service=service, success=False,
                                    error_code=str(status), message=f"{req.vci}: {error}"))
            # the exchange at INFO: the failure's one WARNING line comes from app/ops/notify.py
            return ((logging.INFO, "ztp %s %s from %s (%s): %d %s", req.mode, req.mac, source_ip, req.vci,
                     status, error),)
        if image:
            row.target_image = image
        if row.state == ZTP_ERROR:
            row.state = FETCHING  # the end of this download decides (record_transfer)
        row.last_error_code = None
        row.last_error_message = None
        session.add(DeviceEvent(device_id=row.id, at=now, kind="fetch", service=service, success=None,
                                message=f"{req.vci}: sending {served} to {source_ip}"))
        if mismatch:
            row.last_error_code = MISMATCH
            row.last_error_message = f"{service}: {mismatch}"
            session.add(DeviceEvent(device_id=row.id, at=now, kind="error", service=service, success=False,
                                    error_code=MISMATCH, message=mismatch))
        return ((logging.INFO, "ztp %s %s from %s (%s): sending %s", req.mode, req.mac, source_ip, req.vci,
                 served),)

    _log(locked(sessions, req.mac, unit, defaults if create else None, info=info))


def _log(lines: tuple) -> None:
    """Write the ``(level, format, *args)`` lines a unit of work returned, after its COMMIT."""
    for level, fmt, *args in lines:
        log.log(level, fmt, *args)


def record_transfer(sessions: sessionmaker[Session], req: FetchRequest, *, what: str, sent: int,
                    size: int | None, complete: bool, needs_image: bool) -> None:
    """Record the end of a download: ``sent`` bytes of ``size`` (None = unknown), ``complete`` or not.

    A complete config sets ``configured``, a complete image ``image_fetched_at``;
    the state becomes :data:`DONE` when the config and (``needs_image``) the
    image are both complete. An incomplete download is an ``error`` event
    ``INCOMPLETE`` (the state is left as it was). Raises SQLAlchemy errors.
    """
    now = utcnow()
    def unit(session: Session, row: DeviceState | None) -> tuple:
        if row is None:  # the row was deleted by the operator meanwhile
            return ()
        row.last_contact = now
        service = f"ztp-{req.mode}"
        total = f"{size} bytes" if size is not None else "size unknown"
        if not complete:
            session.add(DeviceEvent(device_id=row.id, at=now, kind="error", service=service, success=False,
                                    error_code="INCOMPLETE",
                                    message=f"{req.vci}: {what} interrupted after {sent} of {total}"))
            return ((logging.WARNING, "ztp %s %s: %s interrupted after %d of %s", req.mode, req.mac, what, sent,
                     total),)
        if req.mode == "conf":
            row.configured = True
        else:
            row.image_fetched_at = now
        row.state = _state(row, needs_image)
        if row.state == DONE and row.finished_at is None:
            row.finished_at = now
        session.add(DeviceEvent(device_id=row.id, at=now, kind="fetch", service=service, success=True,
                                message=f"{req.vci}: {what} complete ({sent} bytes)"))
        return ((logging.INFO, "ztp %s %s: %s complete (%d bytes)", req.mode, req.mac, what, sent),)

    _log(locked(sessions, req.mac, unit))
