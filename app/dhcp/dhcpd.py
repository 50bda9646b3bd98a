"""ISC dhcpd 4.4 configuration for Cisco PnP and Juniper ZTP (legacy target): whole file and merge.

ISC DHCP is end of life (4.4.3-P1, 2022); Kea is the main target. What is
emitted (docs/protocol.md §17.5, validated with dhcpd 4.4.3-P1 on Debian 12):

* ``option tftp-server-address code 150 = array of ip-address;`` and
  ``option space juniper;`` with the option-43 sub-options (codes 0-5, 7, 8),
  used through ``vendor-option-space juniper;`` in the Juniper scopes only
  (option 43 itself is never redefined);
* ``option cisco-vivco code 124 = string;`` when PID classes are given;
* class ``cisco-pnp`` (option 60 ``ciscopnp``) sending the raw PnP string with
  ``option vendor-encapsulated-options "5A1N;..."``; per-PID strings are an
  ``if``/``elsif`` chain on ``substring(option cisco-vivco, 6, N)`` inside it,
  most specific first, because dhcpd applies matching classes in no defined
  order (a client without option 124 falls to the ``else`` branch);
* classes ``juniper-<model>`` and ``juniper``, mutually exclusive (a longer
  model excludes the shorter ones, the generic class excludes every model),
  matched on ``lcase(option vendor-class-identifier)`` (any case), each with
  the complete option set; sub-options 0 (per-MAC image URL) and 1 (per-MAC
  config) are built with the zero-padded
  ``suffix(concat("0", binary-to-ascii(...)), 2)`` form;
* every subnet with its ranges, routers, DNS, domain, NTP and syslog (a relayed
  subnet is chosen by the relay's giaddr, which must lie in it);
* one ``host`` per inventory device with a MAC (fixed-address, host-name,
  per-device syslog/NTP and Juniper sub-options).

Ownership: :func:`dhcpd_merge` writes all of this between two marker lines
(:data:`BEGIN`, :data:`END`) and keeps every byte outside them.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass

from .kea import JUNIPER_SUBOPTIONS, image_path, juniper_suboptions
from .model import DhcpSpec, InventoryDevice, JuniperModel, JuniperZtp, Subnet
from .option43 import pnp_option43

__all__ = ["BEGIN", "END", "DhcpdOptions", "dhcpd_config", "dhcpd_diff", "dhcpd_merge"]

#: First and last line of the block :func:`dhcpd_merge` owns in a dhcpd.conf.
BEGIN = "# BEGIN managed-by pnp-server: written by 'python3 run.py dhcp dhcpd --merge', do not edit inside"
END = "# END managed-by pnp-server"

_VCI = "lcase(option vendor-class-identifier)"
_MAC = ', "-",\n'.join(
    f'      suffix(concat("0", binary-to-ascii(16, 8, "", substring(hardware, {i}, 1))), 2)' for i in range(1, 7)
)
_PER_MAC_CONFIG = f'concat("ztp_fetch/conf/", option vendor-class-identifier, "/",\n{_MAC}, ".conf")'


def _per_mac_image(image: str) -> str:
    return f'concat("ztp_fetch/image/", option vendor-class-identifier, "/",\n{_MAC}, "/{image}")'


@dataclass(frozen=True)
class DhcpdOptions:
    """dhcpd-specific global statements: ``authoritative``, lease times in seconds, ``ping-check``.

    ``ping_check=False`` writes ``ping-check false;`` (dhcpd otherwise pings an
    address for about a second before offering it). :func:`dhcpd_merge` writes
    none of them (they belong to the operator's file).
    """

    authoritative: bool = True
    default_lease_time: int = 3600
    max_lease_time: int = 7200
    ping_check: bool = True

    def __post_init__(self) -> None:
        for name in ("default_lease_time", "max_lease_time"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.max_lease_time < self.default_lease_time:
            raise ValueError("max_lease_time must not be shorter than default_lease_time")


def _model_match(model: JuniperModel) -> str:
    vci = "juniper-" + model.model
    return f'{_VCI} = "{vci}" or substring({_VCI}, 0, {len(vci) + 1}) = "{vci}-"'


def _server_lines(ztp: JuniperZtp, indent: str) -> list[str]:
    lines = []
    if 150 in ztp.file_server.server_options:
        lines.append(f"{indent}option tftp-server-address {ztp.file_server.ip};")
    if 66 in ztp.file_server.server_options:
        lines.append(f'{indent}option tftp-server-name "{ztp.file_server.ip}";')
    return lines


def _juniper_body(ztp: JuniperZtp, model: JuniperModel | None) -> list[str]:
    lines = ["  vendor-option-space juniper;"]
    if model is not None and model.image:
        lines.append("  # image: ztp_fetch/image/<VCI>/<aa-bb-cc-dd-ee-ff>/<image> (the fetch names the device)")
        lines.append(f"  option juniper.{JUNIPER_SUBOPTIONS[0]} = {_per_mac_image(model.image)};")
    subs = juniper_suboptions(ztp, model)
    if 1 not in subs:
        lines.append("  # config file name: ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>.conf (zero-padded MAC)")
        lines.append(f"  option juniper.{JUNIPER_SUBOPTIONS[1]} = {_PER_MAC_CONFIG};")
    for code, value in subs.items():
        lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[code]} "{value}";')
    if ztp.file_server.boot_file:
        value = f'"{subs[1]}"' if 1 in subs else _PER_MAC_CONFIG
        lines.append(f"  option bootfile-name {'' if 1 in subs else '= '}{value};")
    lines += _server_lines(ztp, "  ")
    return lines


def _cisco(spec: DhcpSpec) -> list[str]:
    assert spec.pnp is not None
    default43 = pnp_option43(spec.pnp)
    lines = ['class "cisco-pnp" {', '  match if option vendor-class-identifier = "ciscopnp";']
    pids = spec.pid_classes()
    if not pids:
        lines.append(f'  option vendor-encapsulated-options "{default43}";')
    else:
        keyword = "if"
        for pid in pids:
            option43 = pnp_option43(pid.server) if pid.server is not None else default43
            lines += [
                f'  {keyword} substring(option cisco-vivco, 6, {len(pid.pid_prefix)}) = "{pid.pid_prefix}" {{',
                f"    # {pid.class_name}: PID (option 124, byte 6) starts with {pid.pid_prefix}",
                f'    option vendor-encapsulated-options "{option43}";',
            ]
            keyword = "} elsif"
        lines += ["  } else {", f'    option vendor-encapsulated-options "{default43}";', "  }"]
    lines.append("}")
    return lines


def _juniper(spec: DhcpSpec) -> list[str]:
    ztp = spec.juniper
    assert ztp is not None
    lines: list[str] = []
    models = spec.juniper_models()  # longest first
    for i, model in enumerate(models):
        longer = [m for m in models[:i] if m.model.startswith(model.model + "-")]
        match = _model_match(model)
        if longer:
            match = f"({match})\n       and not ({' or '.join(_model_match(m) for m in longer)})"
        lines += [f'class "{model.class_name}" {{', f"  match if {match};", *_juniper_body(ztp, model), "}", ""]
    match = f'substring({_VCI}, 0, 8) = "juniper-"'
    if models:
        match += "\n       and not (" + "\n         or ".join(_model_match(m) for m in models) + ")"
    lines += ['class "juniper" {', f"  match if {match};", *_juniper_body(ztp, None), "}"]
    return lines


def _host(spec: DhcpSpec, dev: InventoryDevice) -> list[str]:
    assert dev.mac is not None
    facts = (("vendor", dev.vendor), ("model", dev.model), ("pid", dev.pid), ("serial", dev.serial))
    about = " ".join(f"{k} {v}" for k, v in facts if v)
    lines = [f"host ztp-{dev.mac.replace(':', '')} {{", f"  # {about}", f"  hardware ethernet {dev.mac};"]
    if dev.ip is not None:
        lines.append(f"  fixed-address {dev.ip};")
    if dev.hostname is not None:
        lines.append(f'  option host-name "{dev.hostname}";')
    if dev.syslog:
        lines.append(f"  option log-servers {', '.join(dev.syslog)};")
    if dev.ntp:
        lines.append(f"  option ntp-servers {', '.join(dev.ntp)};")
    if dev.juniper is not None and spec.juniper is not None:
        model = next((m for m in spec.juniper.models if dev.model and m.model == dev.model.lower()), None)
        image = dev.juniper.image or (model.image if model is not None else None)
        url = image_path(dev.image_vci, dev.mac, image) if image else None
        subs = juniper_suboptions(spec.juniper, model, dev.juniper, url)
        lines.append("  # this device's own Juniper sub-options (they replace its class's)")
        lines.append("  vendor-option-space juniper;")
        if 1 not in subs:
            lines.append(f"  option juniper.{JUNIPER_SUBOPTIONS[1]} = {_PER_MAC_CONFIG};")
        for code, value in subs.items():
            lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[code]} "{value}";')
        lines += _server_lines(spec.juniper, "  ")
    lines.append("}")
    return lines


def _subnet(s: Subnet) -> list[str]:
    net = s.network
    for relay in s.relay:
        if ipaddress.IPv4Address(relay) not in net:
            raise ValueError(f"subnet {s.subnet}: dhcpd chooses a relayed subnet by the relay's giaddr, which must "
                             f"be inside it; relay {relay} is not (use Kea, or a shared-network by hand)")
    head = f"subnet {net.network_address} netmask {net.netmask} {{"
    if s.site or s.interface:
        about = [f"site {s.site}"] if s.site else []
        about += [f"interface {s.interface}"] if s.interface else []
        head += f"  # {' '.join(about)}"
    out = [head]
    if not s.all_pools():
        out.append("  # no dynamic range: reservations only")
    for first, last in s.all_pools():
        out.append(f"  range {first} {last};")
    if s.routers:
        out.append(f"  option routers {', '.join(s.routers)};")
    if s.dns:
        out.append(f"  option domain-name-servers {', '.join(s.dns)};")
    if s.syslog:
        out.append(f"  option log-servers {', '.join(s.syslog)};")
    if s.domain:
        out.append(f'  option domain-name "{s.domain}";')
    if s.ntp:
        out.append(f"  option ntp-servers {', '.join(s.ntp)};")
    out.append("}")
    return out


def _managed(spec: DhcpSpec) -> list[str]:
    """Definitions, classes, subnets and hosts: everything but the global statements."""
    out: list[str] = []
    if spec.juniper is not None:
        out += [
            "# RFC 5859 TFTP server address (Juniper ZTP file server for every transfer mode).",
            "option tftp-server-address code 150 = array of ip-address;",
            "",
            "# Juniper ZTP option-43 sub-options, used via vendor-option-space (option 43 is not redefined).",
            "option space juniper;",
        ]
        width = max(len(n) for n in JUNIPER_SUBOPTIONS.values())
        for code, name in sorted(JUNIPER_SUBOPTIONS.items()):
            out.append(f"option juniper.{name:<{width}} code {code} = text;")
        out.append("")
    if spec.pnp is not None:
        if spec.pid_classes():
            out += [
                "# Cisco: V-I vendor class (option 124) as a string; the PID starts at byte 6.",
                "option cisco-vivco code 124 = string;",
                "",
            ]
        out += ["# Cisco PnP: option 43 is the raw PnP string (docs/protocol.md §1.3).", *_cisco(spec), ""]
    if spec.juniper is not None:
        out += [
            "# Juniper ZTP: one class per known model (longest first, mutually exclusive), then the rest.",
            *_juniper(spec),
            "",
        ]
    for i, s in enumerate(spec.subnets):
        out += ([""] if i else []) + _subnet(s)
    for dev in spec.reservations():
        out += ["", *_host(spec, dev)]
    return out


def dhcpd_config(spec: DhcpSpec, options: DhcpdOptions | None = None) -> str:
    """A whole ISC dhcpd 4.4 ``dhcpd.conf`` for ``spec`` (text ending in a newline).

    Deterministic: same inputs, same bytes (models longest first, PIDs most
    specific first, hosts by MAC). Passes ``dhcpd -t -cf <file>``. Raises
    ValueError like the dataclasses, or for a relay outside its subnet.
    Source: docs/protocol.md §17.5.
    """
    options = options or DhcpdOptions()
    out = [
        "# ISC dhcpd 4.4 configuration for Cisco PnP and Juniper ZTP.",
        "# Generated by app.dhcp.dhcpd_config: regenerate it instead of editing it.",
    ]
    if options.authoritative:
        out.append("authoritative;")
    out += [
        f"default-lease-time {options.default_lease_time};",
        f"max-lease-time {options.max_lease_time};",
        "ddns-update-style none;",
    ]
    if not options.ping_check:
        out.append("ping-check false;")
    out.append("")
    out += _managed(spec)
    return "\n".join(out) + "\n"


def _strip_comments(text: str) -> str:
    """dhcpd.conf without ``#`` comments (outside double-quoted strings)."""
    out = []
    for line in text.splitlines():
        in_str, cut = False, len(line)
        for i, ch in enumerate(line):
            if ch == '"':
                in_str = not in_str
            elif ch == "#" and not in_str:
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)


