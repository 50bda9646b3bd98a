"""The operator service layer: device lists, one device's story, actions, inventory.

The dashboard (HTML forms), the JSON API (/api/v1) and the CLI all call these
functions, so an action means the same everywhere. Reads are plain queries;
actions lock the device row (``app.storage.lock.device_lock`` via
``app.pnp.service.set_state``) exactly like a PnP message does, so an operator
edit and a device's request never interleave.

Lifecycle (Catalyst Center's words), derived from the workflow state:

* **Planned**: in the inventory, never seen;
* **Unclaimed**: seen, serial not in the inventory;
* **Onboarding**: claimed and somewhere between step 1 and 12;
* **Provisioned**: FINISHED (Juniper: config fetched);
* **Error**: ERROR or BOOTFLASH_NO_SPACE (parked, waiting for an operator).

A device is *stalled* when it is parked (Error) or, not finished, has been
silent for longer than ``STALLED_AFTER`` seconds.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    DateTime,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.files import day0
from app.pnp import service
from app.pnp import workflow as wf
from app.storage.db import utcnow
from app.storage.lock import device_lock
from app.storage.models import DeviceEvent, DeviceState, InventoryItem
from app.ztp import service as ztp

log = logging.getLogger("pnp.operator")


class Lifecycle(StrEnum):
    """Catalyst Center-like lifecycle of a device."""

    PLANNED = "Planned"
    UNCLAIMED = "Unclaimed"
    ONBOARDING = "Onboarding"
    PROVISIONED = "Provisioned"
    ERROR = "Error"


class NotFound(LookupError):
    """No device (or inventory row) with that serial."""


class ActionError(ValueError):
    """An action cannot be done as asked; the message says why (a 4xx for HTTP)."""


#: Parked states (Cisco workflow and Juniper ZTP): lifecycle Error, marked stalled.
PARKED = tuple(s.value for s in wf.PARKED) + (ztp.ZTP_ERROR,)
#: Done: the Cisco workflow finished, or a Juniper device fetched its config.
DONE = (wf.State.FINISHED.value, ztp.CONFIG_FETCHED)
#: Juniper ZTP progress: image fetched (1 of 2), config fetched (2 of 2).
ZTP_PROGRESS = {ztp.IMAGE_FETCHED: 1, ztp.CONFIG_FETCHED: 2, ztp.ZTP_ERROR: 0}
#: sort key → column of the listing (see ``_listing``)
SORT_KEYS = {"serial": "serial", "pid": "pid", "ip": "ip", "state": "state",
             "lifecycle": "lifecycle", "last_contact": "last_contact", "first_seen": "first_seen",
             "version": "version"}
SORT_COLUMNS = SORT_KEYS  # the names the API and CLI accept
MAX_PER_PAGE = 500
MAX_CSV_BYTES = 32 * 1024 * 1024  # an inventory CSV upload (the app's default limit is 1 MB)
_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def lifecycle_of(state: str, in_inventory: bool) -> Lifecycle:
    """The lifecycle of a seen device: Error > Provisioned > Unclaimed > Onboarding."""
    if state in PARKED:
        return Lifecycle.ERROR
    if state in DONE:
        return Lifecycle.PROVISIONED
    if not in_inventory:
        return Lifecycle.UNCLAIMED
    return Lifecycle.ONBOARDING


def progress_of(state: str) -> tuple[int, int]:
    """``(n, 13)`` for "step n of 13"; n is 0 for ERROR and unknown states.

    Juniper ZTP rows count two steps: image fetched, config fetched.
    """
    if state in ZTP_PROGRESS:
        return ZTP_PROGRESS[state], 2
    try:
        return wf.STEP_NUMBER[wf.State(state)], wf.TOTAL_STEPS
    except ValueError:
        return 0, wf.TOTAL_STEPS


def is_stalled(state: str, last_contact: datetime | None, config: Config, now: datetime) -> bool:
    """Parked, or not finished and silent longer than STALLED_AFTER seconds."""
    if state in PARKED:
        return True
    if state in DONE or last_contact is None:
        return False
    return (now - last_contact).total_seconds() > config.stalled_after


def _stalled_clause(config: Config, now: datetime):
    silent = now - timedelta(seconds=config.stalled_after)
    return or_(DeviceState.state.in_(PARKED),
               and_(DeviceState.state.not_in(DONE), DeviceState.last_contact < silent))


# --- reading -------------------------------------------------------------------------------


@dataclass
class DeviceQuery:
    """Filter, sort and page of a device list.

    ``state``: a workflow state name; ``lifecycle``: a Lifecycle value;
    ``stalled``: only stalled devices; ``q``: serial/hostname/IP substring;
    ``sort``: a key of SORT_COLUMNS; ``order``: asc or desc; ``page`` 1-based.
    """

    state: str = ""
    lifecycle: str = ""
    stalled: bool = False
    q: str = ""
    sort: str = "serial"
    order: str = "asc"
    page: int = 1
    per_page: int = 50

    def validate(self) -> DeviceQuery:
        """Raise ActionError for values that cannot be used; clamp page sizes."""
        if self.state and self.state not in wf.State.__members__:
            raise ActionError(f"unknown state {self.state!r}")
        if self.lifecycle and self.lifecycle not in {lc.value for lc in Lifecycle}:
            raise ActionError(f"unknown lifecycle {self.lifecycle!r} "
                              f"(one of {', '.join(lc.value for lc in Lifecycle)})")
        if self.sort not in SORT_COLUMNS:
            raise ActionError(f"cannot sort by {self.sort!r} (one of {', '.join(SORT_COLUMNS)})")
        if self.order not in ("asc", "desc"):
            raise ActionError("order must be asc or desc")
        self.page = max(1, int(self.page))
        self.per_page = min(max(1, int(self.per_page)), MAX_PER_PAGE)
        return self


@dataclass
class DevicePage:
    """One page of devices (dicts, see ``device_summary``) and the totals."""

    items: list[dict]
    total: int
    page: int
    per_page: int
    counts: dict = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def device_summary(row: DeviceState, in_inventory: bool, config: Config, now: datetime) -> dict:
    """The dashboard/API view of a device row: identity, versions, lifecycle, progress."""
    step, total = progress_of(row.state)
    return {
        "serial_number": row.serial_number, "pid": row.pid, "hostname": row.hostname,
        "ip_address": row.ip_address, "running_version": row.running_version,
        "target_version": row.target_version, "state": row.state,
        "lifecycle": lifecycle_of(row.state, in_inventory).value,
        "step": step, "total_steps": total,
        "last_contact": row.last_contact, "first_seen": row.first_seen,
        "last_error_code": row.last_error_code, "last_error_message": row.last_error_message,
        "stalled": is_stalled(row.state, row.last_contact, config, now),
        "claimed": in_inventory,
    }


def _planned_summary(item: InventoryItem) -> dict:
    return {
        "serial_number": item.serial_number, "pid": item.pid, "hostname": item.hostname,
        "ip_address": None, "running_version": None, "target_version": None, "state": None,
        "lifecycle": Lifecycle.PLANNED.value, "step": 0, "total_steps": wf.TOTAL_STEPS,
        "last_contact": None, "first_seen": None, "last_error_code": None,
        "last_error_message": None, "stalled": False, "claimed": True,
    }


def _in_inventory():
    return exists().where(InventoryItem.serial_number == DeviceState.serial_number)


def _listing():
    """One UNION ALL of seen devices and planned (inventory-only) rows, with the
    columns the dashboard filters and sorts on; ``kind`` 0 = device, 1 = planned."""
    in_inv = _in_inventory()
    lifecycle = case(
        (DeviceState.state.in_(PARKED), literal(Lifecycle.ERROR.value)),
        (DeviceState.state.in_(DONE), literal(Lifecycle.PROVISIONED.value)),
        (not_(in_inv), literal(Lifecycle.UNCLAIMED.value)),
        else_=literal(Lifecycle.ONBOARDING.value))
    seen = select(
        literal(0).label("kind"), DeviceState.id.label("row_id"),
        DeviceState.serial_number.label("serial"), DeviceState.pid.label("pid"),
        DeviceState.hostname.label("hostname"), DeviceState.ip_address.label("ip"),
        DeviceState.state.label("state"), DeviceState.last_contact.label("last_contact"),
        DeviceState.first_seen.label("first_seen"), DeviceState.running_version.label("version"),
        lifecycle.label("lifecycle"))
    planned = select(
        literal(1).label("kind"), InventoryItem.id.label("row_id"),
        InventoryItem.serial_number.label("serial"), InventoryItem.pid.label("pid"),
        InventoryItem.hostname.label("hostname"), cast(null(), String).label("ip"),
        cast(null(), String).label("state"), cast(null(), DateTime).label("last_contact"),
        cast(null(), DateTime).label("first_seen"), cast(null(), String).label("version"),
        literal(Lifecycle.PLANNED.value).label("lifecycle")
    ).where(~exists().where(DeviceState.serial_number == InventoryItem.serial_number))
    return union_all(seen, planned).subquery("listing")


def list_devices(sessions: sessionmaker[Session], config: Config, query: DeviceQuery,
                 now: datetime | None = None) -> DevicePage:
    """One page of devices matching ``query``, with per-state and per-lifecycle counts.

    The list holds every seen device and every Planned inventory row. Filter,
    ORDER BY and LIMIT/OFFSET run in the database, so a page costs about the
    same with 10,000 devices. Raises ActionError for invalid query values.
    """
    query.validate()
    now = now or utcnow()
    u = _listing()
    where = []
    if query.state:
        where.append(u.c.state == query.state)
    if query.lifecycle:
        where.append(u.c.lifecycle == query.lifecycle)
    if query.stalled:
        silent = now - timedelta(seconds=config.stalled_after)
        where.append(or_(u.c.state.in_(PARKED),
                         and_(u.c.state.not_in(DONE), u.c.last_contact < silent)))
    if query.q:
        like = f"%{query.q}%"
        where.append(or_(u.c.serial.like(like), u.c.hostname.like(like), u.c.ip.like(like)))
    column = u.c[SORT_KEYS[query.sort]]
    ordering = column.desc() if query.order == "desc" else column.asc()
    with sessions() as session:
        counts = counts_by_state(session, config, now)
        total = session.scalar(select(func.count()).select_from(u).where(*where)) or 0
        page = session.execute(select(u.c.kind, u.c.row_id).where(*where)
                               .order_by(ordering, u.c.serial)
                               .offset((query.page - 1) * query.per_page).limit(query.per_page)).all()
        device_ids = [r.row_id for r in page if r.kind == 0]
        planned_ids = [r.row_id for r in page if r.kind == 1]
        devices = {}
        if device_ids:
            in_inv = _in_inventory()
            for row, inv in session.execute(select(DeviceState, in_inv).where(DeviceState.id.in_(device_ids))):
                devices[(0, row.id)] = device_summary(row, bool(inv), config, now)
        if planned_ids:
            for item in session.scalars(select(InventoryItem).where(InventoryItem.id.in_(planned_ids))):
                devices[(1, item.id)] = _planned_summary(item)
        items = [devices[(r.kind, r.row_id)] for r in page if (r.kind, r.row_id) in devices]
    return DevicePage(items, total, query.page, query.per_page, counts)


def counts_by_state(session: Session, config: Config, now: datetime) -> dict:
    """``{"state": {name: n}, "lifecycle": {name: n}, "stalled": n, "total": n}``."""
    by_state = dict(session.execute(select(DeviceState.state, func.count())
                                    .group_by(DeviceState.state)).all())
    active = DeviceState.state.not_in(PARKED + DONE)
    unclaimed = session.scalar(select(func.count(DeviceState.id)).where(active, not_(_in_inventory())))
    planned = session.scalar(select(func.count(InventoryItem.id)).where(~exists().where(
        DeviceState.serial_number == InventoryItem.serial_number)))
    stalled = session.scalar(select(func.count(DeviceState.id)).where(_stalled_clause(config, now)))
    total = sum(by_state.values())
    error = sum(by_state.get(s, 0) for s in PARKED)
    provisioned = sum(by_state.get(s, 0) for s in DONE)
    lifecycle = {
        Lifecycle.PLANNED.value: planned or 0,
        Lifecycle.UNCLAIMED.value: unclaimed or 0,
        Lifecycle.ONBOARDING.value: total - error - provisioned - (unclaimed or 0),
        Lifecycle.PROVISIONED.value: provisioned,
        Lifecycle.ERROR.value: error,
    }
    ordered = {s.value: by_state[s.value] for s in wf.State if s.value in by_state}
    ordered.update({k: v for k, v in by_state.items() if k not in ordered})
    return {"state": ordered, "lifecycle": lifecycle, "stalled": stalled or 0, "total": total}


def _event_dict(event: DeviceEvent, with_xml: bool = True) -> dict:
    out = {"id": event.id, "at": event.at, "kind": event.kind, "service": event.service,
           "correlator": event.correlator, "success": event.success,
           "error_code": event.error_code, "message": event.message}
    if with_xml:
        out["raw_xml"] = event.raw_xml
    return out


def _row_fields(row) -> dict:
    """Every mapped column of a row (new columns appear without code changes)."""
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}


def get_device(sessions: sessionmaker[Session], config: Config, serial: str,
               events: int = 200, exchanges: int = 6) -> dict:
    """One device: ``fields`` (all columns), ``summary``, ``inventory``, ``events``
    (newest first, at most ``events``), ``exchanges`` (the last job/response messages
    with raw XML) and ``day0`` (the config it was or will be given, or its error).

    Raises NotFound for an unknown serial (a Planned inventory row is returned
    with empty fields).
    """
    now = utcnow()
    with sessions() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one_or_none()
        item = session.scalars(select(InventoryItem).where(InventoryItem.serial_number == serial)).one_or_none()
        if row is None and item is None:
            raise NotFound(f"no device {serial}")
        inventory = _inventory_dict(item) if item is not None else None
        out = {"serial_number": serial, "inventory": inventory, "fields": {}, "events": [],
               "exchanges": []}
        if row is None:
            out["summary"] = _planned_summary(item)
        else:
            out["fields"] = _row_fields(row)
            out["summary"] = device_summary(row, item is not None, config, now)
            evs = session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)
                                  .order_by(DeviceEvent.id.desc()).limit(events)).all()
            out["events"] = [_event_dict(e, with_xml=False) for e in evs]
            xml = session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id,
                                                            DeviceEvent.raw_xml.is_not(None))
                                  .order_by(DeviceEvent.id.desc()).limit(exchanges)).all()
            out["exchanges"] = [_event_dict(e) for e in xml]
        out["day0"] = preview_day0(config, serial, day0.InventoryView.from_row(item))
    return out


def preview_day0(config: Config, serial: str, item: day0.InventoryView | None) -> dict:
    """``{"name", "source", "text", "md5", "error"}`` of the day-0 config for ``serial``."""
    try:
        d = day0.resolve(config, serial, item)
    except day0.Day0Error as exc:
        return {"name": None, "source": None, "text": None, "md5": None, "error": str(exc)}
    return {"name": d.name, "source": d.source, "text": d.text, "md5": d.md5, "error": None}


def render_day0(sessions: sessionmaker[Session], config: Config, serial: str) -> day0.Day0:
    """The day-0 config of ``serial`` as a device would get it. Raises Day0Error."""
    with sessions() as session:
        item = session.scalars(select(InventoryItem).where(InventoryItem.serial_number == serial)).one_or_none()
        view = day0.InventoryView.from_row(item)
    return day0.resolve(config, serial, view)


# --- actions -----------------------------------------------------------------------------------

_CLEAR_ERROR = {"last_error_code": None, "last_error_message": None}
_FRESH = {**_CLEAR_ERROR, "image_installs": 0, "reload_requested_at": None,
          "tarball_transferred": False, "script_transferred": False, "configured": False,
          "guestshell_state": None, "script_output": None, "target_image": None,
          "target_version": None}


def _current(sessions: sessionmaker[Session], serial: str) -> DeviceState:
    with sessions() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one_or_none()
    if row is None:
        raise NotFound(f"no device {serial}")
    return row


def resume(sessions: sessionmaker[Session], serial: str, state: str, actor: str = "operator") -> str:
    """Resume a device at workflow ``state``: that step starts afresh at the next work-request.

    Clears the pending job, attempts, retry timer and the last error. Returns
    the new state. Raises NotFound, ActionError (unknown state).
    """
    if state not in wf.State.__members__:
        raise ActionError(f"unknown state {state!r} (one of {', '.join(wf.State)})")
    if not service.set_state(sessions, serial, state, reason=f"resumed by {actor}",
                             changes=dict(_CLEAR_ERROR)):
        raise NotFound(f"no device {serial}")
    log.info("%s resumed at %s by %s", serial, state, actor)
    return state


def failed_step(sessions: sessionmaker[Session], serial: str) -> str:
    """The step to retry: for ERROR the state it failed in, for BOOTFLASH_NO_SPACE
    CHECK_BOOTFLASH, otherwise the current state. Raises NotFound."""
    row = _current(sessions, serial)
    if row.state == wf.State.BOOTFLASH_NO_SPACE:
        return wf.State.CHECK_BOOTFLASH.value
    if row.state != wf.State.ERROR:
        return row.state
    with sessions() as session:
        messages = session.scalars(select(DeviceEvent.message).where(
            DeviceEvent.device_id == row.id, DeviceEvent.kind == "state",
            DeviceEvent.message.like("% → ERROR%")).order_by(DeviceEvent.id.desc()).limit(1)).all()
    candidates = [m.split(" → ", 1)[0].strip() for m in messages]
    if row.last_error_message:
        candidates.append(row.last_error_message.split(":", 1)[0].strip())
    for name in candidates:
        if name in wf.State.__members__ and name not in PARKED:
            return name
    return wf.INITIAL_STATE.value


def retry(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> str:
    """Retry the failed (or current) step now. Returns the state resumed. Raises NotFound."""
    step = failed_step(sessions, serial)
    service.set_state(sessions, serial, step, reason=f"retry by {actor}", changes=dict(_CLEAR_ERROR))
    log.info("%s retries %s (by %s)", serial, step, actor)
    return step


def reset(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> str:
    """Start the device's provisioning over at step 1, forgetting its progress. Raises NotFound."""
    if not service.set_state(sessions, serial, wf.INITIAL_STATE.value, reason=f"reset by {actor}",
                             changes=dict(_FRESH)):
        raise NotFound(f"no device {serial}")
    log.info("%s reset to %s by %s", serial, wf.INITIAL_STATE.value, actor)
    return wf.INITIAL_STATE.value


