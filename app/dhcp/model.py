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
    "JuniperOverrides",
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
    """One IPv4 subnet the ZTP devices boot in (directly attached or behind a DHCP relay).

    ``subnet`` is a CIDR (``192.0.2.0/24``), ``id`` the Kea subnet id (explicit,
    mandatory from Kea 2.6, docs/protocol.md §17.3), ``pool_start`` /
    ``pool_end`` the first dynamic range and ``pools`` more ranges
    (``[("192.0.2.150", "192.0.2.159")]``); a subnet without any range only
    serves reservations (or declares the DHCP server's own network for dhcpd).
    Options: ``routers`` option 3, ``dns`` option 6, ``domain`` option 15,
    ``ntp`` option 42, ``syslog`` option 7 (log servers: where Junos ZTP
    reports its progress); lists keep their order (a priority).
    ``relay``: addresses of the DHCP relays (giaddr) serving it when they are
    not inside the subnet (Kea ``relay.ip-addresses``; a relay whose giaddr is
    in the subnet needs nothing). ``interface``: the server interface of a
    directly attached subnet (Kea ``interface``). ``site``: a name inventory
    rows may use to pick this subnet. Raises ValueError when an address is not
    in the subnet, a pool is reversed or overlaps another, or the id is out of
    Kea's range.
    """

    subnet: str
    id: int
    pool_start: str | None = None
    pool_end: str | None = None
    routers: Sequence[str] = ()
    dns: Sequence[str] = ()
    domain: str | None = None
    ntp: Sequence[str] = ()
    syslog: Sequence[str] = ()
    pools: Sequence[tuple[str, str]] = ()
    relay: Sequence[str] = ()
    interface: str | None = None
    site: str | None = None

    def __post_init__(self) -> None:
        for name in ("routers", "dns", "ntp", "syslog", "pools", "relay"):
            _tuple(self, name)
        try:
            net = ipaddress.IPv4Network(self.subnet, strict=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"subnet {self.subnet!r} is not an IPv4 CIDR: {exc}") from None
        object.__setattr__(self, "subnet", str(net))
        if isinstance(self.id, bool) or not isinstance(self.id, int) or not 1 <= self.id <= 4294967294:
            raise ValueError(f"subnet id must be an integer in 1-4294967294, got {self.id!r}")
        ranges: list[tuple[str, str]] = []
        if (self.pool_start is None) != (self.pool_end is None):
            raise ValueError(f"subnet {net}: give both pool_start and pool_end, or neither")
        raw = ([(self.pool_start, self.pool_end)] if self.pool_start is not None else []) + list(self.pools)
        for pool in raw:
            if isinstance(pool, str) or len(pool) != 2:
                raise ValueError(f"subnet {net}: a pool is a (first, last) pair, got {pool!r}")
            start = _ipv4("pool start", pool[0])
            end = _ipv4("pool end", pool[1])
            for what, addr in (("pool start", start), ("pool end", end)):
                if addr not in net:
                    raise ValueError(f"{what} {addr} is not in subnet {net}")
            if end < start:
                raise ValueError(f"pool end {end} is before pool start {start}")
            for other_start, other_end in ranges:
                if start <= ipaddress.IPv4Address(other_end) and ipaddress.IPv4Address(other_start) <= end:
                    raise ValueError(f"subnet {net}: pools {start}-{end} and {other_start}-{other_end} overlap")
            ranges.append((str(start), str(end)))
        if ranges:
            object.__setattr__(self, "pool_start", ranges[0][0])
            object.__setattr__(self, "pool_end", ranges[0][1])
        object.__setattr__(self, "pools", tuple(ranges[1:]))
        routers = tuple(str(_ipv4("router", r)) for r in self.routers)
        for r in routers:
            if ipaddress.IPv4Address(r) not in net:
                raise ValueError(f"router {r} is not in subnet {net}")
        object.__setattr__(self, "routers", routers)
        object.__setattr__(self, "dns", tuple(str(_ipv4("dns server", d)) for d in self.dns))
        object.__setattr__(self, "ntp", tuple(str(_ipv4("ntp server", n)) for n in self.ntp))
        object.__setattr__(self, "syslog", tuple(str(_ipv4("syslog server", n)) for n in self.syslog))
        object.__setattr__(self, "relay", tuple(str(_ipv4("relay address", n)) for n in self.relay))
        if self.domain is not None and not is_hostname(self.domain):
            raise ValueError(f"domain {self.domain!r} is not a valid domain name")
        if self.interface is not None:
            _check_text("interface", self.interface)
        if self.site is not None:
            _check_text("site", self.site)

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The subnet as an ``ipaddress.IPv4Network``."""
        return ipaddress.IPv4Network(self.subnet)

    def all_pools(self) -> tuple[tuple[str, str], ...]:
        """Every dynamic range as ``(first, last)``, the ``pool_start``/``pool_end`` one first."""
        first = ((self.pool_start, self.pool_end),) if self.pool_start and self.pool_end else ()
        return first + tuple(self.pools)

    def in_pool(self, ip: str) -> bool:
        """True when ``ip`` lies in one of the dynamic pools."""
        addr = ipaddress.IPv4Address(ip)
        return any(ipaddress.IPv4Address(a) <= addr <= ipaddress.IPv4Address(b) for a, b in self.all_pools())

    def matches(self, key: str) -> bool:
        """True when an inventory ``subnet``/``site`` value names this subnet (CIDR, id or site, any case)."""
        key = key.strip()
        return key in (self.subnet, str(self.id)) or (self.site is not None and key.lower() == self.site.lower())


def _check_subopts(obj: object) -> None:
    """Validate the Juniper sub-option fields shared by JuniperModel and JuniperOverrides."""
    for name in ("image", "config_file", "image_type", "alt_image", "proxy"):
        value = getattr(obj, name, None)
        if value is not None:
            _check_text(name, value)
    for name in ("image", "alt_image"):
        value = getattr(obj, name, None)
        if value is not None and "/" in value:
            raise ValueError(f"{name} {value!r} must be a bare file name in images/")
    timeout = getattr(obj, "ftp_timeout", None)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 86400):
        raise ValueError(f"ftp_timeout must be seconds in 1-86400, got {timeout!r}")


@dataclass(frozen=True)
class JuniperOverrides:
    """Per-device Juniper ZTP sub-options that replace the model's (an image exception, a static config...).

    ``image`` (sub-option 0, a file name in images/, fetched through the
    device's per-MAC URL), ``config_file`` (sub-option 1, sent verbatim),
    ``image_type`` (2, ``symlink`` tells Junos the image name is a link to
    follow), ``alt_image`` (4), ``ftp_timeout`` (7, seconds), ``proxy`` (8).
    Source: docs/protocol.md §16.2.
    """

    image: str | None = None
    config_file: str | None = None
    image_type: str | None = None
    alt_image: str | None = None
    ftp_timeout: int | None = None
    proxy: str | None = None

    def __post_init__(self) -> None:
        _check_subopts(self)

    def __bool__(self) -> bool:
        return any(getattr(self, f) is not None for f in
                   ("image", "config_file", "image_type", "alt_image", "ftp_timeout", "proxy"))


@dataclass(frozen=True)
class InventoryDevice:
    """An inventory device; with a MAC it becomes a host reservation (MAC -> IP, hostname).

    ``mac`` is the MAC of the interface that runs DHCP (for Juniper: the ZTP
    interface, not necessarily the chassis MAC, docs/protocol.md §16.3; every
    form of app/common/mac.py, dotted ``aabb.ccdd.eeff`` too).
    Devices without ``mac`` get no reservation (DHCP cannot see a serial).
    ``ip`` (IPv4) and/or ``hostname`` (option 12) are what is reserved;
    ``subnet`` names the subnet of a reservation without ``ip`` (CIDR, Kea id
    or site; with an ``ip`` the subnet holding it is used). ``syslog``
    (option 7) and ``ntp`` (option 42) are per-device options. ``juniper``
    holds per-device sub-options (:class:`JuniperOverrides`). ``serial``,
    ``pid``, ``model`` document the reservation (Kea ``user-context``, dhcpd
    comment); ``model`` also names the VCI of a per-device image URL.
    Raises ValueError on a bad MAC, IP, hostname or vendor.
    """

    mac: str | None = None
    ip: str | None = None
    hostname: str | None = None
    serial: str | None = None
    pid: str | None = None
    vendor: Vendor = "cisco"
    model: str | None = None
    subnet: str | None = None
    syslog: Sequence[str] = ()
    ntp: Sequence[str] = ()
    juniper: JuniperOverrides | None = None

    def __post_init__(self) -> None:
        if self.vendor not in ("cisco", "juniper"):
            raise ValueError(f"vendor must be 'cisco' or 'juniper', got {self.vendor!r}")
        if self.mac is not None:
            object.__setattr__(self, "mac", normalize_mac(self.mac))
        if self.ip is not None:
            object.__setattr__(self, "ip", str(_ipv4("device ip", self.ip)))
        if self.hostname is not None and not is_hostname(self.hostname):
            raise ValueError(f"hostname {self.hostname!r} is not a valid host name")
        for name in ("serial", "pid", "model", "subnet"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)
        for name in ("syslog", "ntp"):
            _tuple(self, name)
            object.__setattr__(self, name, tuple(str(_ipv4(f"{name} server", v)) for v in getattr(self, name)))
        if self.juniper is not None and not isinstance(self.juniper, JuniperOverrides):
            raise ValueError(f"juniper must be JuniperOverrides, got {self.juniper!r}")
        if self.juniper is not None and not self.juniper:
            object.__setattr__(self, "juniper", None)
        if self.juniper is not None and self.vendor != "juniper":
            raise ValueError(f"device {self.mac}: Juniper sub-options on a {self.vendor} device")

    @property
    def image_vci(self) -> str:
        """The VCI used in this device's per-MAC image URL: ``Juniper-<model>`` (``Juniper-device`` without model)."""
        return f"Juniper-{(self.model or 'device').lower()}"


#: Where the Juniper file server may be announced: 150 (TFTP server address, ipv4 array), 66 (TFTP server name, text).
SERVER_OPTIONS = (66, 150)


@dataclass(frozen=True)
class JuniperFileServer:
    """The server Junos ZTP downloads image and config from.

    ``ip`` goes into option 150 (which names the file server for every transfer
    mode, HTTP included) and/or option 66 (``server_options``, e.g. ``(66, 150)``),
    ``transfer_mode`` into sub-option 3, ``port`` into sub-option 5 (sent for
    http/https only: the HTTPS port for https). ``boot_file`` also sends the
    config file name in option 67 (boot file name; older Junos releases read it
    when sub-option 1 is absent). Source: docs/protocol.md §16.2, §1.4.
    """

    ip: str
    port: int = 80
    transfer_mode: TransferMode = "http"
    server_options: Sequence[int] = (150,)
    boot_file: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", str(_ipv4("file server ip", self.ip)))
        _check_port("file server port", self.port)
        if self.transfer_mode not in ("http", "https", "tftp", "ftp"):
            raise ValueError(f"transfer_mode must be http, https, tftp or ftp, got {self.transfer_mode!r}")
        _tuple(self, "server_options")
        if not self.server_options or any(o not in SERVER_OPTIONS for o in self.server_options):
            raise ValueError(f"server_options must be a non-empty list of 66 and/or 150, got {self.server_options!r}")


@dataclass(frozen=True)
class JuniperModel:
    """One Juniper model known to the ZTP server, matched on option 60 ``Juniper-<model>[-<serial>]``.

    ``model`` is the lower-case model as Junos sends it (``ex4300-48p``,
    ``qfx5100-48s-6q``): it matches the VCI ``Juniper-<model>`` exactly or
    followed by ``-`` (serial or a longer model; the longest known model wins).
    ``image`` is the official Juniper image file name (docs/protocol.md §16.6),
    sent in sub-option 0 as the per-MAC URL
    ``ztp_fetch/image/<VCI>/<aa-bb-cc-dd-ee-ff>/<image>`` (so each image fetch
    lands in the device's history). ``image_type`` (sub-option 2, e.g.
    ``symlink``), ``alt_image`` (4), ``ftp_timeout`` (7, seconds) and
    ``proxy`` (8) are sent as given. ``config_mode``:
    ``per-mac`` sends sub-option 1 ``ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>.conf``
    built per request; ``static`` sends ``config_file`` verbatim (a config or a
    script). Raises ValueError on a bad model or image name, or a static mode
    without ``config_file``.
    """

    model: str
    image: str | None = None
    config_mode: ConfigMode = "per-mac"
    config_file: str | None = None
    image_type: str | None = None
    alt_image: str | None = None
    ftp_timeout: int | None = None
    proxy: str | None = None

    def __post_init__(self) -> None:
        _check_subopts(self)
        if not isinstance(self.model, str) or not _JUNIPER_MODEL.match(self.model):
            raise ValueError(
                f"Juniper model {self.model!r} must be lower-case letters/digits separated by '-' "
                "as Junos sends it in option 60 (e.g. 'ex4300-48p')"
            )
        if self.image is not None:
            _check_text("image", self.image)
            if "/" in self.image:
                raise ValueError(f"image {self.image!r} must be a bare file name in images/")
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
    """Everything the generators need: the subnets, the PnP server, Juniper ZTP, the inventory.

    ``subnets`` lists every subnet (directly attached or relayed); ``subnet``
    is the single-subnet shorthand (``DhcpSpec(subnet=...)`` equals
    ``DhcpSpec(subnets=[...])``). ``cisco_pids`` takes :class:`CiscoPidClass`
    or plain PID prefixes (``"C11"``, meaning: the default PnP server).
    Devices of ``inventory`` without a MAC are ignored; the others are placed
    in the subnet holding their ``ip``, else the one their ``subnet`` value
    names, else the only subnet. ``warnings`` lists what Kea and dhcpd accept
    but the operator should know (a reservation inside a dynamic pool).
    Raises ValueError when no or overlapping subnets are given, ids repeat,
    PID classes are given without ``pnp``, two PID prefixes or two devices
    collide (MAC, IP, hostname), or a reserved IP is outside every subnet, the
    network/broadcast address or a router.
    """

    subnet: Subnet | None = None
    pnp: PnpServer | None = None
    cisco_pids: Sequence[str | CiscoPidClass] = ()
    juniper: JuniperZtp | None = None
    inventory: Sequence[InventoryDevice] = field(default=())
    subnets: Sequence[Subnet] = ()

    def __post_init__(self) -> None:
        _tuple(self, "inventory")
        _tuple(self, "subnets")
        subnets = tuple(self.subnets)
        if self.subnet is not None:
            if subnets and subnets != (self.subnet,):
                raise ValueError("give subnet or subnets, not both")
            subnets = (self.subnet,)
        if not subnets:
            raise ValueError("a DHCP spec needs at least one subnet")
        self._check_subnets(subnets)
        object.__setattr__(self, "subnets", subnets)
        object.__setattr__(self, "subnet", subnets[0])
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
        placed: dict[int, list[InventoryDevice]] = {s.id: [] for s in subnets}
        warnings: list[str] = []
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
            home = self._place(dev, subnets)
            if dev.ip is not None:
                net = home.network
                if dev.ip in ips:
                    raise ValueError(f"IP {dev.ip} is reserved twice in the inventory")
                ips.add(dev.ip)
                addr = ipaddress.IPv4Address(dev.ip)
                if addr in (net.network_address, net.broadcast_address) or dev.ip in home.routers:
                    raise ValueError(f"device {dev.mac}: {dev.ip} is the network, broadcast or router address")
                if home.in_pool(dev.ip):
                    warnings.append(
                        f"device {dev.mac}: {dev.ip} is inside a dynamic pool of subnet {home.subnet}; "
                        "Kea and dhcpd never lease a reserved address to another client, but "
                        "reserving outside the pools is clearer"
                    )
            if dev.hostname is not None:
                key = dev.hostname.lower().rstrip(".")
                if key in hostnames:
                    raise ValueError(f"hostname {dev.hostname!r} appears twice in the inventory")
                hostnames.add(key)
            placed[home.id].append(dev)
        object.__setattr__(self, "_placed", {k: tuple(sorted(v, key=lambda d: d.mac or "")) for k, v in placed.items()})
        object.__setattr__(self, "warnings", tuple(warnings))

    @staticmethod
    def _check_subnets(subnets: tuple[Subnet, ...]) -> None:
        ids: set[int] = set()
        sites: set[str] = set()
        for i, s in enumerate(subnets):
            if not isinstance(s, Subnet):
                raise ValueError(f"subnets must be Subnet instances, got {s!r}")
            if s.id in ids:
                raise ValueError(f"subnet id {s.id} is used twice")
            ids.add(s.id)
            if s.site is not None:
                if s.site.lower() in sites:
                    raise ValueError(f"site {s.site!r} names two subnets")
                sites.add(s.site.lower())
            for other in subnets[:i]:
                if s.network.overlaps(other.network):
                    raise ValueError(f"subnets {other.subnet} and {s.subnet} overlap")

    @staticmethod
    def _place(dev: InventoryDevice, subnets: tuple[Subnet, ...]) -> Subnet:
        if dev.ip is not None:
            addr = ipaddress.IPv4Address(dev.ip)
            home = next((s for s in subnets if addr in s.network), None)
            if home is None:
                raise ValueError(f"device {dev.mac}: {dev.ip} is in none of the subnets "
                                 f"({', '.join(s.subnet for s in subnets)})")
            if dev.subnet is not None and not home.matches(dev.subnet):
                raise ValueError(f"device {dev.mac}: {dev.ip} is in subnet {home.subnet}, "
                                 f"not in {dev.subnet!r} as its row says")
            return home
        if dev.subnet is not None:
            home = next((s for s in subnets if s.matches(dev.subnet)), None)
            if home is None:
                raise ValueError(f"device {dev.mac}: subnet/site {dev.subnet!r} names none of the subnets")
            return home
        if len(subnets) > 1:
            raise ValueError(f"device {dev.mac}: no ip and no subnet/site column: which subnet is it in?")
        return subnets[0]

    def reservations(self, subnet_id: int | None = None) -> tuple[InventoryDevice, ...]:
        """Devices that get a reservation (those with a MAC), sorted by MAC: of one subnet, or of all."""
        placed: dict[int, tuple[InventoryDevice, ...]] = self._placed  # type: ignore[attr-defined]
        if subnet_id is not None:
            return placed.get(subnet_id, ())
        return tuple(sorted((d for devs in placed.values() for d in devs), key=lambda d: d.mac or ""))

    def pid_classes(self) -> tuple[CiscoPidClass, ...]:
        """PID classes, most specific first (longest prefix, then alphabetical): first match wins."""
        return tuple(sorted(self.cisco_pids, key=lambda p: (-len(p.pid_prefix), p.pid_prefix)))  # type: ignore[arg-type]

    def juniper_models(self) -> tuple[JuniperModel, ...]:
        """Juniper models, longest first (``ex4300-48p`` before ``ex4300``), then alphabetical."""
        if self.juniper is None:
            return ()
        return tuple(sorted(self.juniper.models, key=lambda m: (-len(m.model), m.model)))
