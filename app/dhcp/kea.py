"""ISC Kea 2.2 (kea-dhcp4) configuration for Cisco PnP and Juniper ZTP: whole config and merge.

What is emitted (docs/protocol.md §17.2, validated with Kea 2.2.0 on Debian 12):

* global ``option-def``: the Juniper option-43 sub-options (codes 0-5, 7, 8) in
  space ``vendor-encapsulated-options-space`` and option 150
  ``tftp-server-address`` (``ipv4-address``, array);
* ``client-classes``, in this order (Kea uses the first class that supplies an
  option): per-PID Cisco classes ``cisco-pnp-<pid>`` (option 124, PID at byte
  offset 6), the generic ``cisco-pnp`` (option 60 ``ciscopnp``), each with a
  class-level option-def of code 43 as ``string`` and the raw PnP string
  (docs/protocol.md §17.3, trap 1); the Juniper model classes ``juniper-<model>`` (longest model
  first) and the generic ``juniper``, each with the COMPLETE sub-option set
  plus option 150, because Kea does not merge sub-options across scopes
  (docs/protocol.md §17.3, trap 2, fix A);
* the ``libdhcp_flex_option.so`` hook adding sub-option 1
  ``'ztp_fetch/conf/' + option[vendor-class-identifier].text + '/' +
  hexstring(pkt4.mac, '-') + '.conf'`` for class ``juniper`` (``add`` keeps a
  static sub-option 1 of a model class);
  and sub-option 0 ``ztp_fetch/image/<VCI>/<aa-bb-cc-dd-ee-ff>/<image>``
  (an ``ifelse(member(...))`` chain over the model classes with an image),
  so every image fetch names the device;
* every subnet with an explicit ``id``, its pools, relay/interface,
  routers/DNS/domain/NTP/syslog options and one reservation per inventory
  device with a MAC (option-data only for per-device options: syslog, NTP, and
  the complete Juniper set of a device with its own sub-options).

VCIs are matched case-insensitively (Kea 2.2 has no ``lcase``: letter by
letter). Ownership: see :func:`kea_merge`.
"""

from __future__ import annotations

import copy
import difflib
import glob
import ipaddress
import json
import os
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import DhcpSpec, InventoryDevice, JuniperModel, JuniperOverrides, JuniperZtp, Subnet, normalize_mac
from .option43 import pnp_option43

__all__ = [
    "DEFAULT_HOOKS_DIR",
    "FLEX_OPTION_LIB",
    "JUNIPER_SUBOPTIONS",
    "MANAGED_BY",
    "VENDOR_SPACE",
    "KeaOptions",
    "FLEX_MARK",
    "default_hooks_dir",
    "image_path",
    "is_managed",
    "juniper_suboptions",
    "kea_config",
    "kea_config_text",
    "kea_diff",
    "kea_dumps",
    "kea_loads",
    "kea_merge",
]

#: Option space of the option-43 sub-options in Kea.
VENDOR_SPACE = "vendor-encapsulated-options-space"
#: Juniper ZTP option-43 sub-options, all text (docs/protocol.md §16.2).
JUNIPER_SUBOPTIONS: Mapping[int, str] = {
    0: "image-file-name",
    1: "config-file-name",
    2: "image-file-type",
    3: "transfer-mode",
    4: "alt-image-file-name",
    5: "http-port",
    7: "ftp-timeout",
    8: "proxyv4-info",
}
#: File name of the flex_option hook.
FLEX_OPTION_LIB = "libdhcp_flex_option.so"
#: Hooks directory of the Debian 12 amd64 package (kea-dhcp4-server 2.2.0-6).
DEFAULT_HOOKS_DIR = "/usr/lib/x86_64-linux-gnu/kea/hooks"
#: ``user-context["managed-by"]`` of every item this module writes (its ownership marker).
MANAGED_BY = "pnp-server"
#: The marker of flex_option entries (the hook refuses ``user-context`` but keeps ``comment``).
FLEX_MARK = "managed-by pnp-server"
#: Markers of earlier releases (reservations only), still recognised as managed.
LEGACY_MANAGED_BY = ("ztp-dhcp-helper",)
#: Sub-option 1 built per request (ottorei/juniper-ztp-kea-dhcp; docs/protocol.md §16.4, §3.1).
PER_MAC_CONFIG_EXPR = (
    "'ztp_fetch/conf/' + option[vendor-class-identifier].text + '/' + hexstring(pkt4.mac, '-') + '.conf'"
)

