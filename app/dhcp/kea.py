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
* the subnet with an explicit ``id``, its pool, routers/DNS/domain/NTP options
  and one reservation per inventory device with a MAC (no option-data in the
  reservation, so the class options still apply).
"""

from __future__ import annotations

import copy
import glob
import ipaddress
import json
import os
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import DhcpSpec, InventoryDevice, JuniperModel, JuniperZtp, normalize_mac
from .option43 import pnp_option43

__all__ = [
    "DEFAULT_HOOKS_DIR",
    "FLEX_OPTION_LIB",
    "JUNIPER_SUBOPTIONS",
    "MANAGED_BY",
    "VENDOR_SPACE",
    "KeaOptions",
    "default_hooks_dir",
    "is_owned_class",
    "kea_config",
    "kea_config_text",
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
#: ``user-context["managed-by"]`` of the reservations this module writes.
MANAGED_BY = "ztp-dhcp-helper"
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
_SUBNET_OPTIONS = (("routers", 3), ("domain-name-servers", 6), ("domain-name", 15), ("ntp-servers", 42))


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


# --------------------------------------------------------------------------- owned items


def _prefix_test(expr: str, prefix: str) -> str:
    return f"substring({expr}, 0, {len(prefix)}) == '{prefix}'"


def _model_test(model: JuniperModel) -> str:
    """VCI is ``Juniper-<model>`` or starts with ``Juniper-<model>-``."""
    return f"({_VCI} == '{model.vci}') or ({_prefix_test(_VCI, model.vci + '-')})"


def _cisco_class(name: str, test: str, option43: str) -> dict[str, Any]:
    return {
        "name": name,
        "test": test,
        # Built-in 43 is an empty container: the raw string needs a class-level def (docs/protocol.md §17.3, trap 1).
        "option-def": [{"name": _OPT43, "code": 43, "type": "string"}],
        "option-data": [{"name": _OPT43, "data": option43, "always-send": True}],
    }


def _juniper_option_data(ztp: JuniperZtp, model: JuniperModel | None) -> list[dict[str, Any]]:
    """The complete option set of one Juniper class: container, sub-options (by code), option 150."""
    subs: dict[int, str] = {}
    if model is not None and model.image:
        subs[0] = f"images/{model.image}"
    if model is not None and model.config_mode == "static" and model.config_file:
        subs[1] = model.config_file
    subs[3] = ztp.file_server.transfer_mode
    if ztp.file_server.transfer_mode in ("http", "https"):
        subs[5] = str(ztp.file_server.port)
    data: list[dict[str, Any]] = [{"name": _OPT43, "always-send": True}]
    for code in sorted(subs):
        data.append({"name": JUNIPER_SUBOPTIONS[code], "space": VENDOR_SPACE, "data": subs[code]})
    data.append({"name": _OPT150, "data": ztp.file_server.ip, "always-send": True})
    return data


def _option_defs() -> list[dict[str, Any]]:
    defs: list[dict[str, Any]] = [
        {"name": name, "code": code, "space": VENDOR_SPACE, "type": "string"}
        for code, name in sorted(JUNIPER_SUBOPTIONS.items())
    ]
    defs.append({"name": _OPT150, "code": 150, "space": "dhcp4", "type": "ipv4-address", "array": True})
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
            classes.append(
                {
                    "name": model.class_name,
                    "test": _model_test(model),
                    "option-data": _juniper_option_data(spec.juniper, model),
                }
            )
        classes.append(
            {
                "name": _JUNIPER_CLASS,
                "test": _prefix_test(_VCI, "Juniper-"),
                "option-data": _juniper_option_data(spec.juniper, None),
            }
        )
    return classes


def _flex_options(spec: DhcpSpec, classes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The flex_option ``options`` entries owned here (code 43), guard classes checked."""
    if spec.juniper is None:
        return []
    entry = {
        "code": 43,
        "client-class": _JUNIPER_CLASS,
        "sub-options": [
            {
                "name": JUNIPER_SUBOPTIONS[1],
                "space": VENDOR_SPACE,
                # "add": only when the class did not send a static sub-option 1.
                "add": PER_MAC_CONFIG_EXPR,
            }
        ],
    }
    # flex_option accepts an undefined guard class silently (docs/protocol.md §17.3): check it here.
    names = {c["name"] for c in classes}
    guards = [entry["client-class"]] + [s["client-class"] for s in entry["sub-options"] if "client-class" in s]
    for guard in guards:
        if guard not in names:  # pragma: no cover - internal consistency
            raise AssertionError(f"flex_option guard class {guard!r} is not defined")
    return [entry]


