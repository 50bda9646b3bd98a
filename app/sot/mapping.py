"""From a source of truth's device JSON to a :class:`SotDevice`: the field map (pure, no I/O).

A field map entry is ``field -> "path|fallback|..."``; a path is dotted keys into
the device JSON (``device_type.manufacturer.name``), the first path giving a
non-empty value wins. ``SOT_FIELD_MAP`` overrides single entries. Defaults
(:data:`NETBOX_FIELDS`, :data:`NAUTOBOT_FIELDS`) follow the NetBox 4.x and
Nautobot 2.x/3.x REST API device objects (``/api/dcim/devices/``).

What is read per device (docs/source-of-truth.md, "field mapping"):

* ``serial``: SN, the key of the inventory; devices without one are skipped;
* ``hostname``: the device name;
* ``pid``: the device type's part number, else its model (Cisco PID);
* ``model``: the device type model, lower case (the Juniper model of option 60);
* ``vendor``: the manufacturer, ``cisco`` or ``juniper`` (other names kept lower-case);
* ``site``, ``status``, ``role``, ``ip`` (primary IPv4 without prefix length);
* ``variables``: the rendered config context (template variables);
* ``image``: per-device image override (custom field ``pnp_image``);
* ``template``: per-device day-0 template (custom field ``pnp_template``).

The MAC comes from the device's interfaces (:func:`provisioning_mac`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.common.mac import normalize_mac

COMMON_FIELDS = {
    "serial": "serial",
    "hostname": "name",
    "pid": "device_type.part_number|device_type.model",
    "model": "device_type.model",
    "vendor": "device_type.manufacturer.name|device_type.manufacturer.slug",
    "ip": "primary_ip4.address",
    "variables": "config_context",
    "image": "custom_fields.pnp_image",
    "template": "custom_fields.pnp_template",
    "device_type": "device_type.model",
}
NETBOX_FIELDS = {**COMMON_FIELDS, "site": "site.name", "status": "status.value", "role": "role.name"}
# depth=1 leaves the manufacturer without a name: the device type's display ("Juniper EX4300-48P") tells.
NAUTOBOT_FIELDS = {**COMMON_FIELDS, "site": "location.name", "status": "status.name", "role": "role.name",
                   "vendor": "device_type.manufacturer.name|device_type.display"}
SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class MappingError(ValueError):
    """A device's data cannot be used; the message names the device and the field."""


@dataclass(frozen=True)
class SotDevice:
    """One device as the source of truth describes it (plain data).

    ``sot_id`` is the source's object id (NetBox integer, Nautobot UUID) as text;
    ``ip`` a bare IPv4 address; ``mac`` ``aa:bb:cc:dd:ee:ff`` or None;
    ``tags`` the tag names (and slugs); ``render`` true when the source renders
    the day-0 config itself (``SOT_RENDER_CONFIG``).
    """

    sot_id: str
    serial: str
    hostname: str | None = None
    pid: str = ""
    model: str = ""
    vendor: str = "cisco"
    site: str = ""
    status: str = ""
    role: str = ""
    ip: str | None = None
    mac: str | None = None
    variables: dict = field(default_factory=dict)
    image: str | None = None
    template: str | None = None
    device_type: str = ""
    tags: tuple[str, ...] = ()
    render: bool = False


def lookup(data: Mapping, path: str):
    """The value at dotted ``path`` in ``data`` (None when any step is missing)."""
    value = data
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def first(data: Mapping, paths: str):
    """The first non-empty value of ``"a.b|c.d"`` in ``data``, else None."""
    for path in paths.split("|"):
        value = lookup(data, path.strip())
        if value not in (None, "", {}, []):
            return value
    return None