def delete_device(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> None:
    """Forget a device and its history (its inventory row stays). Raises NotFound.

    If it polls again it starts over as a new device.
    """
    with device_lock(sessions, serial) as (session, row):
        if row is None:
            raise NotFound(f"no device {serial}")
        session.execute(delete(DeviceEvent).where(DeviceEvent.device_id == row.id))
        session.delete(row)
    log.info("%s deleted by %s", serial, actor)


def claim(sessions: sessionmaker[Session], serial: str, actor: str = "operator") -> bool:
    """Claim a seen device: add its serial (with PID and hostname) to the inventory.

    Returns False when it was already claimed. Raises NotFound.
    """
    now = utcnow()
    with device_lock(sessions, serial) as (session, row):
        if row is None:
            raise NotFound(f"no device {serial}")
        if session.scalars(select(InventoryItem.id).where(InventoryItem.serial_number == serial)).first():
            return False
        session.add(InventoryItem(serial_number=serial, hostname=row.hostname, pid=row.pid or "",
                                  template=None, variables={}, created_at=now, updated_at=now))
        session.add(DeviceEvent(device_id=row.id, at=now, kind="info", message=f"claimed by {actor}"))
    log.info("%s claimed by %s", serial, actor)
    return True


# --- inventory -------------------------------------------------------------------------------------

KNOWN_COLUMNS = ("serial", "hostname", "pid", "template")
_ALIASES = {"serial_number": "serial", "sn": "serial", "serialnumber": "serial"}


@dataclass
class ImportResult:
    """Outcome of a CSV import: rows ``created``/``updated`` or per-line ``errors``.

    Nothing is written when there is any error.
    """

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_inventory_csv(text: str) -> tuple[list[dict], list[str]]:
    """Parse and validate inventory CSV text.

    The header names the columns: ``serial`` (required), ``hostname``, ``pid``,
    ``template``; every other column becomes a template variable. Returns
    ``(rows, errors)``; errors are "line N: reason" strings.
    """
    errors: list[str] = []
    text = text.lstrip("\ufeff")
    if not text.strip():
        return [], ["the CSV is empty"]
    reader = csv.DictReader(io.StringIO(text))
    header = [(h or "").strip() for h in (reader.fieldnames or [])]
    normal = [_ALIASES.get(h.lower(), h.lower() if h.lower() in KNOWN_COLUMNS else h) for h in header]
    if "serial" not in normal:
        return [], [f"line 1: no 'serial' column in the header ({', '.join(header)})"]
    if len(set(normal)) != len(normal):
        return [], ["line 1: a column name appears twice"]
    for name in normal:
        if name not in KNOWN_COLUMNS and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            errors.append(f"line 1: column {name!r} is not a usable template variable name "
                          "(letters, digits, underscore)")
    rows, seen = [], {}
    for lineno, raw in enumerate(reader, start=2):
        if None in raw:
            errors.append(f"line {lineno}: more fields than columns in the header")
            continue
        values = {n: (raw.get(h) or "").strip() for h, n in zip(reader.fieldnames, normal, strict=True)}
        if not any(values.values()):
            continue
        serial = values.pop("serial")
        if not _SERIAL.match(serial):
            errors.append(f"line {lineno}: serial {serial!r} is not a serial number "
                          "(letters, digits, . _ -; up to 64)")
            continue
        if serial in seen:
            errors.append(f"line {lineno}: serial {serial} repeats line {seen[serial]}")
            continue
        seen[serial] = lineno
        template = values.pop("template", "") or None
        if template and (template.startswith(("/", ".")) or ".." in template):
            errors.append(f"line {lineno}: template {template!r} must be a file name under configs/")
            continue
        hostname = values.pop("hostname", "") or None
        if hostname and len(hostname) > 255:
            errors.append(f"line {lineno}: hostname longer than 255 characters")
            continue
        pid = values.pop("pid", "")
        rows.append({"line": lineno, "serial_number": serial, "hostname": hostname, "pid": pid[:64],
                     "template": template, "variables": values})
    return rows, errors


def import_inventory(sessions: sessionmaker[Session], config: Config, text: str,
                     dry_run: bool = False) -> ImportResult:
    """Validate inventory CSV text and upsert it in one transaction.

    Each row with a template is test-rendered (StrictUndefined): a missing
    template or variable is an error of that line. Any error: nothing is
    written. ``dry_run`` validates only.
    """
    rows, errors = parse_inventory_csv(text)
    for row in rows:
        if row["template"]:
            item = day0.InventoryView(row["serial_number"], row["hostname"], row["pid"],
                                      row["template"], row["variables"])
            try:
                day0.render_template(config, item)
            except day0.Day0Error as exc:
                errors.append(f"line {row['line']}: {row['serial_number']}: {exc}")
    result = ImportResult(errors=errors)
    if errors or dry_run:
        return result
    now = utcnow()
    try:
        _upsert(sessions, rows, result, now)
    except IntegrityError:
        result.created = result.updated = 0
        result.errors.append("another import added some of these serials at the same time: "
                             "nothing imported, try again")
    return result


def _upsert(sessions: sessionmaker[Session], rows: list[dict], result: ImportResult, now: datetime) -> None:
    with sessions() as session, session.begin():
        existing = {i.serial_number: i for i in session.scalars(select(InventoryItem).where(
            InventoryItem.serial_number.in_([r["serial_number"] for r in rows])))}
        for row in rows:
            item = existing.get(row["serial_number"])
            if item is None:
                session.add(InventoryItem(serial_number=row["serial_number"], hostname=row["hostname"],
                                          pid=row["pid"], template=row["template"],
                                          variables=row["variables"], created_at=now, updated_at=now))
                result.created += 1
            else:
                item.hostname, item.pid, item.template = row["hostname"], row["pid"], row["template"]
                item.variables, item.updated_at = row["variables"], now
                result.updated += 1


def _inventory_dict(item: InventoryItem) -> dict:
    return {"serial_number": item.serial_number, "hostname": item.hostname, "pid": item.pid,
            "template": item.template, "variables": dict(item.variables or {}),
            "created_at": item.created_at, "updated_at": item.updated_at}


def list_inventory(sessions: sessionmaker[Session], page: int = 1, per_page: int = 100) -> tuple[list[dict], int]:
    """One page of inventory rows (by serial) and the total count."""
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    with sessions() as session:
        total = session.scalar(select(func.count(InventoryItem.id)))
        items = session.scalars(select(InventoryItem).order_by(InventoryItem.serial_number)
                                .offset((max(1, page) - 1) * per_page).limit(per_page)).all()
        return [_inventory_dict(i) for i in items], total or 0
