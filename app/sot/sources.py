"""Inventory sources behind one interface: CSV, NetBox (pynetbox), Nautobot (pynautobot).

``make_source(config)`` returns the source ``INVENTORY_SOURCE`` names. Every
source answers:

* ``devices()`` -> list of :class:`~app.sot.mapping.SotDevice` (the filtered inventory);
* ``device(sot_id)`` -> one device, or None when it is gone or filtered out;
* ``render_config(device)`` -> the day-0 config the source renders (NetBox
  ``POST /api/dcim/devices/{id}/render-config/``; Nautobot ``POST
  /api/core/render-jinja-template/`` with the template in the config-context key
  ``pnp_day0_template``);
* ``set_status(sot_id, status)``, ``add_note(sot_id, text, ok)`` (NetBox journal
  entry, Nautobot note) and ``create_device(serial, pid, status, site, role)``.

Any failure talking to the source raises :class:`SourceError` with a one-line
reason; nothing is half-applied by the callers (app/sot/sync.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import requests

from app.common.inventory_csv import parse_inventory_csv
from app.config import Config
from app.sot.mapping import MappingError, SotDevice, field_map, provisioning_mac, reservation_row, to_device

NAUTOBOT_TEMPLATE_KEY = "pnp_day0_template"
INTERFACE_BATCH = 50  # devices whose interfaces one API call asks for


class SourceError(RuntimeError):
    """The source of truth could not be read or written; the message says why, in one line."""


class _Session(requests.Session):
    """A requests session with a default timeout (seconds) on every call and no proxy from the environment."""

    def __init__(self, timeout: float, verify: bool | str):
        super().__init__()
        self.timeout, self.verify, self.trust_env = timeout, verify, False

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def _verify(config: Config) -> bool | str:
    if not config.sot_verify_tls:
        return False
    return config.sot_ca_bundle or True


def _plain(record) -> dict:
    """A pynetbox/pynautobot Record (or dict) as plain nested dicts."""
    return dict(record) if not isinstance(record, Mapping) else dict(record)


class CsvSource:
    """Today's inventory CSV (app/common/inventory_csv.py) as a source: read-only.

    ``path`` is the CSV file; rows need a ``serial``. Status write-back and
    rendering are not possible (SourceError).
    """

    name = "csv"
    skipped: dict[str, str] = {}

    def __init__(self, path: Path):
        self.path = path

    def devices(self) -> list[SotDevice]:
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise SourceError(f"inventory CSV {self.path}: {exc.strerror or exc}") from exc
        rows, errors = parse_inventory_csv(text, key="serial")
        if errors:
            raise SourceError(f"inventory CSV {self.path}: {errors[0]}")
        return [SotDevice(sot_id=r["serial"], serial=r["serial"], hostname=r.get("hostname"), pid=r.get("pid", ""),
                          model=r.get("model", ""), vendor=(r.get("vendor") or ("juniper" if r.get("model")
                                                                                 else "cisco")).lower(),
                          ip=r.get("ip"), mac=r.get("mac"), variables=dict(r["variables"]),
                          template=r.get("template")) for r in rows]

    def device(self, sot_id: str) -> SotDevice | None:
        return next((d for d in self.devices() if d.sot_id == sot_id), None)

    def render_config(self, device: SotDevice) -> str:
        raise SourceError("a CSV inventory cannot render configs")

    def set_status(self, sot_id: str, status: str) -> None:
        raise SourceError("a CSV inventory has no status to write back")

    add_note = create_device = set_status


class _ApiSource:
    """What NetBox and Nautobot share: filters, the field map, interfaces, error wrapping."""

    name = ""
    site_filter = ""
    tag_filter = ""

    def __init__(self, config: Config, api):
        self.config, self.api = config, api
        self.fields = field_map(self.name, config.sot_field_map)
        self.skipped: dict[str, str] = {}  # source id -> why the last devices() left it out

    # --- reading -----------------------------------------------------------------------
    def _filters(self) -> dict:
        c = self.config
        filters = {self.site_filter: list(c.sot_sites), self.tag_filter: list(c.sot_tags),
                   "status": list(c.sot_statuses), "role": list(c.sot_roles)}
        return {k: v for k, v in filters.items() if v}

    def _list_devices(self, **filters) -> list[dict]:
        raise NotImplementedError

    def _interfaces(self, device_ids: list[str]) -> dict[str, list[dict]]:
        """Interfaces of the devices, by device id: one API call per ``INTERFACE_BATCH`` devices."""
        out: dict[str, list[dict]] = {i: [] for i in device_ids}
        for start in range(0, len(device_ids), INTERFACE_BATCH):
            batch = device_ids[start:start + INTERFACE_BATCH]
            for interface in self.api.dcim.interfaces.filter(device_id=batch):
                interface = _plain(interface)
                device = interface.get("device") or {}
                out.setdefault(str(device.get("id")), []).append(interface)
        return out

    def _devices(self, found: list[dict]) -> list[SotDevice]:
        """SotDevices of the listed device JSON; unusable ones are left out and noted in ``skipped``."""
        interfaces = self._interfaces([str(d["id"]) for d in found])
        devices = []
        for data in found:
            mac = provisioning_mac(interfaces.get(str(data["id"]), ()), self.config.sot_provisioning_interface)
            try:
                device = to_device(data, self.fields, mac=mac, render_config=self.config.sot_render_config)
            except (MappingError, ValueError) as exc:
                self.skipped[str(data["id"])] = f"{self.name}: {exc}"
                continue
            if device is not None:
                devices.append(device)
        return devices

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - pynetbox/pynautobot RequestError, requests errors, bad JSON
            detail = getattr(exc, "error", None) or str(exc) or exc.__class__.__name__
            status = getattr(getattr(exc, "req", None), "status_code", None)
            detail = f"HTTP {status}: {detail}" if status else detail
            raise SourceError(f"{self.name} at {self.config.sot_url}: {what}: {str(detail)[:300]}") from exc

    def devices(self) -> list[SotDevice]:
        self.skipped = {}
        return self._call("listing devices", lambda: self._devices(self._list_devices(**self._filters())))

    def device(self, sot_id: str) -> SotDevice | None:
        """One device, or None when it is gone, filtered out or has no serial. Raises SourceError, also
        when its data is unusable."""
        self.skipped = {}
        found = self._call(f"reading device {sot_id}",
                           lambda: self._devices(self._list_devices(id=sot_id, **self._filters())))
        if self.skipped:
            raise SourceError(next(iter(self.skipped.values())))
        return found[0] if found else None


class NetboxSource(_ApiSource):
    """NetBox 4.x through pynetbox (``/api/dcim/devices/``, ``/api/extras/journal-entries/``)."""

    name = "netbox"
    site_filter, tag_filter = "site", "tag"

    def __init__(self, config: Config):
        import pynetbox

        api = pynetbox.api(config.sot_url, token=config.sot_token)
        api.http_session = _Session(config.sot_timeout, _verify(config))
        super().__init__(config, api)

    def _list_devices(self, **filters) -> list[dict]:
        endpoint = self.api.dcim.devices
        return [_plain(d) for d in (endpoint.filter(**filters) if filters else endpoint.all())]

    def render_config(self, device: SotDevice) -> str:
        def render():
            answer = self.api.dcim.devices.get(int(device.sot_id)).render_config.create()
            content = _plain(answer).get("content") if answer is not None else None
            if not isinstance(content, str):
                raise SourceError(f"netbox: device {device.hostname or device.serial} rendered no content "
                                  "(is a config template assigned?)")
            return content
        return self._call(f"render-config of {device.hostname or device.serial}", render)

    def set_status(self, sot_id: str, status: str) -> None:
        def write():
            device = self.api.dcim.devices.get(int(sot_id))
            if device is None:
                raise SourceError(f"netbox: device {sot_id} no longer exists")
            device.update({"status": status})
        self._call(f"setting status {status!r} of device {sot_id}", write)

    def add_note(self, sot_id: str, text: str, ok: bool = True) -> None:
        self._call(f"journal entry on device {sot_id}", self.api.extras.journal_entries.create,
                   assigned_object_type="dcim.device", assigned_object_id=int(sot_id),
                   kind="success" if ok else "danger", comments=text)

    def create_device(self, serial: str, pid: str, status: str, site: str, role: str) -> str:
        def create():
            dcim = self.api.dcim
            device_type = (_first(dcim.device_types, part_number=pid) or _first(dcim.device_types, model=pid)
                           if pid else None)
            site_obj = _first(dcim.sites, slug=site) or _first(dcim.sites, name=site)
            role_obj = _first(dcim.device_roles, slug=role) or _first(dcim.device_roles, name=role)
            missing = [w for w, o in (("device type " + (pid or "?"), device_type), ("site " + site, site_obj),
                                      ("role " + role, role_obj)) if o is None]
            if missing:
                raise SourceError(f"netbox: cannot create {serial}: no {', '.join(missing)}")
            created = self.api.dcim.devices.create(serial=serial, device_type=device_type.id, site=site_obj.id,
                                                   role=role_obj.id, status=status)
            return str(created.id)
        return self._call(f"creating device {serial}", create)


class NautobotSource(_ApiSource):
    """Nautobot 2.x/3.x through pynautobot (``/api/dcim/devices/?depth=1&include=config_context``)."""

    name = "nautobot"
    site_filter, tag_filter = "location", "tags"

    def __init__(self, config: Config):
        import pynautobot

        api = pynautobot.api(config.sot_url, token=config.sot_token, verify=_verify(config))
        session = _Session(config.sot_timeout, _verify(config))
        session.headers.update(api.http_session.headers)
        api.http_session = session
        super().__init__(config, api)
        self._statuses: dict[str, str] = {}

    def _list_devices(self, **filters) -> list[dict]:
        return [_plain(d) for d in self.api.dcim.devices.filter(depth=1, include="config_context", **filters)]

    def _status_id(self, name: str) -> str:
        if not self._statuses:
            self._statuses = {_plain(s)["name"].lower(): str(_plain(s)["id"])
                              for s in self.api.extras.statuses.all()}
        try:
            return self._statuses[name.lower()]
        except KeyError:
            raise SourceError(f"nautobot: no status {name!r} (known: {', '.join(sorted(self._statuses))})") from None

    def render_config(self, device: SotDevice) -> str:
        template = device.variables.get(NAUTOBOT_TEMPLATE_KEY)
        if not isinstance(template, str) or not template.strip():
            raise SourceError(f"nautobot: device {device.hostname or device.serial} has no config-context key "
                              f"{NAUTOBOT_TEMPLATE_KEY!r} holding its day-0 template")
        context = {k: v for k, v in device.variables.items() if k != NAUTOBOT_TEMPLATE_KEY}
        context.update(serial=device.serial, hostname=device.hostname or "", pid=device.pid, site=device.site,
                       ip=device.ip or "", mac=device.mac or "")

        def render():
            answer = self.api.http_session.post(f"{self.api.base_url}/core/render-jinja-template/",
                                                json={"template_code": template, "context": context},
                                                headers={"Authorization": f"Token {self.api.token}",
                                                         "Accept": "application/json"})
            if answer.status_code != 200:
                raise SourceError(f"nautobot: render-jinja-template of {device.hostname or device.serial}: "
                                  f"HTTP {answer.status_code} {answer.text[:200]}")
            return answer.json()["rendered_template"]
        return self._call(f"rendering {device.hostname or device.serial}", render)

    def set_status(self, sot_id: str, status: str) -> None:
        def write():
            device = self.api.dcim.devices.get(sot_id)
            if device is None:
                raise SourceError(f"nautobot: device {sot_id} no longer exists")
            device.update({"status": self._status_id(status)})
        self._call(f"setting status {status!r} of device {sot_id}", write)

    def add_note(self, sot_id: str, text: str, ok: bool = True) -> None:
        self._call(f"note on device {sot_id}", self.api.extras.notes.create,
                   assigned_object_type="dcim.device", assigned_object_id=sot_id, note=text)

    def create_device(self, serial: str, pid: str, status: str, site: str, role: str) -> str:
        def create():
            dcim = self.api.dcim
            device_type = (_first(dcim.device_types, part_number=pid) or _first(dcim.device_types, model=pid)
                           if pid else None)
            location = _first(dcim.locations, name=site)
            role_obj = _first(self.api.extras.roles, name=role)
            missing = [w for w, o in (("device type " + (pid or "?"), device_type), ("location " + site, location),
                                      ("role " + role, role_obj)) if o is None]
            if missing:
                raise SourceError(f"nautobot: cannot create {serial}: no {', '.join(missing)}")
            created = self.api.dcim.devices.create(serial=serial, device_type=str(device_type.id),
                                                   location=str(location.id), role=str(role_obj.id),
                                                   status=self._status_id(status))
            return str(created.id)
        return self._call(f"creating device {serial}", create)


def _first(endpoint, **filters):
    """The first object matching ``filters`` or None (``get`` refuses several matches)."""
    return next(iter(endpoint.filter(**filters)), None)


def make_source(config: Config):
    """The source ``INVENTORY_SOURCE`` names (csv: the ``DHCP_INVENTORY``/``JUNIPER_INVENTORY`` file)."""
    if config.inventory_source == "netbox":
        return NetboxSource(config)
    if config.inventory_source == "nautobot":
        return NautobotSource(config)
    return CsvSource(config.root / (config.dhcp_inventory or config.juniper_inventory))


def reservation_rows(source) -> list[dict]:
    """DHCP reservation rows (app/ops/dhcp.py inventory_devices) from ``source``: primary IPv4 + the MAC of
    the provisioning interface of each device. Raises SourceError."""
    return [reservation_row(d) for d in source.devices() if d.mac]
