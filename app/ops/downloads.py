"""Who a file download is for: the device behind a source address.

Devices fetch images, day-0 configs and guestshell files by plain HTTP GET
(docs/protocol.md: image-install and file-transfer jobs carry a URL, not a
serial), so the serial of a download is known only from a signed config URL
or from the address: the device whose last work-request came from it, the one
with a pending file job (``image-install``, ``file-transfer``, ``config-upgrade``)
first when several share the address (NAT).
"""

from __future__ import annotations

import logging

from sqlalchemy import case, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.storage.models import DeviceState

log = logging.getLogger("pnp.files")
#: the jobs whose answer is a download from this server
FILE_JOBS = ("image-install", "file-transfer", "config-upgrade")


def serial_at(sessions: sessionmaker[Session], address: str | None) -> str | None:
    """The serial of the device last seen at ``address`` (a pending file job first, then the
    latest contact), or None when no device is known there or the database cannot tell
    (a download never fails for this)."""
    if not address:
        return None
    pending_file_job = case((DeviceState.pending_service.in_(FILE_JOBS), 0), else_=1)
    try:
        with sessions() as session:
            return session.scalars(
                select(DeviceState.serial_number).where(DeviceState.ip_address == address)
                .order_by(pending_file_job, DeviceState.last_contact.desc()).limit(1)).first()
    except SQLAlchemyError as exc:
        log.warning("download from %s: the database cannot tell which device it is (%s)",
                    address, exc.__class__.__name__)
        return None