_VCI = "option[vendor-class-identifier].text"
_CISCO_CLASS = "cisco-pnp"
_JUNIPER_CLASS = "juniper"
_OPT150 = "tftp-server-address"
_OPT43 = "vendor-encapsulated-options"
# (name, code) of the subnet options this module writes; others are left alone.
_SUBNET_OPTIONS = (("routers", 3), ("domain-name-servers", 6), ("log-servers", 7), ("domain-name", 15),
                   ("ntp-servers", 42))
# dhcp4 option names the merge may meet without a code (its conflict check compares codes).
_CODES = {"routers": 3, "domain-name-servers": 6, "log-servers": 7, "host-name": 12, "domain-name": 15,
          "ntp-servers": 42, "vendor-encapsulated-options": 43, "tftp-server-name": 66, "boot-file-name": 67,
          _OPT150: 150}


@dataclass(frozen=True)
class KeaOptions:
    """Kea-specific rendering choices (not part of the ZTP model).

    ``interfaces``: ``interfaces-config.interfaces`` of a whole config.
    ``hooks_dir``: where ``libdhcp_flex_option.so`` lives; ``None`` = detect
    (:func:`default_hooks_dir`). ``control_socket``: unix socket path of a
    whole config (``None`` = no control socket; the default is the Debian
    package's). ``lease_file``: memfile path (``None`` = Kea's default).
    ``valid_lifetime``: seconds. ``log_output``: ``stdout``, ``syslog`` or a
    file path; ``log_severity``: Kea severity. Only ``hooks_dir`` matters to
    :func:`kea_merge` (and only when the existing config has no flex_option hook).
    """

    interfaces: Sequence[str] = ("*",)
    hooks_dir: str | None = None
    control_socket: str | None = "/run/kea/kea4-ctrl-socket"
    lease_file: str | None = None
    valid_lifetime: int = 3600
    log_output: str = "stdout"
    log_severity: str = "INFO"

    def __post_init__(self) -> None:
        if isinstance(self.interfaces, str):
            raise ValueError("interfaces must be a list of interface names")
        object.__setattr__(self, "interfaces", tuple(self.interfaces))
        if isinstance(self.valid_lifetime, bool) or not isinstance(self.valid_lifetime, int) or self.valid_lifetime < 1:
            raise ValueError(f"valid_lifetime must be a positive integer, got {self.valid_lifetime!r}")


def default_hooks_dir() -> str:
    """Directory holding ``libdhcp_flex_option.so`` on this machine, else :data:`DEFAULT_HOOKS_DIR`.

    Looks in ``/usr/lib/<multiarch>/kea/hooks`` (Debian/Ubuntu; multiarch from
    Python's ``MULTIARCH``), any ``/usr/lib/*-linux-gnu*/kea/hooks``,
    ``/usr/lib64/kea/hooks``, ``/usr/lib/kea/hooks``, ``/usr/local/lib/kea/hooks``.
    Kea 2.2 needs the full path of a hook (a bare name fails with HOOKS_OPEN_ERROR,
    docs/protocol.md §17.4).
    """
    candidates: list[str] = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        candidates.append(f"/usr/lib/{multiarch}/kea/hooks")
    candidates += sorted(glob.glob("/usr/lib/*-linux-gnu*/kea/hooks"))
    candidates += ["/usr/lib64/kea/hooks", "/usr/lib/kea/hooks", "/usr/local/lib/kea/hooks"]
    for directory in candidates:
        if os.path.isfile(os.path.join(directory, FLEX_OPTION_LIB)):
            return directory
    return DEFAULT_HOOKS_DIR


# --------------------------------------------------------------------------- reading / writing


def _string_end(text: str, start: int) -> int:
    """Index just past the JSON string that opens at ``text[start]`` (a ``"``), escapes honoured."""
    j, n = start + 1, len(text)
    while j < n and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return min(j + 1, n)


