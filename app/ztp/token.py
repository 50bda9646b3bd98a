"""Per-device tokens for ``/ztp_fetch`` configs: a known MAC alone is not enough.

With ``ZTP_TOKEN_SECRET`` set (``PNP_ZTP_TOKEN_SECRET`` in the environment),
a Juniper config is served only at
``/ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>/<token>.conf``, where the token is
an HMAC-SHA256 of the MAC under the secret (32 hex digits). The DHCP helper
(``python3 run.py dhcp ...``) writes that name into option 43 sub-option 1 of
each inventory device's reservation (:func:`config_file_name`); the route
checks it with :func:`token_matches`. A host that learns the token still
gets the config: it travels in clear DHCP and HTTP (docs/config-secrecy.md).
"""

from __future__ import annotations

import hashlib
import hmac

from app.common.mac import mac_dashed, normalize_mac

__all__ = ["DEFAULT_VCI", "config_file_name", "token_matches", "ztp_token"]

#: The VCI segment in a reservation's file name when the inventory names no model
#: (the route needs ``Juniper-<model>``; a conf request does not depend on the model).
DEFAULT_VCI = "Juniper-ztp"


def ztp_token(secret: str, mac: str) -> str:
    """The token of ``mac`` (any MAC form) under ``secret``: 32 lower-case hex digits.

    Raises ValueError for an empty secret or a bad MAC.
    """
    if not secret:
        raise ValueError("ZTP token secret is empty")
    message = f"ztp-conf:{normalize_mac(mac)}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def config_file_name(secret: str, mac: str, model: str | None = None) -> str:
    """Sub-option 1 for ``mac``: ``ztp_fetch/conf/Juniper-<model>/<aa-bb-cc-dd-ee-ff>/<token>.conf``."""
    vci = f"Juniper-{model}" if model else DEFAULT_VCI
    return f"ztp_fetch/conf/{vci}/{mac_dashed(normalize_mac(mac))}/{ztp_token(secret, mac)}.conf"


def token_matches(secret: str, mac: str, name: str | None) -> bool:
    """True when ``name`` (the last path segment, ``<token>.conf``) carries ``mac``'s token."""
    if not name:
        return False
    given = name[:-5] if name.endswith(".conf") else name
    return hmac.compare_digest(given.encode("utf-8", "replace"), ztp_token(secret, mac).encode())
