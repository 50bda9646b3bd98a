"""Reading for operators: device lists with filters and counts, one device's story, day-0 previews.

Plain queries (no row lock). Filter, ORDER BY and LIMIT/OFFSET run in the
database, so a page costs about the same with 10,000 devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import DateTime, String, cast, exists, func, literal, not_, null, or_, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.files import day0
from app.ops.errors import ActionError, NotFound
from app.ops.inventory import inventory_dict
from app.ops.lifecycle import (
    DONE,
    PARKED,
    Lifecycle,
    is_stalled,
    lifecycle_of,
    lifecycle_sql,
    progress_of,
    stalled_sql,
)
from app.pnp import workflow as wf
from app.storage.db import utcnow
from app.storage.models import DeviceEvent, DeviceState, InventoryItem, SotChange

#: sort key → column of the listing (see ``_listing``)
SORT_KEYS = {"serial": "serial", "pid": "pid", "ip": "ip", "state": "state",
             "lifecycle": "lifecycle", "last_contact": "last_contact", "first_seen": "first_seen",
             "version": "version"}
SORT_COLUMNS = SORT_KEYS  # the names the API and CLI accept
MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000  # far beyond any fleet; a larger page number would overflow the SQL OFFSET


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
        self.page = int(self.page)
        if not 1 <= self.page <= MAX_PAGE:
            raise ActionError(f"page must be between 1 and {MAX_PAGE}")
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
    step, total = progress_of(row.state, row.failed_state)
    return {
        "serial_number": row.serial_number, "pid": row.pid, "hostname": row.hostname,
        "ip_address": row.ip_address, "running_version": row.running_version,
        "target_version": row.target_version, "state": row.state,
        "lifecycle": lifecycle_of(row.state, in_inventory).value,
        "step": step, "total_steps": total, "failed_state": row.failed_state,
        "last_contact": row.last_contact, "first_seen": row.first_seen,
        "last_error_code": row.last_error_code, "last_error_message": row.last_error_message,
        "error_kind": row.error_kind if row.state == wf.State.ERROR else None,
        "auto_retry_at": row.auto_retry_at if row.state == wf.State.ERROR else None,
        "unknown_outcomes": row.unknown_outcomes or 0,
        "stalled": is_stalled(row.state, row.last_contact, config, now),
        "claimed": in_inventory, "source_hold": row.source_hold,
    }


def _planned_summary(item: InventoryItem) -> dict:
    return {
        "serial_number": item.serial_number, "pid": item.pid, "hostname": item.hostname,
        "ip_address": None, "running_version": None, "target_version": None, "state": None,
        "lifecycle": Lifecycle.PLANNED.value, "step": 0, "total_steps": wf.TOTAL_STEPS,
        "failed_state": None, "last_contact": None, "first_seen": None, "last_error_code": None,
        "last_error_message": None, "error_kind": None, "auto_retry_at": None,
        "unknown_outcomes": 0, "stalled": False, "claimed": True, "source_hold": None,
    }


def _in_inventory():
    return exists().where(InventoryItem.serial_number == DeviceState.serial_number)


def _listing():
    """One UNION ALL of seen devices and planned (inventory-only) rows, with the
    columns the dashboard filters and sorts on; ``kind`` 0 = device, 1 = planned."""
    in_inv = _in_inventory()
    lifecycle = lifecycle_sql(DeviceState.state, in_inv)
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
        where.append(stalled_sql(u.c.state, u.c.last_contact, config, now))
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
    stalled = session.scalar(select(func.count(DeviceState.id)).where(
        stalled_sql(DeviceState.state, DeviceState.last_contact, config, now)))
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
    with raw XML), ``source_history`` (source-of-truth sync changes, newest first) and
    ``day0`` (the config it was or will be given, or its error).

    Raises NotFound for an unknown serial (a Planned inventory row is returned
    with empty fields).
    """
    now = utcnow()
    with sessions() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one_or_none()
        item = session.scalars(select(InventoryItem).where(InventoryItem.serial_number == serial)).one_or_none()
        if row is None and item is None:
            raise NotFound(f"no device {serial}")
        inventory = inventory_dict(item) if item is not None else None
        out = {"serial_number": serial, "inventory": inventory, "fields": {}, "events": [],
               "exchanges": [], "source_history": _source_history(session, serial)}
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


def _source_history(session: Session, serial: str, limit: int = 50) -> list[dict]:
    """What source-of-truth syncs changed for ``serial`` (app/sot/sync.py), newest first."""
    changes = session.scalars(select(SotChange).where(SotChange.serial_number == serial)
                              .order_by(SotChange.id.desc()).limit(limit)).all()
    return [{"at": c.at, "source": c.source, "message": c.message} for c in changes]


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