def _reservation(dev: InventoryDevice) -> dict[str, Any]:
    res: dict[str, Any] = {"hw-address": dev.mac}
    if dev.ip is not None:
        res["ip-address"] = dev.ip
    if dev.hostname is not None:
        res["hostname"] = dev.hostname
    ctx: dict[str, Any] = {"managed-by": MANAGED_BY, "vendor": dev.vendor}
    for key in ("serial", "pid", "model"):
        value = getattr(dev, key)
        if value is not None:
            ctx[key] = value
    res["user-context"] = ctx
    if dev.config_file is not None:  # host-level sub-option 1 wins over the class's per-MAC name
        res["option-data"] = [{"name": JUNIPER_SUBOPTIONS[1], "space": VENDOR_SPACE, "data": dev.config_file}]
    return res


def _subnet_options(spec: DhcpSpec) -> list[dict[str, Any]]:
    s = spec.subnet
    values = {
        "routers": ", ".join(s.routers),
        "domain-name-servers": ", ".join(s.dns),
        "domain-name": s.domain or "",
        "ntp-servers": ", ".join(s.ntp),
    }
    return [{"name": name, "data": values[name]} for name, _code in _SUBNET_OPTIONS if values[name]]


# --------------------------------------------------------------------------- merge helpers


def is_owned_class(name: object) -> bool:
    """True for the client-class names this module owns: ``cisco-pnp``, ``cisco-pnp-*``, ``juniper``, ``juniper-*``.

    Compared case-insensitively, so an older hand-written ``Juniper`` class is
    replaced too (two classes matching the same VCI would fight over option 43).
    """
    if not isinstance(name, str):
        return False
    low = name.lower()
    return low in (_CISCO_CLASS, _JUNIPER_CLASS) or low.startswith((_CISCO_CLASS + "-", _JUNIPER_CLASS + "-"))


def _splice(items: list[Any], owned: Callable[[Any], bool], ours: Sequence[Any]) -> list[Any]:
    """Drop the owned items and put ``ours`` where the first owned one was (else at the end)."""
    index = next((i for i, item in enumerate(items) if owned(item)), None)
    kept = [item for item in items if not owned(item)]
    if index is None:
        return kept + list(ours)
    before = sum(1 for item in items[:index] if not owned(item))
    return kept[:before] + list(ours) + kept[before:]


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


def _merge_subnet(d4: dict[str, Any], spec: DhcpSpec) -> None:
    s = spec.subnet
    target = next((x for x in _all_subnets(d4) if x.get("id") == s.id), None)
    if target is None:  # adopt a same-prefix subnet that has no id (Kea 2.2 numbers those itself)
        target = next((x for x in _all_subnets(d4) if "id" not in x and _prefix(x) == s.network), None)
        if target is not None:
            target["id"] = s.id
    for other in _all_subnets(d4):
        prefix = _prefix(other)
        if other is target or prefix is None:
            continue
        if prefix.overlaps(s.network):
            raise ValueError(
                f"existing subnet id {other.get('id')} ({other['subnet']}) overlaps {s.subnet}: "
                f"give the helper's subnet that id or remove it"
            )
    if target is None:
        target = {"id": s.id}
        d4.setdefault("subnet4", []).append(target)
    target["subnet"] = s.subnet
    target["pools"] = [{"pool": f"{s.pool_start} - {s.pool_end}"}]

    ours_opts = _subnet_options(spec)
    names = {o["name"] for o in ours_opts}
    codes = {code for name, code in _SUBNET_OPTIONS if name in names}

    def owned_opt(o: Any) -> bool:
        return (
            isinstance(o, dict)
            and o.get("space", "dhcp4") == "dhcp4"
            and (o.get("name") in names or o.get("code") in codes)
        )

    opts = _splice(list(target.get("option-data", [])), owned_opt, ours_opts)
    if opts:
        target["option-data"] = opts

    ours_res = [_reservation(d) for d in spec.reservations()]
    macs = {r["hw-address"] for r in ours_res}

    def owned_res(r: Any) -> bool:
        if not isinstance(r, dict):
            return False
        ctx = r.get("user-context")
        if isinstance(ctx, dict) and ctx.get("managed-by") == MANAGED_BY:
            return True
        return _mac_or_none(r.get("hw-address")) in macs

    kept = [r for r in target.get("reservations", []) if not owned_res(r)]
    ips = {r["ip-address"]: r["hw-address"] for r in ours_res if "ip-address" in r}
    for r in kept:
        if isinstance(r, dict) and r.get("ip-address") in ips:
            raise ValueError(
                f"{r['ip-address']} is already reserved in subnet {s.id} for "
                f"{r.get('hw-address') or r.get('client-id') or r.get('hostname')}, "
                f"not for {ips[r['ip-address']]}"
            )
    if kept or ours_res:
        target["reservations"] = kept + ours_res
    else:
        target.pop("reservations", None)


