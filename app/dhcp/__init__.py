"""DHCP helper: Cisco PnP option 43 and Juniper ZTP snippets for ISC Kea 2.2 and ISC dhcpd 4.4.

Pure library: no Flask, nothing else from ``app``. Build a :class:`DhcpSpec`
from the dataclasses, then call :func:`kea_config` / :func:`kea_merge`
(kea-dhcp4 JSON), :func:`dhcpd_config` (dhcpd.conf text) or
:func:`app.dhcp.kea_api.kea_push` (running Kea). Reference:
docs/protocol.md §16-§17 and docs/protocol.md §1.3.
"""

from .dhcpd import DhcpdOptions, dhcpd_config, dhcpd_diff, dhcpd_merge
from .kea import (
    MANAGED_BY,
    KeaOptions,
    default_hooks_dir,
    is_managed,
    kea_config,
    kea_config_text,
    kea_diff,
    kea_dumps,
    kea_loads,
    kea_merge,
)
from .kea_api import KeaControl, KeaError, PushResult, kea_push
from .model import (
    CiscoPidClass,
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperOverrides,
    JuniperZtp,
    PnpServer,
    Subnet,
    normalize_mac,
)
from .option43 import parse_option43, pnp_option43

__all__ = [
    "CiscoPidClass",
    "DhcpSpec",
    "DhcpdOptions",
    "InventoryDevice",
    "JuniperFileServer",
    "JuniperModel",
    "JuniperOverrides",
    "JuniperZtp",
    "KeaControl",
    "KeaError",
    "KeaOptions",
    "MANAGED_BY",
    "PushResult",
    "PnpServer",
    "Subnet",
    "default_hooks_dir",
    "dhcpd_config",
    "dhcpd_diff",
    "dhcpd_merge",
    "is_managed",
    "kea_diff",
    "kea_config",
    "kea_config_text",
    "kea_dumps",
    "kea_loads",
    "kea_merge",
    "kea_push",
    "normalize_mac",
    "parse_option43",
    "pnp_option43",
]
