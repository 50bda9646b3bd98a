"""The inventory table follows the source of truth: ``sync`` (all devices) and ``sync_device`` (one).

A sync reads the source first (any SourceError: nothing changes), then in one
transaction creates, updates and removes inventory rows of that source.

* idempotent: a second sync with nothing changed in the source changes nothing;
* a device the source no longer lists is removed from the inventory, except
  when it is mid-provisioning (seen and not done): it is *kept* and reported;
* every change is recorded in ``sot_change`` and, when the device has been
  seen, in its history (``device_event``): "planned in NetBox", "hostname
  changed: a → b", "removed from Nautobot";
* a row imported from CSV with the same serial is taken over by the source.

Day-0: devices whose type or tag is in ``SOT_RENDER_CONFIG`` get the config the
source renders stored in ``rendered_config`` (served as is, app/files/day0.py);
the others render the project's Jinja2 template (``pnp_template`` custom
field, else ``SOT_TEMPLATE``) with the config context as variables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.ops import notify
from app.ops.lifecycle import DONE
from app.sot.mapping import SotDevice
from app.sot.sources import SourceError
from app.storage.db import utcnow
from app.storage.models import DeviceEvent, DeviceState, InventoryItem, SotChange

log = logging.getLogger("pnp.sot")
LABELS = {"netbox": "NetBox", "nautobot": "Nautobot", "csv": "the CSV"}
_COMPARED = (("hostname", "hostname"), ("pid", "PID"), ("template", "template"), ("vendor", "vendor"),
             ("model", "model"), ("site", "site"), ("sot_status", "status"), ("mac_address", "MAC"),
             ("ip_address", "IP"), ("image", "image"), ("sot_id", "id"))


@dataclass
class SyncResult:
    """What a sync did (or would do with ``dry_run``): serials per outcome, one-line problems."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # gone from the source, mid-provisioning: not removed
    unchanged: int = 0
    changes: list[tuple[str, str]] = field(default_factory=list)  # (serial, message)
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False

    def lines(self) -> list[str]:
        """Human-readable report lines, one per change, then the totals."""
        out = [f"{serial}: {message}" for serial, message in self.changes] + self.problems
        out.append(f"{len(self.created)} created, {len(self.updated)} updated, {len(self.removed)} removed, "
                   f"{len(self.kept)} kept (mid-provisioning), {self.unchanged} unchanged"
                   + (" (dry run: nothing written)" if self.dry_run else ""))
        return out


def row_values(config: Config, source: str, device: SotDevice, rendered: str | None) -> dict:
    """The inventory columns for ``device`` (template variables: config context over site/IP/MAC/role/status)."""
    facts = {"site": device.site, "role": device.role, "status": device.status, "primary_ip4": device.ip,
             "mac": device.mac, "device_type": device.device_type}
    variables = {**{k: v for k, v in facts.items() if v}, **device.variables}
    template = None if device.render else (device.template or config.sot_template or None)
    return {"hostname": device.hostname, "pid": device.pid, "template": template, "variables": variables,
            "source": source, "sot_id": device.sot_id, "vendor": device.vendor, "model": device.model or None,
            "site": device.site or None, "sot_status": device.status or None, "mac_address": device.mac,
            "ip_address": device.ip, "image": device.image, "rendered_config": rendered if device.render else None}


def _differences(item: InventoryItem, values: dict, label: str) -> list[str]:
    out = []
    if item.source != values["source"]:
        out.append(f"now from {label} (was {LABELS.get(item.source, item.source)})")
    for column, word in _COMPARED:
        old, new = getattr(item, column) or None, values[column] or None
        if old != new:
            out.append(f"{word} changed: {old or '-'} → {new or '-'}")
    if dict(item.variables or {}) != values["variables"]:
        out.append("variables changed (config context)")
    if (item.rendered_config or None) != (values["rendered_config"] or None):
        out.append(f"day-0 config rendered by {label} changed")
    return out


def _rendered(source, devices: list[SotDevice], result: SyncResult) -> dict[str, str | None]:
    """The source-rendered day-0 of each device that wants one; a failure keeps the device out of the sync."""
    out: dict[str, str | None] = {}
    for device in devices:
        if device.render:
            try:
                out[device.serial] = source.render_config(device)
            except SourceError as exc:
                result.problems.append(f"{device.serial}: not synced: {exc}")
    return out


def _unknown_images(config: Config, devices: list[SotDevice]) -> list[str]:
    """Image overrides that name no catalogue image (they are ignored: app/sot/images.py)."""
    known = {e.file for e in config.images}
    return [f"{d.serial}: image {d.image!r} (pnp_image) is not in IMAGES: the catalogue image for its PID is used"
            for d in devices if d.image and d.image not in known]


