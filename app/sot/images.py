"""Per-device image override from the source of truth (custom field ``pnp_image``).

The override names an image of the catalogue (``IMAGES``, with its md5, size and
version already resolved); for that device the entry is put first with the PID
glob ``*``, so the workflow's ``image_for(pid)`` picks it. A name that is not in
the catalogue is ignored (the sync reports it): an image is only ever sent with
the md5 the catalogue gives.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config, ImageEntry
from app.storage.models import InventoryItem


def override_entry(config: Config, image: str | None) -> ImageEntry | None:
    """The catalogue entry named ``image`` as a catch-all entry, or None."""
    entry = next((e for e in config.images if e.file == image), None) if image else None
    return dataclasses.replace(entry, pid="*") if entry is not None else None


def config_for(sessions: sessionmaker[Session], config: Config, serial: str) -> Config:
    """``config`` for device ``serial``: with its image override first in IMAGES when it has one.

    One SELECT per call when a source of truth is configured; ``config`` itself otherwise.
    """
    if config.inventory_source == "csv" or not config.images:
        return config
    with sessions() as session:
        image = session.scalar(select(InventoryItem.image).where(InventoryItem.serial_number == serial))
    entry = override_entry(config, image)
    return dataclasses.replace(config, images=(entry, *config.images)) if entry else config
