"""IOS-XE version strings: normalise, compare, and read them from image file names.

Image file names zero-pad the version (``c1100-universalk9.17.12.03a.SPA.bin``
→ ``17.12.03a``) while the device reports ``17.12.3a`` in ``versionString``.
Both normalise to the tuple ``(17, 12, 3, 'a')``. Engineering builds such as
``17.17.1prd14`` compare only exactly; classic IOS strings such as
``15.5(20140930:030825)`` are not comparable (None).
Source: docs/protocol.md pitfall P2.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)([a-z]*)$", re.IGNORECASE)
_ENGINEERING = re.compile(r"^(\d+)\.(\d+)\.(\d+)([a-z]+\d+)$", re.IGNORECASE)
_IN_FILE_NAME = re.compile(r"(?<!\d)(\d{2})\.(\d{1,2})\.(\d{1,2}[a-z]*(?:\d+)?)(?=\.)",
                           re.IGNORECASE)


def normalise_version(text: str | None) -> tuple | None:
    """``'17.12.03a'`` → ``(17, 12, 3, 'a')``; engineering builds keep their suffix.

    Returns None for anything that is not an IOS-XE dotted version (classic
    IOS ``15.5(…)``, empty, None).
    """
    if not text:
        return None
    text = text.strip()
    m = _VERSION.match(text) or _ENGINEERING.match(text)
    if not m:
        return None
    major, minor, rebuild, suffix = m.groups()
    return int(major), int(minor), int(rebuild), suffix.lower()


def same_version(running: str | None, target: str | None) -> bool | None:
    """True/False when both versions are comparable, None when either is not."""
    a, b = normalise_version(running), normalise_version(target)
    if a is None or b is None:
        return None
    return a == b


def version_from_image_name(file_name: str) -> str | None:
    """The version a bundle file name carries, as the device would report it.

    ``c1100-universalk9.17.12.03a.SPA.bin`` → ``17.12.3a``; None when the name
    carries no dotted version.
    """
    m = _IN_FILE_NAME.search(file_name or "")
    if not m:
        return None
    version = normalise_version(".".join(m.groups()))
    if version is None:
        return None
    major, minor, rebuild, suffix = version
    return f"{major}.{minor}.{rebuild}{suffix}"