def _strip_comments(text: str) -> str:
    """Remove Kea's ``//``, ``#`` and ``/* */`` comments outside JSON strings (newlines kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
        elif ch == "#" or text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ValueError("Kea config: unterminated /* comment")
            out.append("\n" * text.count("\n", i, j))
            i = j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _strip_trailing_commas(text: str) -> str:
    """Remove a ``,`` that only whitespace separates from ``}`` or ``]`` (Kea accepts it, JSON does not)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
            continue
        if ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def kea_loads(text: str) -> dict[str, Any]:
    """Parse a kea-dhcp4.conf text into a dict.

    Kea's JSON-with-comments is accepted: ``//``, ``#`` and ``/* */`` comments
    are removed (and are therefore lost when the result is written back; Kea's
    own ``config-write`` drops them as well), and so are the trailing commas
    Kea tolerates (the Debian package's own kea-dhcp4.conf has one). ``<?include ...?>`` is not
    supported. Raises ValueError on a syntax error (with line and column) or
    when the top level is not an object.
    """
    if "<?include" in text:
        raise ValueError("Kea config uses <?include ...?>: merge the included file instead")
    try:
        data = json.loads(_strip_trailing_commas(_strip_comments(text)))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Kea config is not valid JSON (comments removed): {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("Kea config must be a JSON object")
    return data


def kea_dumps(config: Mapping[str, Any]) -> str:
    """Deterministic JSON text of a Kea config (2-space indent, key order kept, ending in a newline)."""
    return json.dumps(config, indent=2, ensure_ascii=True) + "\n"


# --------------------------------------------------------------------------- ownership


def is_managed(item: object) -> bool:
    """True for an item this module wrote: ``user-context.managed-by`` = :data:`MANAGED_BY`.

    flex_option entries carry ``"comment": FLEX_MARK`` instead (the hook refuses
    ``user-context``); reservations of older releases (``managed-by``
    ``ztp-dhcp-helper``) count as managed too.
    """
    if not isinstance(item, dict):
        return False
    ctx = item.get("user-context")
    if isinstance(ctx, dict) and ctx.get("managed-by") in (MANAGED_BY, *LEGACY_MANAGED_BY):
        return True
    return item.get("comment") == FLEX_MARK


def _mark(item: dict[str, Any], **facts: Any) -> dict[str, Any]:
    item["user-context"] = {"managed-by": MANAGED_BY, **{k: v for k, v in facts.items() if v is not None}}
    return item


def _covers(ours: Any, theirs: Any) -> bool:
    """True when ``theirs`` holds everything ``ours`` says.

    Kea's config-get adds its defaults (``csv-format``, ``next-server``...),
    the encapsulated ``data`` of option 43 and reorders option-data (dhcp4
    space first), so dicts are compared on our keys and lists as multisets.
    """
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and all(k in theirs and _covers(v, theirs[k]) for k, v in ours.items())
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return False
        free = list(theirs)
        for item in ours:
            match = next((i for i, other in enumerate(free) if _covers(item, other)), None)
            if match is None:
                return False
            free.pop(match)
        return True
    return type(ours) is type(theirs) and ours == theirs


def _describe(item: Any) -> str:
    return json.dumps(item, sort_keys=True)[:120]


def _replace_managed(
    items: list[Any],
    ours: Sequence[dict[str, Any]],
    keys: Callable[[Any], set[Any]],
    what: str,
    conflicts: bool = True,
) -> list[Any]:
    """``items`` with the managed ones replaced by ``ours``; the operator's kept as they are.

    ``keys(item)`` gives the identities of an item (name, code, MAC...). An
    operator item sharing one with ours is a conflict (ValueError). A managed
    item that already says what ours says is kept unchanged (so merging twice,
    or merging Kea's own config-get form, changes nothing). Ours go where the
    first managed item was, else at the end.
    """
    operator = [i for i in items if not is_managed(i)]
    for item in ours if conflicts else ():
        mine = keys(item)
        for other in operator:
            clash = mine & keys(other)
            if clash:
                raise ValueError(
                    f"{what} {sorted(map(str, clash))[0]} exists already and is not managed by {MANAGED_BY} "
                    f"({_describe(other)}): rename or remove it, or add \"user-context\": "
                    f"{{\"managed-by\": \"{MANAGED_BY}\"}} to let the helper replace it"
                )
    old = [i for i in items if is_managed(i)]
    result: list[Any] = []
    for item in ours:
        same = next((o for o in old if keys(o) & keys(item) and _covers(item, o)), None)
        result.append(same if same is not None else item)
    if len(old) == len(result) and {id(i) for i in result} == {id(i) for i in old}:
        return list(items)  # nothing to change: keep the order as it is (Kea sorts option-defs its own way)
    index = next((i for i, item in enumerate(items) if is_managed(item)), None)
    if index is None:
        return operator + result
    before = sum(1 for item in items[:index] if not is_managed(item))
    return operator[:before] + result + operator[before:]


# --------------------------------------------------------------------------- what is written


def _ci_equals(expr: str, start: int, text: str) -> str:
    """Kea 2.2 has no lcase(): compare ``text`` at ``start`` letter by letter, either case."""
    parts: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isalpha():
            sub = f"substring({expr}, {start + i}, 1)"
            parts.append(f"({sub} == '{text[i].lower()}' or {sub} == '{text[i].upper()}')")
            i += 1
        else:
            j = i
            while j < len(text) and not text[j].isalpha():
                j += 1
            parts.append(f"substring({expr}, {start + i}, {j - i}) == '{text[i:j]}'")
            i = j
    return " and ".join(parts)


def _model_test(model: JuniperModel) -> str:
    """VCI is ``Juniper-<model>`` or starts with ``Juniper-<model>-``, any case."""
    vci = "juniper-" + model.model
    end = len(vci)
    return f"{_ci_equals(_VCI, 0, vci)} and (substring({_VCI}, {end}, all) == '' or substring({_VCI}, {end}, 1) == '-')"


def _cisco_class(name: str, test: str, option43: str) -> dict[str, Any]:
    return _mark({
        "name": name,
        "test": test,
        # Built-in 43 is an empty container: the raw string needs a class-level def (docs/protocol.md §17.3, trap 1).
        "option-def": [{"name": _OPT43, "code": 43, "type": "string"}],
        "option-data": [{"name": _OPT43, "data": option43, "always-send": True}],
    })


def juniper_suboptions(ztp: JuniperZtp, model: JuniperModel | None,
                       overrides: JuniperOverrides | None = None, image_url: str | None = None) -> dict[int, str]:
    """The static Juniper option-43 sub-options of one scope (code -> text), docs/protocol.md §16.2.

    0 only when ``image_url`` is given (a per-device image; the per-model one is
    built per request), 1 for a static config, 2/4/7/8 as set on the model or
    the device, 3 the transfer mode, 5 the port (http/https only).
    """
    subs: dict[int, str] = {}
    if image_url:
        subs[0] = image_url
    config_file = (overrides.config_file if overrides else None) or (
        model.config_file if model is not None and model.config_mode == "static" else None)
    if config_file:
        subs[1] = config_file
    for code, attr in ((2, "image_type"), (4, "alt_image"), (7, "ftp_timeout"), (8, "proxy")):
        value = getattr(overrides, attr, None) if overrides else None
        if value is None and model is not None:
            value = getattr(model, attr)
        if value is not None:
            subs[code] = str(value)
    subs[3] = ztp.file_server.transfer_mode
    if ztp.file_server.transfer_mode in ("http", "https"):
        subs[5] = str(ztp.file_server.port)
    return dict(sorted(subs.items()))


def _juniper_option_data(ztp: JuniperZtp, subs: Mapping[int, str]) -> list[dict[str, Any]]:
    """The complete option set of one Juniper scope: container, sub-options (by code), option 150/66."""
    # Sub-options and 150 by code: an operator's own definition of the same code and type serves as well.
    data: list[dict[str, Any]] = [{"name": _OPT43, "always-send": True}]
    for code, value in subs.items():
        data.append({"code": code, "space": VENDOR_SPACE, "data": value})
    server = ztp.file_server
    if 150 in server.server_options:
        data.append({"code": 150, "data": server.ip, "always-send": True})
    if 66 in server.server_options:
        data.append({"name": "tftp-server-name", "data": server.ip, "always-send": True})
    return data


def _option_defs() -> list[dict[str, Any]]:
    defs: list[dict[str, Any]] = [
        _mark({"name": name, "code": code, "space": VENDOR_SPACE, "type": "string"})
        for code, name in sorted(JUNIPER_SUBOPTIONS.items())
    ]
    defs.append(_mark({"name": _OPT150, "code": 150, "space": "dhcp4", "type": "ipv4-address", "array": True}))
    return defs


def _classes(spec: DhcpSpec) -> list[dict[str, Any]]:
    classes: list[dict[str, Any]] = []
    if spec.pnp is not None:
        default43 = pnp_option43(spec.pnp)
        cisco = f"{_VCI} == 'ciscopnp'"
        for pid in spec.pid_classes():
            option43 = pnp_option43(pid.server) if pid.server is not None else default43
            test = f"({cisco}) and (substring(option[124].hex, 6, {len(pid.pid_prefix)}) == '{pid.pid_prefix}')"
            classes.append(_cisco_class(pid.class_name, test, option43))
        classes.append(_cisco_class(_CISCO_CLASS, cisco, default43))
    if spec.juniper is not None:
        for model in spec.juniper_models():
            classes.append(_mark({
                "name": model.class_name,
                "test": _model_test(model),
                "option-data": _juniper_option_data(spec.juniper, juniper_suboptions(spec.juniper, model)),
            }))
        classes.append(_mark({
            "name": _JUNIPER_CLASS,
            "test": _ci_equals(_VCI, 0, "juniper-"),
            "option-data": _juniper_option_data(spec.juniper, juniper_suboptions(spec.juniper, None)),
        }))
    return classes


def image_path(vci: str, mac: str, image: str) -> str:
    """Sub-option 0 of a device: ``ztp_fetch/image/<VCI>/<aa-bb-cc-dd-ee-ff>/<image>`` (app/ztp/routes.py)."""
    return f"ztp_fetch/image/{vci}/{mac.replace(':', '-')}/{image}"


def _image_expr(models: Sequence[JuniperModel]) -> str:
    """Sub-option 0 per request: the per-MAC image URL of the first model class the device is in, else ''."""
    expr = "''"
    for model in reversed([m for m in models if m.image]):
        url = f"'ztp_fetch/image/' + {_VCI} + '/' + hexstring(pkt4.mac, '-') + '/{model.image}'"
        expr = f"ifelse(member('{model.class_name}'), {url}, {expr})"
    return expr


def _config_expr(models: Sequence[JuniperModel]) -> str:
    """Option 67: the static config of the device's model class, else the per-MAC config name."""
    expr = PER_MAC_CONFIG_EXPR
    for model in reversed([m for m in models if m.config_mode == "static"]):
        expr = f"ifelse(member('{model.class_name}'), '{model.config_file}', {expr})"
    return expr


def _flex_options(spec: DhcpSpec, classes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The flex_option ``options`` entries owned here (code 43, and 67 with ``boot_file``), guard classes checked."""
    if spec.juniper is None:
        return []
    subs: list[dict[str, Any]] = [
        # "add": only when the class (or a reservation) did not send a static sub-option.
        {"code": 1, "space": VENDOR_SPACE, "add": PER_MAC_CONFIG_EXPR},
    ]
    if any(m.image for m in spec.juniper.models):
        subs.insert(0, {"code": 0, "space": VENDOR_SPACE, "add": _image_expr(spec.juniper_models())})
    entries = [{"code": 43, "client-class": _JUNIPER_CLASS, "comment": FLEX_MARK, "sub-options": subs}]
    if spec.juniper.file_server.boot_file:
        entries.append({"code": 67, "client-class": _JUNIPER_CLASS, "comment": FLEX_MARK,
                        "add": _config_expr(spec.juniper_models())})
    # flex_option accepts an undefined guard class silently (docs/protocol.md §17.3): check it here.
    names = {c["name"] for c in classes}
    for entry in entries:
        if entry["client-class"] not in names:  # pragma: no cover - internal consistency
            raise AssertionError(f"flex_option guard class {entry['client-class']!r} is not defined")
    return entries


def _device_options(spec: DhcpSpec, dev: InventoryDevice) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    if dev.syslog:
        data.append({"name": "log-servers", "data": ", ".join(dev.syslog)})
    if dev.ntp:
        data.append({"name": "ntp-servers", "data": ", ".join(dev.ntp)})
    if dev.juniper is not None and spec.juniper is not None:
        model = next((m for m in spec.juniper.models if dev.model and m.model == dev.model.lower()), None)
        image = dev.juniper.image or (model.image if model is not None else None)
        url = image_path(dev.image_vci, dev.mac or "", image) if image else None
        data += _juniper_option_data(spec.juniper, juniper_suboptions(spec.juniper, model, dev.juniper, url))
    return data


def _reservation(spec: DhcpSpec, dev: InventoryDevice) -> dict[str, Any]:
    res: dict[str, Any] = {"hw-address": dev.mac}
    if dev.ip is not None:
        res["ip-address"] = dev.ip
    if dev.hostname is not None:
        res["hostname"] = dev.hostname
    data = _device_options(spec, dev)
    if data:
        res["option-data"] = data
    return _mark(res, vendor=dev.vendor, serial=dev.serial, pid=dev.pid, model=dev.model)


def _subnet_options(subnet: Subnet) -> list[dict[str, Any]]:
    values = {
        "routers": ", ".join(subnet.routers),
        "domain-name-servers": ", ".join(subnet.dns),
        "domain-name": subnet.domain or "",
        "ntp-servers": ", ".join(subnet.ntp),
        "log-servers": ", ".join(subnet.syslog),
    }
    return [_mark({"name": name, "data": values[name]}) for name, _code in _SUBNET_OPTIONS if values[name]]


def _pools(subnet: Subnet) -> list[dict[str, Any]]:
    # "first-last" without blanks: the form config-get answers, so a no-op merge stays a no-op.
    return [_mark({"pool": f"{a}-{b}"}) for a, b in subnet.all_pools()]


# --------------------------------------------------------------------------- merge helpers


def _list(d4: dict[str, Any], key: str) -> list[Any]:
    value = d4.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"Dhcp4.{key} must be a list")
    return value


def _all_subnets(d4: Mapping[str, Any]) -> list[dict[str, Any]]:
    subnets = [s for s in d4.get("subnet4", []) if isinstance(s, dict)]
    for net in d4.get("shared-networks", []) or []:
        if isinstance(net, dict):
            subnets += [s for s in net.get("subnet4", []) if isinstance(s, dict)]
    return subnets


def _prefix(subnet: Mapping[str, Any]) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(str(subnet.get("subnet")), strict=False)
    except ValueError:
        return None


def _mac_or_none(value: object) -> str | None:
    try:
        return normalize_mac(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _pool_range(item: Any) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
    text = str(item.get("pool", "")) if isinstance(item, dict) else ""
    try:
        if "/" in text:
            net = ipaddress.IPv4Network(text.strip(), strict=False)
            return net.network_address, net.broadcast_address
        first, last = (x.strip() for x in text.split("-"))
        return ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
    except ValueError:
        return None


def _option_keys(o: Any) -> set[Any]:
    if not isinstance(o, dict) or o.get("space", "dhcp4") != "dhcp4":
        return set()
    code = o.get("code", _CODES.get(str(o.get("name"))))
    return {f"code {code}"} if code is not None else {f"name {o.get('name')}"}


def _reservation_keys(r: Any) -> set[Any]:
    if not isinstance(r, dict):
        return set()
    keys = set()
    mac = _mac_or_none(r.get("hw-address"))
    if mac:
        keys.add(f"hw-address {mac}")
    if r.get("ip-address"):
        keys.add(f"ip-address {r['ip-address']}")
    return keys


def _find_subnet(d4: dict[str, Any], s: Subnet) -> dict[str, Any] | None:
    """The existing subnet the spec's ``s`` is merged into, or None; ValueError on a clash."""
    target = next((x for x in _all_subnets(d4) if x.get("id") == s.id), None)
    if target is not None and _prefix(target) != s.network and not is_managed(target):
        raise ValueError(f"subnet id {s.id} is {target.get('subnet')} in the existing config, not {s.subnet}: "
                         "give the helper's subnet another id")
    if target is None:  # adopt a same-prefix subnet that has no id (Kea 2.2 numbers those itself)
        same = [x for x in _all_subnets(d4) if _prefix(x) == s.network]
        target = next((x for x in same if "id" not in x), None)
        if target is None and same:
            raise ValueError(f"subnet {s.subnet} exists already with id {same[0].get('id')}: "
                             f"give the helper's subnet that id")
        if target is not None:
            target["id"] = s.id
    for other in _all_subnets(d4):
        prefix = _prefix(other)
        if other is target or prefix is None:
            continue
        if prefix.overlaps(s.network):
            raise ValueError(
                f"existing subnet id {other.get('id')} ({other.get('subnet')}) overlaps {s.subnet}: "
                f"give the helper's subnet that id or remove it"
            )
    return target


def _merge_subnet(d4: dict[str, Any], spec: DhcpSpec, s: Subnet) -> None:
    target = _find_subnet(d4, s)
    if target is None:
        target = _mark({"id": s.id, "subnet": s.subnet})
        d4.setdefault("subnet4", []).append(target)
    owned = is_managed(target)
    target["subnet"] = s.subnet
    where = f"subnet {s.id} ({s.subnet}):"
    for key, value in (("relay", {"ip-addresses": list(s.relay)} if s.relay else None),
                       ("interface", s.interface)):
        current = target.get(key)
        empty = current in (None, "", {"ip-addresses": []})
        if value is None:
            if owned and not empty:
                del target[key]
        elif not owned and not empty and current != value:
            raise ValueError(f"{where} the existing {key} {current!r} is not the helper's {value!r}")
        elif current != value:
            target[key] = value

    ours_pools = _pools(s)
    for item in target.get("pools", []):
        theirs = _pool_range(item)
        if is_managed(item) or theirs is None:
            continue
        for pool in ours_pools:
            mine = _pool_range(pool)
            assert mine is not None
            if mine[0] <= theirs[1] and theirs[0] <= mine[1]:
                raise ValueError(f"{where} the existing pool {item.get('pool')} overlaps the helper's {pool['pool']}")
    pools = _replace_managed(list(target.get("pools", [])), ours_pools,
                             lambda p: {f"pool {_pool_range(p)}"} if _pool_range(p) else set(), f"{where} pool")
    _set_or_drop(target, "pools", pools)
    opts = _replace_managed(list(target.get("option-data", [])), _subnet_options(s), _option_keys,
                            f"{where} option")
    _set_or_drop(target, "option-data", opts)
    res = _replace_managed(list(target.get("reservations", [])),
                           [_reservation(spec, d) for d in spec.reservations(s.id)], _reservation_keys,
                           f"{where} reservation")
    _set_or_drop(target, "reservations", res)


def _set_or_drop(target: dict[str, Any], key: str, items: list[Any]) -> None:
    if items or key in target:
        target[key] = items


def _drop_stale_subnets(d4: dict[str, Any], spec: DhcpSpec) -> None:
    """Remove managed subnets the spec no longer has, and managed items from the operator's other subnets."""
    ids = {s.id for s in spec.subnets}
    holders = [d4] + [n for n in d4.get("shared-networks", []) or [] if isinstance(n, dict)]
    for holder in holders:
        if "subnet4" not in holder:
            continue
        holder["subnet4"] = [x for x in holder["subnet4"] if not (is_managed(x) and x.get("id") not in ids)]
        for x in holder["subnet4"]:
            if not isinstance(x, dict) or x.get("id") in ids:
                continue
            for key in ("pools", "option-data", "reservations"):
                if key in x and any(is_managed(i) for i in x[key]):
                    x[key] = [i for i in x[key] if not is_managed(i)]


def _merge_hooks(d4: dict[str, Any], flex: list[dict[str, Any]], hooks_dir: str | None) -> None:
    hooks = _list(d4, "hooks-libraries")
    entry = next(
        (h for h in hooks if isinstance(h, dict) and os.path.basename(str(h.get("library", ""))) == FLEX_OPTION_LIB),
        None,
    )
    if entry is None:
        if flex:
            path = os.path.join(hooks_dir or default_hooks_dir(), FLEX_OPTION_LIB)
            hooks.append({"library": path, "parameters": {"options": flex}})
            d4["hooks-libraries"] = hooks
        return
    params = entry.setdefault("parameters", {})
    before = list(params.get("options", []))
    # flex_option applies several entries of one code in turn: the operator's stay, no conflict.
    after = _replace_managed(before, flex, lambda o: {f"option {o.get('code', o.get('name'))}"}
                             if isinstance(o, dict) else set(), "flex_option entry for", conflicts=False)
    if after:
        params["options"] = after
    elif before:  # only our entries were there: drop the hook
        hooks.remove(entry)


def _reuse_operator_defs(existing: list[Any], ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours minus those the operator already defines with the same code, space and type (kept, used by code)."""
    kept = []
    for d in ours:
        same = next((o for o in existing if isinstance(o, dict) and not is_managed(o)
                     and o.get("code") == d["code"] and o.get("space", "dhcp4") == d["space"]), None)
        if same is not None and same.get("type") == d["type"] and bool(same.get("array")) == bool(d.get("array")):
            if not any(isinstance(o, dict) and not is_managed(o) and o is not same and o.get("name") == d["name"]
                       and o.get("space", "dhcp4") == d["space"] for o in existing):
                continue
        kept.append(d)
    return kept


def kea_merge(existing: str | Mapping[str, Any], spec: DhcpSpec, options: KeaOptions | None = None) -> dict[str, Any]:
    """Merge the items this helper manages into an existing kea-dhcp4 config; return the new config.

    ``existing`` is the text of a kea-dhcp4.conf (comments allowed, see
    :func:`kea_loads`: they are lost) or an already parsed dict (not modified;
    e.g. the ``arguments`` of ``config-get``). Ownership is a marker, never a
    name: every item written carries ``"user-context": {"managed-by":
    "pnp-server"}`` (flex_option entries ``"comment": "managed-by pnp-server"``);
    only marked items are replaced or removed, everything else is kept as it
    is, including the operator's classes named like ours. Managed items:

    * ``option-def`` of the Juniper sub-options and option 150 (an operator
      definition of the same code, space and type is reused instead: the
      helper's option-data refer to sub-options by code);
    * ``client-classes`` (PID, generic Cisco, Juniper models, generic Juniper;
      put where the first managed one was, else at the end);
    * the flex_option ``options`` entries (code 43, and 67); the hook is added
      with ``options.hooks_dir`` (default: :func:`default_hooks_dir`) if missing;
    * per spec subnet: a marked subnet of its own, or the operator's subnet of
      the same id (or same prefix and no id), into which marked ``pools``,
      option-data (routers, DNS, domain, NTP, syslog) and reservations go;
      marked subnets and items the spec no longer has are removed.

    A managed item that already says what the spec says is kept as it is, so
    merging twice (or merging Kea's own config-get answer) returns an equal
    config. Raises ValueError with a one-line reason when the text cannot be
    read, there is no ``Dhcp4`` map, or an operator item conflicts with a
    managed one: same option-def code (another type) or name, class name,
    subnet option, reservation MAC or IP, an overlapping pool or subnet, a
    subnet id used for another prefix. The operator's flex_option entries of
    the same code are no conflict (the hook applies them in turn).
    Source: docs/protocol.md §17.2, docs/dhcp.md.
    """
    options = options or KeaOptions()
    config = kea_loads(existing) if isinstance(existing, str) else copy.deepcopy(dict(existing))
    d4 = config.get("Dhcp4")
    if not isinstance(d4, dict):
        raise ValueError("Kea config has no Dhcp4 map")
    for key in ("option-def", "client-classes", "hooks-libraries", "subnet4"):
        _list(d4, key)

    def def_keys(d: Any) -> set[Any]:
        if not isinstance(d, dict):
            return set()
        space = d.get("space", "dhcp4")
        return {f"code {d.get('code')} in {space}", f"{d.get('name')} in {space}"}

    defs = _reuse_operator_defs(_list(d4, "option-def"), _option_defs() if spec.juniper else [])
    _set_or_drop(d4, "option-def", _replace_managed(_list(d4, "option-def"), defs, def_keys, "option-def"))
    classes = _classes(spec)
    merged = _replace_managed(_list(d4, "client-classes"), classes,
                              lambda c: {str(c.get("name"))} if isinstance(c, dict) else set(), "client class")
    if merged or "client-classes" in d4:
        d4["client-classes"] = merged
    _merge_hooks(d4, _flex_options(spec, classes), options.hooks_dir)
    _drop_stale_subnets(d4, spec)
    for s in spec.subnets:
        _merge_subnet(d4, spec, s)
    return config


def kea_diff(before: Mapping[str, Any], after: Mapping[str, Any], name: str = "kea-dhcp4.conf") -> str:
    """Unified diff of two Kea configs as :func:`kea_dumps` writes them ("" when equal)."""
    return "".join(difflib.unified_diff(kea_dumps(before).splitlines(keepends=True),
                                        kea_dumps(after).splitlines(keepends=True),
                                        f"{name} (before)", f"{name} (after)"))


def kea_config(spec: DhcpSpec, options: KeaOptions | None = None) -> dict[str, Any]:
    """A whole kea-dhcp4 config (``{"Dhcp4": {...}}``) for ``spec``.

    Built as :func:`kea_merge` into a skeleton (interfaces, control socket,
    memfile lease database, valid lifetime, loggers from ``options``), so the
    managed items are exactly those a merge writes. Deterministic: same inputs,
    same dict. Raises ValueError like the dataclasses. Source:
    docs/protocol.md §17.2, §5 (Kea 2.2 syntax: ``control-socket`` map,
    full hook path, explicit subnet ``id``).
    """
    options = options or KeaOptions()
    lease_db: dict[str, Any] = {"type": "memfile", "lfc-interval": 3600}
    if options.lease_file:
        lease_db["name"] = options.lease_file
    d4: dict[str, Any] = {"interfaces-config": {"interfaces": list(options.interfaces)}}
    if options.control_socket:
        d4["control-socket"] = {"socket-type": "unix", "socket-name": options.control_socket}
    d4.update(
        {
            "lease-database": lease_db,
            "valid-lifetime": options.valid_lifetime,
            "option-def": [],
            "client-classes": [],
            "hooks-libraries": [],
            "subnet4": [],
            "loggers": [
                {
                    "name": "kea-dhcp4",
                    "output_options": [{"output": options.log_output}],
                    "severity": options.log_severity,
                }
            ],
        }
    )
    config = kea_merge({"Dhcp4": d4}, spec, options)
    for key in ("option-def", "client-classes", "hooks-libraries"):
        if not config["Dhcp4"][key]:
            del config["Dhcp4"][key]
    return config


def kea_config_text(spec: DhcpSpec, options: KeaOptions | None = None) -> str:
    """:func:`kea_config` as JSON text (see :func:`kea_dumps`)."""
    return kea_dumps(kea_config(spec, options))
