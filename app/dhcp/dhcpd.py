"""ISC dhcpd 4.4 configuration for Cisco PnP and Juniper ZTP (legacy target).

ISC DHCP is end of life (4.4.3-P1, 2022); Kea is the main target. What is
emitted (docs/protocol.md §17.5, validated with dhcpd 4.4.3-P1 on Debian 12):

* ``option tftp-server-address code 150 = array of ip-address;`` and
  ``option space juniper;`` with the option-43 sub-options (codes 0-5, 7, 8),
  used through ``vendor-option-space juniper;`` in the Juniper classes only
  (option 43 itself is never redefined);
* ``option cisco-vivco code 124 = string;`` when PID classes are given;
* class ``cisco-pnp`` (option 60 ``ciscopnp``) sending the raw PnP string with
  ``option vendor-encapsulated-options "5A1N;..."``; per-PID strings are an
  ``if``/``elsif`` chain on ``substring(option cisco-vivco, 6, N)`` inside it,
  most specific first, because dhcpd applies matching classes in no defined
  order (a client without option 124 falls to the ``else`` branch);
* classes ``juniper-<model>`` and ``juniper``, mutually exclusive (a longer
  model excludes the shorter ones, the generic class excludes every model),
  each with the complete option set; sub-option 1 per MAC is built with the
  zero-padded ``suffix(concat("0", binary-to-ascii(...)), 2)`` form;
* one ``host`` per inventory device with a MAC (fixed-address, host-name);
* the subnet with its range, routers, DNS, domain and NTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kea import JUNIPER_SUBOPTIONS
from .model import DhcpSpec, InventoryDevice, JuniperModel, JuniperZtp
from .option43 import pnp_option43

__all__ = ["DhcpdOptions", "dhcpd_config"]

_VCI = "option vendor-class-identifier"
_PER_MAC_CONFIG = (
    'concat("ztp_fetch/conf/", option vendor-class-identifier, "/",\n'
    + ', "-",\n'.join(
        f'      suffix(concat("0", binary-to-ascii(16, 8, "", substring(hardware, {i}, 1))), 2)' for i in range(1, 7)
    )
    + ', ".conf")'
)


@dataclass(frozen=True)
class DhcpdOptions:
    """dhcpd-specific global statements: ``authoritative``, lease times in seconds, ``ping-check``.

    ``ping_check=False`` writes ``ping-check false;`` (dhcpd otherwise pings an
    address for about a second before offering it).
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
    vci = model.vci
    return f'{_VCI} = "{vci}" or substring({_VCI}, 0, {len(vci) + 1}) = "{vci}-"'


def _juniper_body(ztp: JuniperZtp, model: JuniperModel | None) -> list[str]:
    lines = ["  vendor-option-space juniper;"]
    if model is not None and model.image:
        lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[0]} "images/{model.image}";')
    if model is not None and model.config_mode == "static":
        lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[1]} "{model.config_file}";')
    else:
        lines.append("  # config file name: ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>.conf (zero-padded MAC)")
        lines.append(f"  option juniper.{JUNIPER_SUBOPTIONS[1]} = {_PER_MAC_CONFIG};")
    lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[3]} "{ztp.file_server.transfer_mode}";')
    if ztp.file_server.transfer_mode in ("http", "https"):
        lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[5]} "{ztp.file_server.port}";')
    lines.append(f"  option tftp-server-address {ztp.file_server.ip};")
    return lines


def _cisco(spec: DhcpSpec) -> list[str]:
    assert spec.pnp is not None
    default43 = pnp_option43(spec.pnp)
    lines = ['class "cisco-pnp" {', f'  match if {_VCI} = "ciscopnp";']
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
    match = f'substring({_VCI}, 0, 8) = "Juniper-"'
    if models:
        match += "\n       and not (" + "\n         or ".join(_model_match(m) for m in models) + ")"
    lines += ['class "juniper" {', f"  match if {match};", *_juniper_body(ztp, None), "}"]
    return lines


def _host(dev: InventoryDevice) -> list[str]:
    assert dev.mac is not None
    facts = (("vendor", dev.vendor), ("model", dev.model), ("pid", dev.pid), ("serial", dev.serial))
    about = " ".join(f"{k} {v}" for k, v in facts if v)
    lines = [f"host ztp-{dev.mac.replace(':', '')} {{", f"  # {about}", f"  hardware ethernet {dev.mac};"]
    if dev.ip is not None:
        lines.append(f"  fixed-address {dev.ip};")
    if dev.hostname is not None:
        lines.append(f'  option host-name "{dev.hostname}";')
    if dev.config_file is not None:  # the host's sub-option 1 (per-device ZTP token) wins over the class's
        lines.append(f'  option juniper.{JUNIPER_SUBOPTIONS[1]} "{dev.config_file}";')
    lines.append("}")
    return lines


def dhcpd_config(spec: DhcpSpec, options: DhcpdOptions | None = None) -> str:
    """A whole ISC dhcpd 4.4 ``dhcpd.conf`` for ``spec`` (text ending in a newline).

    Deterministic: same inputs, same bytes (models longest first, PIDs most
    specific first, hosts by MAC). Passes ``dhcpd -t -cf <file>``. Raises
    ValueError like the dataclasses. Source: docs/protocol.md §17.5.
    """
    options = options or DhcpdOptions()
    s = spec.subnet
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
    net = s.network
    out += [f"subnet {net.network_address} netmask {net.netmask} {{", f"  range {s.pool_start} {s.pool_end};"]
    if s.routers:
        out.append(f"  option routers {', '.join(s.routers)};")
    if s.dns:
        out.append(f"  option domain-name-servers {', '.join(s.dns)};")
    if s.domain:
        out.append(f'  option domain-name "{s.domain}";')
    if s.ntp:
        out.append(f"  option ntp-servers {', '.join(s.ntp)};")
    out.append("}")
    for dev in spec.reservations():
        out += ["", *_host(dev)]
    return "\n".join(out) + "\n"
