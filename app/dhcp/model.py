"""Input dataclasses of the DHCP helper (Cisco PnP option 43, Juniper ZTP option 43/150).

All classes are frozen and validate themselves in ``__post_init__``: a bad value
raises ``ValueError`` with a message that names the field. Sequences given as
lists are stored as tuples, MAC addresses as lower-case ``aa:bb:cc:dd:ee:ff``.

Nothing here imports Flask or the rest of ``app``; the generators in
``app.dhcp.kea`` and ``app.dhcp.dhcpd`` take a :class:`DhcpSpec`.

Sources: docs/protocol.md §16-§17, docs/protocol.md §1.2-§1.3.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.common.mac import normalize_mac

from .option43 import check_port as _check_port
from .option43 import is_hostname, pnp_option43

__all__ = [
    "CiscoPidClass",
    "DhcpSpec",
    "InventoryDevice",
    "JuniperFileServer",
    "JuniperModel",
    "JuniperZtp",
    "PnpServer",
    "Subnet",
    "normalize_mac",
]

Vendor = Literal["cisco", "juniper"]
TransferMode = Literal["http", "https", "tftp", "ftp"]
ConfigMode = Literal["per-mac", "static"]

# Junos sends lower-case model names in option 60 (Juniper-ex4300-48p,
# Juniper-qfx5100-48s-6q); matching is case-sensitive, so accept only those.
_JUNIPER_MODEL = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Cisco PIDs: C1131-8PWB, C9300-48P, ISR4451-X/K9, C8000V.
_CISCO_PID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/+._-]*$")


def _check_text(what: str, value: str) -> str:
    """Printable ASCII with no space, quote, backslash, comma, semicolon or control character.

    Such values go verbatim into Kea JSON strings and option data (where a comma
    separates fields), Kea expressions ('...') and dhcpd strings ("..."), so the
    characters that would need escaping in one of them are refused, not escaped.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    for ch in value:
        if not ("!" <= ch <= "~") or ch in "\"'\\,;":
            raise ValueError(f"{what} {value!r}: character {ch!r} is not allowed")
    return value


def _ipv4(what: str, value: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError):
        raise ValueError(f"{what} must be an IPv4 address, got {value!r}") from None


def _tuple(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, str):
        raise ValueError(f"{name} must be a list, not a string")
    object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class PnpServer:
    """Where Cisco PnP agents find the PnP server (the option-43 string).

    ``ip`` (IPv4 -> ``B2``, IPv6 -> ``B3``) or ``hostname`` (-> ``B1``) names the
    server; when both are set the hostname is what goes into option 43 (the
    agent resolves it) and ``ip`` is unused there. ``port`` is the HTTP port
    (``K4``), ``https_port`` the HTTPS one (``K5``, used when ``https`` is true).
    HTTPS needs ``trustpool_url`` (``T``, http/https URL of the CA bundle) and
    ``ntp`` (``Z``, NTP server address, so the agent can check certificate
    dates). ``debug`` gives ``5A1D`` (console traces) instead of ``5A1N``.

    Raises ValueError when the builder rules of docs/protocol.md §1.3 are broken
    (``I`` required, port 1-65535, ``K5`` needs ``T`` and ``Z``, ``B`` matches ``I``).
    """

    ip: str | None = None
    port: int = 80
    https: bool = False
    https_port: int = 443
    trustpool_url: str | None = None
    ntp: str | None = None
    hostname: str | None = None
    debug: bool = False

    def __post_init__(self) -> None:
        pnp_option43(self)  # validates; raises ValueError


@dataclass(frozen=True)
class CiscoPidClass:
    """A per-PID client class for Cisco PnP, matched on option 124 (V-I vendor class).

    ``pid_prefix`` is compared with the PID at byte offset 6 of option 124
    (``C11`` catches every ``C1111-*``/``C1131-*``). ``server`` overrides the
    default :class:`PnpServer` for these devices; ``None`` sends the default
    option-43 string (the class then only classifies).
    Source: docs/protocol.md §17.1 and §3.2 (trap 3).
    """

    pid_prefix: str
    server: PnpServer | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pid_prefix, str) or not _CISCO_PID.match(self.pid_prefix):
            raise ValueError(f"invalid Cisco PID prefix {self.pid_prefix!r}")
        if len(self.pid_prefix) > 64:
            raise ValueError(f"Cisco PID prefix {self.pid_prefix!r} is too long")

    @property
    def class_name(self) -> str:
        """``cisco-pnp-<pid prefix>``, lower case, other characters as '-' (``C11`` -> ``cisco-pnp-c11``)."""
        return "cisco-pnp-" + re.sub(r"[^a-z0-9]+", "-", self.pid_prefix.lower()).strip("-")