def _conflicts(operator: str, spec: DhcpSpec) -> None:
    text = _strip_comments(operator)
    names = ["cisco-pnp"] if spec.pnp else []
    names += [p.class_name for p in spec.pid_classes()] if spec.pnp else []
    names += [m.class_name for m in spec.juniper_models()] + (["juniper"] if spec.juniper else [])
    for name in names:
        if re.search(rf'\bclass\s+"{re.escape(name)}"', text):
            raise ValueError(f'dhcpd.conf: class "{name}" outside the managed block is the operator\'s: '
                             "rename or remove it")
    for s in spec.subnets:
        net = s.network
        if re.search(rf"\bsubnet\s+{re.escape(str(net.network_address))}\s+netmask\b", text):
            raise ValueError(f"dhcpd.conf: subnet {net} is declared outside the managed block: remove it "
                             "there (the helper declares it) or leave it out of the helper's subnets")
    for dev in spec.reservations():
        mac = re.escape(dev.mac or "")
        if re.search(rf"\bhardware\s+ethernet\s+{mac}\s*;", text, re.IGNORECASE):
            raise ValueError(f"dhcpd.conf: a host outside the managed block already has hardware ethernet {dev.mac}")
        if dev.ip and re.search(rf"\bfixed-address\s+{re.escape(dev.ip)}\s*;", text):
            raise ValueError(f"dhcpd.conf: a host outside the managed block already has fixed-address {dev.ip}")
    checks = [(r"\boption\s+space\s+juniper\s*;", "option space juniper"),
              (r"\bcode\s+150\s*=", "option code 150"), (r"\bcode\s+124\s*=", "option code 124")]
    for pattern, what in checks:
        if re.search(pattern, text):
            raise ValueError(f"dhcpd.conf: {what} is defined outside the managed block; the helper defines it: "
                             "remove the operator's definition")


