"""Served names stay inside their folder: one check for every device-facing download.

Used by /images, /configs, /files (app/files/routes.py), the day-0 lookup
(app/files/day0.py) and /ztp_fetch (app/ztp/juniper.py).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MAX_NAME_BYTES", "resolve_inside"]

MAX_NAME_BYTES = 255  # NAME_MAX of Linux file systems: a longer path component cannot exist


def resolve_inside(folder: Path, name: str) -> Path | None:
    """``folder/name`` when it is a regular file that really lies inside ``folder``, else None.

    ``name`` is a relative path from the URL (``a/b.bin``). Refused (None): an
    empty name, a hidden component (``.md5-cache.json``, ``..``), a component
    over 255 bytes, a NUL byte, an absolute path, and any name whose real path
    (symlinks resolved with ``os.path.realpath``) leaves the real ``folder``: a
    symlink inside the folder pointing inside it is served, one pointing to
    ``/etc`` is not. OS errors (name too long, loops) also give None: the route
    answers 404, never a 500.
    """
    parts = name.split("/")
    if not name or name.startswith("/") or "\x00" in name:
        return None
    if any(not part or part.startswith(".") or len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
           for part in parts):
        return None
    try:
        root = os.path.realpath(folder)
        real = os.path.realpath(os.path.join(root, *parts))
        if os.path.commonpath([root, real]) != root or real == root:
            return None
        return Path(folder, *parts) if os.path.isfile(real) else None
    except (OSError, ValueError):
        return None