@dataclass(frozen=True)
class Subnet:
    """The IPv4 subnet the ZTP devices boot in.

    ``subnet`` is a CIDR (``192.0.2.0/24``), ``id`` the Kea subnet id (explicit,
    mandatory from Kea 2.6, docs/protocol.md §17.3), ``pool_start`` /
    ``pool_end`` the dynamic range, ``routers`` option 3, ``dns`` option 6,
    ``domain`` option 15, ``ntp`` option 42 (lists keep their order: it is a
    priority). Raises ValueError when an address is not in the subnet, the pool
    is reversed, or the id is out of Kea's range.
    """

    subnet: str
    id: int
    pool_start: str
    pool_end: str
    routers: Sequence[str] = ()
    dns: Sequence[str] = ()
    domain: str | None = None
    ntp: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("routers", "dns", "ntp"):
            _tuple(self, name)
        try:
            net = ipaddress.IPv4Network(self.subnet, strict=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"subnet {self.subnet!r} is not an IPv4 CIDR: {exc}") from None
        object.__setattr__(self, "subnet", str(net))
        if isinstance(self.id, bool) or not isinstance(self.id, int) or not 1 <= self.id <= 4294967294:
            raise ValueError(f"subnet id must be an integer in 1-4294967294, got {self.id!r}")
        start = _ipv4("pool_start", self.pool_start)
        end = _ipv4("pool_end", self.pool_end)
        for what, addr in (("pool_start", start), ("pool_end", end)):
            if addr not in net:
                raise ValueError(f"{what} {addr} is not in subnet {net}")
        if end < start:
            raise ValueError(f"pool_end {end} is before pool_start {start}")
        object.__setattr__(self, "pool_start", str(start))
        object.__setattr__(self, "pool_end", str(end))
        routers = tuple(str(_ipv4("router", r)) for r in self.routers)
        for r in routers:
            if ipaddress.IPv4Address(r) not in net:
                raise ValueError(f"router {r} is not in subnet {net}")
        object.__setattr__(self, "routers", routers)
        object.__setattr__(self, "dns", tuple(str(_ipv4("dns server", d)) for d in self.dns))
        object.__setattr__(self, "ntp", tuple(str(_ipv4("ntp server", n)) for n in self.ntp))
        if self.domain is not None and not is_hostname(self.domain):
            raise ValueError(f"domain {self.domain!r} is not a valid domain name")

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The subnet as an ``ipaddress.IPv4Network``."""
        return ipaddress.IPv4Network(self.subnet)

    def in_pool(self, ip: str) -> bool:
        """True when ``ip`` lies in the dynamic pool."""
        addr = ipaddress.IPv4Address(ip)
        return ipaddress.IPv4Address(self.pool_start) <= addr <= ipaddress.IPv4Address(self.pool_end)


@dataclass(frozen=True)
class InventoryDevice:
    """An inventory device; with a MAC it becomes a host reservation (MAC -> IP, hostname).

    ``mac`` is the MAC of the interface that runs DHCP (for Juniper: the ZTP
    interface, not necessarily the chassis MAC, docs/protocol.md §16.3).
    Devices without ``mac`` get no reservation (DHCP cannot see a serial).
    ``ip`` (IPv4) and/or ``hostname`` are what is reserved; ``serial``, ``pid``,
    ``model`` only document the reservation (Kea ``user-context``, dhcpd comment).
    Raises ValueError on a bad MAC, IP, hostname or vendor.
    """

    mac: str | None = None
    ip: str | None = None
    hostname: str | None = None
    serial: str | None = None
    pid: str | None = None
    vendor: Vendor = "cisco"
    model: str | None = None
    config_file: str | None = None  # Juniper: sub-option 1 of this host (per-device ZTP token)

    def __post_init__(self) -> None:
        if self.vendor not in ("cisco", "juniper"):
            raise ValueError(f"vendor must be 'cisco' or 'juniper', got {self.vendor!r}")
        if self.mac is not None:
            object.__setattr__(self, "mac", normalize_mac(self.mac))
        if self.ip is not None:
            object.__setattr__(self, "ip", str(_ipv4("device ip", self.ip)))
        if self.hostname is not None and not is_hostname(self.hostname):
            raise ValueError(f"hostname {self.hostname!r} is not a valid host name")
        for name in ("serial", "pid", "model", "config_file"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)


@dataclass(frozen=True)
class JuniperFileServer:
    """The server Junos ZTP downloads image and config from.

    ``ip`` goes into option 150 (which names the file server for every transfer
    mode, HTTP included), ``transfer_mode`` into sub-option 3, ``port`` into
    sub-option 5 (sent for http/https only). Source: docs/protocol.md §16.2, §1.4.
    """

    ip: str
    port: int = 80
    transfer_mode: TransferMode = "http"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", str(_ipv4("file server ip", self.ip)))
        _check_port("file server port", self.port)
        if self.transfer_mode not in ("http", "https", "tftp", "ftp"):
            raise ValueError(f"transfer_mode must be http, https, tftp or ftp, got {self.transfer_mode!r}")


@dataclass(frozen=True)
class JuniperModel:
    """One Juniper model known to the ZTP server, matched on option 60 ``Juniper-<model>[-<serial>]``.

    ``model`` is the lower-case model as Junos sends it (``ex4300-48p``,
    ``qfx5100-48s-6q``): it matches the VCI ``Juniper-<model>`` exactly or
    followed by ``-`` (serial or a longer model; the longest known model wins).
    ``image`` is the official Juniper image file name (docs/protocol.md §16.6),
    sent as ``images/<image>`` in sub-option 0. ``config_mode``:
    ``per-mac`` sends sub-option 1 ``ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>.conf``
    built per request; ``static`` sends ``config_file`` verbatim (a config or a
    script). Raises ValueError on a bad model or image name, or a static mode
    without ``config_file``.
    """

    model: str
    image: str | None = None
    config_mode: ConfigMode = "per-mac"
    config_file: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not _JUNIPER_MODEL.match(self.model):
            raise ValueError(
                f"Juniper model {self.model!r} must be lower-case letters/digits separated by '-' "
                "as Junos sends it in option 60 (e.g. 'ex4300-48p')"
            )
        if self.image is not None:
            _check_text("image", self.image)
            if "/" in self.image:
                raise ValueError(f"image {self.image!r} must be a bare file name (it is sent as images/<name>)")
        if self.config_mode not in ("per-mac", "static"):
            raise ValueError(f"config_mode must be 'per-mac' or 'static', got {self.config_mode!r}")
        if self.config_mode == "static":
            if self.config_file is None:
                raise ValueError(f"model {self.model}: config_mode 'static' needs config_file")
            _check_text("config_file", self.config_file)
        elif self.config_file is not None:
            raise ValueError(f"model {self.model}: config_file is only used with config_mode 'static'")

    @property
    def vci(self) -> str:
        """The option-60 value this model sends: ``Juniper-<model>``."""
        return f"Juniper-{self.model}"

    @property
    def class_name(self) -> str:
        """``juniper-<model>``."""
        return f"juniper-{self.model}"


@dataclass(frozen=True)
class JuniperZtp:
    """Juniper ZTP settings: the file server and the known models.

    Devices whose model is not listed still get the generic ``juniper`` class
    (transfer mode, port, option 150 and the per-MAC config file, no image).
    Raises ValueError on duplicate models.
    """

    file_server: JuniperFileServer
    models: Sequence[JuniperModel] = ()

    def __post_init__(self) -> None:
        _tuple(self, "models")
        seen: set[str] = set()
        for m in self.models:
            if not isinstance(m, JuniperModel):
                raise ValueError(f"models must be JuniperModel instances, got {m!r}")
            if m.model in seen:
                raise ValueError(f"Juniper model {m.model!r} is listed twice")
            seen.add(m.model)


@dataclass(frozen=True)
class DhcpSpec:
    """Everything the generators need: one subnet, the PnP server, Juniper ZTP, the inventory.

    ``cisco_pids`` takes :class:`CiscoPidClass` or plain PID prefixes (``"C11"``,
    meaning: the default PnP server). Devices of ``inventory`` without a MAC are
    ignored. Raises ValueError when PID classes are given without ``pnp``, when
    two PID prefixes or two devices collide (MAC, IP, hostname), or when a
    reserved IP is outside the subnet, inside the dynamic pool (dhcpd would hand
    it out too), the network/broadcast address or a router.
    """

    subnet: Subnet
    pnp: PnpServer | None = None
    cisco_pids: Sequence[str | CiscoPidClass] = ()
    juniper: JuniperZtp | None = None
    inventory: Sequence[InventoryDevice] = field(default=())

    def __post_init__(self) -> None:
        _tuple(self, "inventory")
        pids = tuple(p if isinstance(p, CiscoPidClass) else CiscoPidClass(p) for p in self.cisco_pids)
        object.__setattr__(self, "cisco_pids", pids)
        if pids and self.pnp is None:
            raise ValueError("cisco_pids need a default PnP server (pnp)")
        names: dict[str, str] = {}
        for p in pids:
            if p.class_name in names:
                raise ValueError(
                    f"Cisco PID prefixes {names[p.class_name]!r} and {p.pid_prefix!r} collide "
                    f"(both give class {p.class_name})"
                )
            names[p.class_name] = p.pid_prefix
        net = self.subnet.network
        macs: set[str] = set()
        ips: set[str] = set()
        hostnames: set[str] = set()
        for dev in self.inventory:
            if not isinstance(dev, InventoryDevice):
                raise ValueError(f"inventory must hold InventoryDevice instances, got {dev!r}")
            if dev.mac is None:
                continue
            if dev.mac in macs:
                raise ValueError(f"MAC {dev.mac} appears twice in the inventory")
            macs.add(dev.mac)
            if dev.ip is None and dev.hostname is None:
                raise ValueError(f"device {dev.mac}: a reservation needs ip or hostname")
            if dev.ip is not None:
                addr = ipaddress.IPv4Address(dev.ip)
                if addr not in net:
                    raise ValueError(f"device {dev.mac}: {dev.ip} is not in subnet {net}")
                if addr in (net.network_address, net.broadcast_address) or dev.ip in self.subnet.routers:
                    raise ValueError(f"device {dev.mac}: {dev.ip} is the network, broadcast or router address")
                if self.subnet.in_pool(dev.ip):
                    raise ValueError(
                        f"device {dev.mac}: {dev.ip} is inside the dynamic pool "
                        f"{self.subnet.pool_start}-{self.subnet.pool_end}; reserve addresses outside it"
                    )
                if dev.ip in ips:
                    raise ValueError(f"IP {dev.ip} is reserved twice in the inventory")
                ips.add(dev.ip)
            if dev.hostname is not None:
                key = dev.hostname.lower().rstrip(".")
                if key in hostnames:
                    raise ValueError(f"hostname {dev.hostname!r} appears twice in the inventory")
                hostnames.add(key)

    def reservations(self) -> tuple[InventoryDevice, ...]:
        """Inventory devices that get a reservation (those with a MAC), sorted by MAC."""
        return tuple(sorted((d for d in self.inventory if d.mac is not None), key=lambda d: d.mac or ""))

    def pid_classes(self) -> tuple[CiscoPidClass, ...]:
        """PID classes, most specific first (longest prefix, then alphabetical): first match wins."""
        return tuple(sorted(self.cisco_pids, key=lambda p: (-len(p.pid_prefix), p.pid_prefix)))  # type: ignore[arg-type]

    def juniper_models(self) -> tuple[JuniperModel, ...]:
        """Juniper models, longest first (``ex4300-48p`` before ``ex4300``), then alphabetical."""
        if self.juniper is None:
            return ()
        return tuple(sorted(self.juniper.models, key=lambda m: (-len(m.model), m.model)))