def field_map(kind: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The field map of source ``kind`` (netbox or nautobot) with ``overrides`` applied.

    Raises MappingError for an override of an unknown field.
    """
    base = dict(NETBOX_FIELDS if kind == "netbox" else NAUTOBOT_FIELDS)
    for name, path in (overrides or {}).items():
        if name not in base:
            raise MappingError(f"SOT_FIELD_MAP: unknown field {name!r} (known: {', '.join(sorted(base))})")
        base[name] = str(path)
    return base


def tag_names(data: Mapping) -> tuple[str, ...]:
    """Tag names and slugs of a device (``tags`` is a list of objects or strings)."""
    names: list[str] = []
    for tag in data.get("tags") or ():
        if isinstance(tag, Mapping):
            names.extend(str(tag[k]) for k in ("name", "slug") if tag.get(k))
        elif tag:
            names.append(str(tag))
    return tuple(dict.fromkeys(names))


def _text(value) -> str:
    if isinstance(value, Mapping):  # a status/choice object, e.g. {"value": "planned", "label": "Planned"}
        value = value.get("value") or value.get("name") or value.get("label")
    return "" if value is None else str(value).strip()


def _ipv4(value, where: str) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        address = ipaddress.ip_interface(text).ip
    except ValueError as exc:
        raise MappingError(f"{where}: primary IPv4 {text!r} is not an address") from exc
    if address.version != 4:
        raise MappingError(f"{where}: primary IPv4 {text!r} is not IPv4")
    return str(address)


def to_device(data: Mapping, fields: Mapping[str, str], *, mac: str | None = None,
              render_config: Iterable[str] = ()) -> SotDevice | None:
    """A :class:`SotDevice` from one device's JSON, or None when it has no serial.

    ``render_config`` are the device types / tags whose day-0 the source renders.
    Raises MappingError naming the device for an unusable serial, IP or variables.
    """
    serial = _text(first(data, fields["serial"]))
    name = _text(first(data, fields["hostname"])) or None
    where = f"device {name or data.get('id')}"
    if not serial:
        return None
    if not SERIAL.match(serial):
        raise MappingError(f"{where}: serial {serial!r} is not a serial number (letters, digits, . _ -)")
    variables = first(data, fields["variables"]) or {}
    if not isinstance(variables, Mapping):
        raise MappingError(f"{where}: config context is not an object")
    vendor = _text(first(data, fields["vendor"])).lower() or "cisco"
    vendor = "juniper" if "juniper" in vendor else "cisco" if "cisco" in vendor else vendor
    device_type = _text(first(data, fields["device_type"]))
    tags = tag_names(data)
    wanted = {w.lower() for w in render_config}
    return SotDevice(
        sot_id=str(data.get("id")), serial=serial, hostname=name,
        pid=_text(first(data, fields["pid"]))[:64], model=_text(first(data, fields["model"])).lower()[:64],
        vendor=vendor[:16], site=_text(first(data, fields["site"])), status=_text(first(data, fields["status"])),
        role=_text(first(data, fields["role"])), ip=_ipv4(first(data, fields["ip"]), where),
        mac=normalize_mac(mac) if mac else None, variables=dict(variables),
        image=_text(first(data, fields["image"])) or None, template=_text(first(data, fields["template"])) or None,
        device_type=device_type, tags=tags,
        render=bool(wanted & ({device_type.lower()} | {t.lower() for t in tags})))


def provisioning_mac(interfaces: Iterable[Mapping], name: str = "") -> str | None:
    """The MAC of the provisioning interface among a device's interfaces, or None.

    ``name`` given: that interface. Else the first management-only interface with
    a MAC, else the first interface with one. NetBox 4.2+ keeps the MAC in
    ``primary_mac_address``; older NetBox and Nautobot in ``mac_address``.
    """
    def mac_of(interface: Mapping) -> str | None:
        value = interface.get("mac_address") or lookup(interface, "primary_mac_address.mac_address")
        return _text(value) or None

    interfaces = list(interfaces)
    if name:
        chosen = [i for i in interfaces if i.get("name") == name]
    else:
        chosen = [i for i in interfaces if i.get("mgmt_only") and mac_of(i)] or [i for i in interfaces if mac_of(i)]
    for interface in chosen:
        mac = mac_of(interface)
        if mac:
            return normalize_mac(mac)
    return None


def reservation_row(device: SotDevice) -> dict:
    """The DHCP helper's inventory row (app/ops/dhcp.py inventory_devices) of a device; a Juniper device's
    ``image`` override becomes its per-device image sub-option."""
    row = {"mac": device.mac, "ip": device.ip, "hostname": device.hostname, "serial": device.serial,
           "pid": device.pid, "vendor": device.vendor}
    if device.vendor == "juniper":
        row.update(model=device.model, image=device.image)
    return {k: v for k, v in row.items() if v}
