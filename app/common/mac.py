"""MAC addresses in every form the field writes them, normalised once.

Accepted (any case, surrounding blanks ignored): ``aa:bb:cc:dd:ee:ff``,
``aa-bb-cc-dd-ee-ff`` (mixed ``:``/``-`` too), Cisco's dotted
``aabb.ccdd.eeff`` and the bare ``aabbccddeeff``. The stored form is
``aa:bb:cc:dd:ee:ff``; DHCP sub-option 1 and Juniper file names use the dashed
form (``mac_dashed``).
"""

from __future__ import annotations

import re

_FORMS = (
    re.compile(r"^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$"),
    re.compile(r"^([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})$"),
    re.compile(r"^([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$"),
)
FORMS_HELP = "aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or aabbccddeeff"


def normalize_mac(value: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` for a MAC in any of the accepted forms.

    Raises ValueError (with the value and the accepted forms) for anything else.
    """
    if not isinstance(value, str):
        raise ValueError(f"MAC address must be a string, got {value!r}")
    text = value.strip().lower()
    for form in _FORMS:
        match = form.match(text)
        if match:
            return ":".join(match.groups())
    raise ValueError(f"invalid MAC address {value!r}: expected {FORMS_HELP}")


def mac_dashed(mac: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` -> ``aa-bb-cc-dd-ee-ff``."""
    return mac.replace(":", "-")
