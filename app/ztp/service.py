"""History of Juniper ZTP fetches: one device_state row per MAC, one device_event per fetch.

Storage rules (documented for the dashboard):

* ``vendor='juniper'``; ``serial_number`` = ``mac_address`` = ``aa:bb:cc:dd:ee:ff``
  (the MAC of the ZTP interface keys the device: the VCI carries a serial only
  on some models, and may differ between interfaces); ``pid`` = the model from
  the VCI; ``udi`` = ``PID:<model>,VID:,SN:<serial from the VCI>``;
  ``vci`` = option 60 as sent; ``hostname`` from the inventory.
* ``state``: :data:`CONFIG_FETCHED` / :data:`IMAGE_FETCHED` after a served
  download (the last one wins: ZTP restarts repeat them), :data:`ZTP_ERROR`
  when nothing could be served (no config, no image, template error).
* events: kind ``fetch`` (service ``ztp-conf`` or ``ztp-image``, success
  true) or ``error`` (success false, ``error_code`` = HTTP status).

Each change runs under the row lock of app.storage.lock.device_lock, like PnP.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from app.storage.db import utcnow
from app.storage.lock import device_lock
from app.storage.models import DeviceEvent
from app.ztp.juniper import FetchRequest

__all__ = ["CONFIG_FETCHED", "IMAGE_FETCHED", "ZTP_ERROR", "record_fetch"]

log = logging.getLogger("pnp.ztp")

CONFIG_FETCHED = "ZTP_CONFIG_FETCHED"
IMAGE_FETCHED = "ZTP_IMAGE_FETCHED"
ZTP_ERROR = "ZTP_ERROR"


def record_fetch(sessions: sessionmaker[Session], req: FetchRequest, source_ip: str | None, *,
                 served: str | None = None, error: str | None = None, status: int = 200,
                 hostname: str | None = None, image: str | None = None, create: bool = True) -> None:
    """Record one ``/ztp_fetch`` attempt of a device (creating its row on first contact).

    ``served`` describes what was sent (success) or ``error`` why nothing was
    (with ``status``, the HTTP status answered). ``hostname`` (inventory) is
    stored when given, ``image`` (image mode) as ``target_image``.
    With ``create=False`` a MAC without a row only gets a log line (a failed fetch of a MAC
    that is in no inventory: made-up MACs must not add a row per request).
    Raises SQLAlchemy errors (the route logs them and still answers the device).
    """
    now = utcnow()
    defaults = {"vendor": "juniper", "mac_address": req.mac, "first_seen": now, "last_contact": now,
                "state": ZTP_ERROR if error else (CONFIG_FETCHED if req.mode == "conf" else IMAGE_FETCHED)}
    with device_lock(sessions, req.mac, defaults=defaults if create else None) as (session, row):
        if row is None:
            log.warning("ztp %s %s from %s (%s): %d %s (unknown MAC: not recorded)", req.mode, req.mac,
                        source_ip, req.vci, status, error)
            return
        row.vendor = "juniper"
        row.mac_address = req.mac
        row.vci = req.vci
        row.pid = req.model[:64]
        if req.serial or not row.udi or not row.udi.startswith(f"PID:{req.model},"):
            row.udi = f"PID:{req.model},VID:,SN:{req.serial or ''}"[:255]  # a VCI without serial keeps the SN
        row.last_contact = now
        if source_ip:
            row.ip_address = source_ip
        if hostname:
            row.hostname = hostname
        service = f"ztp-{req.mode}"
        if error:
            row.state = ZTP_ERROR
            row.last_error_code = str(status)
            row.last_error_message = error
            session.add(DeviceEvent(device_id=row.id, at=now, kind="error", service=service, success=False,
                                    error_code=str(status), message=f"{req.vci}: {error}"))
            log.warning("ztp %s %s from %s (%s): %d %s", req.mode, req.mac, source_ip, req.vci, status, error)
            return
        if req.mode == "conf":
            row.state = CONFIG_FETCHED
            row.configured = True
        else:
            row.state = IMAGE_FETCHED
            row.target_image = image
        row.last_error_code = None
        row.last_error_message = None
        session.add(DeviceEvent(device_id=row.id, at=now, kind="fetch", service=service, success=True,
                                message=f"{req.vci}: sent {served} to {source_ip}"))
        log.info("ztp %s %s from %s (%s): sent %s", req.mode, req.mac, source_ip, req.vci, served)
