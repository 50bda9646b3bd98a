"""Who may be a device: the DEVICE_NETWORKS check of the device-facing routes.

``/pnp/*``, ``/ztp_fetch``, ``/images``, ``/configs`` and ``/files`` call
:func:`device_refusal` before anything else (a ``before_request`` hook of each
blueprint) and answer 403 with its reason. The client address is
``request.remote_addr``: the socket peer, or the X-Forwarded-For entry that
PROXY_HOPS trusts (Werkzeug's ProxyFix in create_app), never a header the
client alone controls. Pure: no Flask here.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["device_refusal"]


class _Networks(Protocol):
    device_networks: tuple[str, ...]

    def is_device_address(self, address: str | None) -> bool: ...


def device_refusal(config: _Networks, address: str | None) -> str | None:
    """None when ``address`` may act as a device (app.config.Config.is_device_address),
    else the one-line reason for the 403."""
    if config.is_device_address(address):
        return None
    return f"source address {address} is not in DEVICE_NETWORKS ({', '.join(config.device_networks)})"