def _history(session: Session, serial: str, mac: str | None, source: str, message: str, now: datetime) -> None:
    session.add(SotChange(serial_number=serial, at=now, source=source, message=message))
    keys = [k for k in (serial, mac) if k]
    device_id = session.scalar(select(DeviceState.id).where(DeviceState.serial_number.in_(keys)).limit(1))
    if device_id is not None:
        session.add(DeviceEvent(device_id=device_id, at=now, kind="info", message=f"source of truth: {message}"))


def _mid_provisioning(session: Session, item: InventoryItem) -> bool:
    """Seen (by serial, or by MAC for Juniper ZTP) and not done."""
    keys = [k for k in (item.serial_number, item.mac_address) if k]
    states = session.scalars(select(DeviceState.state).where(DeviceState.serial_number.in_(keys))).all()
    return any(state not in DONE for state in states)


def apply(sessions: sessionmaker[Session], config: Config, source: str, devices: list[SotDevice],
          rendered: dict[str, str | None], *, prune: bool = False, removed_ids=(), keep_ids=frozenset(),
          dry_run: bool = False, result: SyncResult | None = None) -> SyncResult:
    """Write ``devices`` into the inventory in one transaction.

    ``prune`` (a full sync): rows of ``source`` not in ``devices`` are removed
    unless mid-provisioning. ``removed_ids``: the rows with those source ids
    not in ``devices`` are (a webhook's deleted device). ``dry_run`` reports
    without writing. Rows whose source id is in ``keep_ids`` (unusable in the source right now) stay.
    """
    result = result or SyncResult(dry_run=dry_run)
    label = LABELS.get(source, source)
    now = utcnow()
    wanted = [d for d in devices if not d.render or d.serial in rendered]
    with sessions() as session, session.begin():
        serials = [d.serial for d in wanted]
        existing = {i.serial_number: i for i in session.scalars(select(InventoryItem).where(
            InventoryItem.serial_number.in_(serials)))} if serials else {}
        for device in wanted:
            values = row_values(config, source, device, rendered.get(device.serial))
            item = existing.get(device.serial)
            if item is None:
                result.created.append(device.serial)
                facts = ", ".join(f"{word} {value}" for word, value in (("status", device.status),
                                                                         ("site", device.site)) if value)
                message = f"planned in {label}" + (f" ({facts})" if facts else "")
                result.changes.append((device.serial, message))
                if not dry_run:
                    session.add(InventoryItem(serial_number=device.serial, created_at=now, updated_at=now, **values))
                    _history(session, device.serial, device.mac, source, message, now)
                continue
            differences = _differences(item, values, label)
            if not differences:
                result.unchanged += 1
                continue
            result.updated.append(device.serial)
            for message in differences:
                result.changes.append((device.serial, message))
                if not dry_run:
                    _history(session, device.serial, device.mac, source, message, now)
            if not dry_run:
                for name, value in values.items():
                    setattr(item, name, value)
                item.updated_at = now
        if prune or removed_ids:
            query = select(InventoryItem).where(InventoryItem.source == source)
            if not prune:
                query = query.where(InventoryItem.sot_id.in_(list(removed_ids)))
            listed = {d.serial for d in devices}
            gone = [i for i in session.scalars(query) if i.serial_number not in listed and i.sot_id not in keep_ids]
            for item in gone:
                if _mid_provisioning(session, item):
                    result.kept.append(item.serial_number)
                    message = f"gone from {label} but mid-provisioning: kept"
                    result.changes.append((item.serial_number, message))
                    if not dry_run:
                        _history(session, item.serial_number, item.mac_address, source, message, now)
                    continue
                result.removed.append(item.serial_number)
                message = f"removed from {label}" + (" (or filtered out)" if prune else "")
                result.changes.append((item.serial_number, message))
                if not dry_run:
                    _history(session, item.serial_number, item.mac_address, source, message, now)
                    session.delete(item)
    return result


def _unique(devices: list[SotDevice], result: SyncResult) -> list[SotDevice]:
    """The devices with each serial once (the first); a repeated serial is reported."""
    seen: dict[str, SotDevice] = {}
    for device in devices:
        if device.serial in seen:
            result.problems.append(f"{device.serial}: serial also on {seen[device.serial].hostname or 'another device'}"
                                   f" (id {seen[device.serial].sot_id}): device {device.sot_id} not synced")
        else:
            seen[device.serial] = device
    return list(seen.values())


def _retrying(run):
    """Run ``run()``; once more when a concurrent sync (webhook and timer) inserted the same serial first."""
    try:
        return run()
    except IntegrityError:
        return run()