def _merge_hooks(d4: dict[str, Any], flex: list[dict[str, Any]], hooks_dir: str | None) -> None:
    hooks = _list(d4, "hooks-libraries")
    entry = next(
        (h for h in hooks if isinstance(h, dict) and os.path.basename(str(h.get("library", ""))) == FLEX_OPTION_LIB),
        None,
    )

    def owned(o: Any) -> bool:
        return isinstance(o, dict) and (o.get("code") == 43 or o.get("name") == _OPT43)

    if entry is None:
        if flex:
            path = os.path.join(hooks_dir or default_hooks_dir(), FLEX_OPTION_LIB)
            hooks.append({"library": path, "parameters": {"options": flex}})
            d4["hooks-libraries"] = hooks
        return
    params = entry.setdefault("parameters", {})
    before = list(params.get("options", []))
    after = _splice(before, owned, flex)
    if after:
        params["options"] = after
    elif any(owned(o) for o in before):  # only our entry was there: drop the hook
        hooks.remove(entry)


def kea_merge(existing: str | Mapping[str, Any], spec: DhcpSpec, options: KeaOptions | None = None) -> dict[str, Any]:
    """Merge the items owned by this module into an existing kea-dhcp4 config; return the new config.

    ``existing`` is the text of a kea-dhcp4.conf (comments allowed, see
    :func:`kea_loads`: they are lost) or an already parsed dict (not modified;
    e.g. the ``arguments`` of ``config-get``). Everything else is kept as is.
    Owned items, replaced in place (or appended):

    * ``option-def`` entries with the same (code, space) or (name, space) as
      the Juniper sub-options and option 150;
    * ``client-classes`` named ``cisco-pnp``, ``cisco-pnp-*``, ``juniper``,
      ``juniper-*`` (any case; see :func:`is_owned_class`), put where the first
      of them was, in the order Kea needs (PID, generic Cisco, models, generic
      Juniper); a spec without ``pnp``/``juniper`` removes them;
    * in the flex_option hook (found by file name; its library path is kept),
      the ``options`` entry of code 43; the hook is added with
      ``options.hooks_dir`` (default: :func:`default_hooks_dir`) if missing, and
      removed if that entry was its only one and is no longer needed;
    * the subnet with ``spec.subnet.id`` (in ``subnet4`` or a shared network;
      else a subnet with the same prefix and no ``id``, which gets the id;
      else a new one in ``subnet4``): its ``subnet`` and ``pools``, the routers/DNS/domain/NTP option-data the
      spec sets, and reservations with the same MAC or marked
      ``user-context.managed-by`` = :data:`MANAGED_BY` (stale ones go away).

    Idempotent: merging twice gives the same result as merging once. Raises
    ValueError when the text cannot be read, has no ``Dhcp4`` map, another
    subnet overlaps the spec's, or a kept reservation holds one of the
    inventory's addresses. Source: docs/protocol.md §17.2.
    """
    options = options or KeaOptions()
    config = kea_loads(existing) if isinstance(existing, str) else copy.deepcopy(dict(existing))
    d4 = config.get("Dhcp4")
    if not isinstance(d4, dict):
        raise ValueError("Kea config has no Dhcp4 map")
    for key in ("option-def", "client-classes", "hooks-libraries", "subnet4"):
        _list(d4, key)

    defs = _option_defs()
    def_codes = {(d["code"], d["space"]) for d in defs}
    def_names = {(d["name"], d["space"]) for d in defs}

    def owned_def(d: Any) -> bool:
        if not isinstance(d, dict):
            return False
        space = d.get("space", "dhcp4")
        return (d.get("code"), space) in def_codes or (d.get("name"), space) in def_names

    d4["option-def"] = _splice(_list(d4, "option-def"), owned_def, defs)

    classes = _classes(spec)
    merged_classes = _splice(
        _list(d4, "client-classes"), lambda c: isinstance(c, dict) and is_owned_class(c.get("name")), classes
    )
    if merged_classes or "client-classes" in d4:
        d4["client-classes"] = merged_classes

    _merge_hooks(d4, _flex_options(spec, classes), options.hooks_dir)
    _merge_subnet(d4, spec)
    return config


def kea_config(spec: DhcpSpec, options: KeaOptions | None = None) -> dict[str, Any]:
    """A whole kea-dhcp4 config (``{"Dhcp4": {...}}``) for ``spec``.

    Built as :func:`kea_merge` into a skeleton (interfaces, control socket,
    memfile lease database, valid lifetime, loggers from ``options``), so the
    owned items are exactly those a merge writes. Deterministic: same inputs,
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
    for key in ("client-classes", "hooks-libraries"):
        if not config["Dhcp4"][key]:
            del config["Dhcp4"][key]
    return config


def kea_config_text(spec: DhcpSpec, options: KeaOptions | None = None) -> str:
    """:func:`kea_config` as JSON text (see :func:`kea_dumps`)."""
    return kea_dumps(kea_config(spec, options))