def dhcpd_merge(existing: str, spec: DhcpSpec) -> str:
    """``existing`` dhcpd.conf text with the managed block (between :data:`BEGIN` and :data:`END`) replaced.

    Every byte outside the block is kept. Without a block, one is appended at
    the end. The block holds the option definitions, classes, subnets and
    hosts of ``spec`` (no global statements). Raises ValueError with a
    one-line reason for a broken block (BEGIN without END, two blocks) or an
    operator item outside it that conflicts with a managed one: a class of the
    same name, a subnet the spec declares, a host with one of the inventory's
    MACs or addresses, the ``juniper`` option space or option codes 150/124.
    """
    lines = existing.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == END]
    if len(begins) > 1 or len(ends) > 1 or len(begins) != len(ends) or (begins and ends[0] < begins[0]):
        raise ValueError("dhcpd.conf: the managed block markers are broken (one BEGIN line, then one END line)")
    if begins:
        before, after = lines[: begins[0]], lines[ends[0] + 1 :]
    else:
        before, after = lines, []
        if before and not before[-1].endswith("\n"):
            before[-1] += "\n"
        if before and before[-1].strip():
            before.append("\n")
    _conflicts("".join(before + after), spec)
    block = [BEGIN, *_managed(spec), END]
    return "".join(before) + "\n".join(block) + "\n" + "".join(after)


def dhcpd_diff(before: str, after: str, name: str = "dhcpd.conf") -> str:
    """Unified diff of two dhcpd.conf texts ("" when equal)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"{name} (before)", f"{name} (after)"))