#: a failing source posts one sync_failure per source in this many seconds (a webhook storm
#: from NetBox must not become a storm of alerts)
FAILURE_ALERT_EVERY = 600


def sync_failed(sessions: sessionmaker[Session], source_name: str, what: str, exc: Exception) -> None:
    """A sync that could not read the source: a WARNING line and a ``sync_failure`` webhook event
    (app/ops/notify.py; one per source every FAILURE_ALERT_EVERY seconds). Never raises: the
    caller re-raises the SourceError."""
    label = LABELS.get(source_name, source_name)
    log.warning("sync of %s from %s failed, nothing changed: %s", what, label, exc)
    window = int(time.time() // FAILURE_ALERT_EVERY)
    try:
        notify.enqueue(sessions, "sync_failure", data={"source": source_name, "scope": what, "error": str(exc)},
                       dedupe=f"sync_failure:{source_name}:{window}")
    except SQLAlchemyError as db_exc:  # the alert is lost, the failure is still logged and raised
        log.error("sync_failure for %s not queued: %s", label, db_exc.__class__.__name__)


def _alerting(sessions: sessionmaker[Session], source, what: str, run):
    try:
        return run()
    except SourceError as exc:
        sync_failed(sessions, getattr(source, "name", "?"), what, exc)
        raise


def sync(sessions: sessionmaker[Session], config: Config, source, dry_run: bool = False) -> SyncResult:
    """Sync the whole (filtered) inventory of ``source``. Raises SourceError when the source cannot be read
    (nothing changed then; a ``sync_failure`` webhook event is queued, see :func:`sync_failed`)."""
    return _alerting(sessions, source, "all devices", lambda: _sync(sessions, config, source, dry_run))


def _sync(sessions: sessionmaker[Session], config: Config, source, dry_run: bool) -> SyncResult:
    result = SyncResult(dry_run=dry_run)
    devices = _unique(source.devices(), result)
    result.problems.extend(f"device {sot_id}: not synced: {why}" for sot_id, why in source.skipped.items())
    result.problems.extend(_unknown_images(config, devices))
    rendered = _rendered(source, devices, result)
    return _retrying(lambda: apply(sessions, config, source.name, devices, rendered, prune=True, dry_run=dry_run,
                                   result=_copy(result), keep_ids=set(source.skipped)))


def sync_device(sessions: sessionmaker[Session], config: Config, source, sot_id: str,
                deleted: bool = False) -> SyncResult:
    """Re-sync one device by its source id (a webhook): created/updated, or removed when the source no
    longer has it (or ``deleted``) unless mid-provisioning. Raises SourceError (``sync_failure`` queued)."""
    return _alerting(sessions, source, f"device {sot_id}",
                     lambda: _sync_device(sessions, config, source, sot_id, deleted))


def _sync_device(sessions: sessionmaker[Session], config: Config, source, sot_id: str,
                 deleted: bool) -> SyncResult:
    device = None if deleted else source.device(sot_id)
    result = SyncResult()
    if device is None:
        return _retrying(lambda: apply(sessions, config, source.name, [], {}, removed_ids=[sot_id],
                                       result=SyncResult()))
    with sessions() as session:  # the same source id under another serial (serial edited): that row goes
        stale = session.scalars(select(InventoryItem.sot_id).where(
            InventoryItem.source == source.name, InventoryItem.sot_id == sot_id,
            InventoryItem.serial_number != device.serial)).all()
    rendered = _rendered(source, [device], result)
    return _retrying(lambda: apply(sessions, config, source.name, [device], rendered, removed_ids=stale,
                                   result=_copy(result)))


def _copy(result: SyncResult) -> SyncResult:
    """A fresh result carrying the problems found before the transaction (a retry starts from it again)."""
    return SyncResult(problems=list(result.problems), dry_run=result.dry_run)


def ztp_lookup(sessions: sessionmaker[Session]):
    """An app.ztp.juniper InventoryLookup over the inventory table: ``mac -> flat row | None``.

    The row is the device's variables plus ``serial``, ``hostname``, ``template``,
    ``model``, ``ip``, ``vendor`` and ``image`` (like a line of the Juniper inventory CSV).
    """
    def lookup(mac: str):
        with sessions() as session:
            item = session.scalars(select(InventoryItem).where(InventoryItem.mac_address == mac).limit(1)).first()
            if item is None:
                return None
            known = {"serial": item.serial_number, "hostname": item.hostname, "template": item.template,
                     "model": item.model, "ip": item.ip_address, "vendor": item.vendor, "mac": mac,
                     "image": item.image}
            return {**dict(item.variables or {}), **{k: v for k, v in known.items() if v}}
    return lookup
