"""Reading for operators: device lists with filters and counts, one device's story, day-0 previews.

Plain queries (no row lock). Filter, ORDER BY and LIMIT run in the database.
Device lists page by keyset (seek): a ``cursor`` names the sort key of the
last (or first) row shown, and the next page is "the rows after it" — no
OFFSET, so page 150 costs what page 1 costs. A page number (``page``) is still
accepted for the operator's page jump (OFFSET). The listing selects only the
columns the filters and the sort need, and the total of an unfiltered list
comes from the per-state counts instead of a second scan.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    DateTime,
    String,
    and_,
    case,
    cast,
    event,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    union_all,
)
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

#: sort key → column of the listing (see ``_listing``); "attention" puts errors, then
#: stalled devices, first (the dashboard's default)
SORT_KEYS = {"attention": "attention", "serial": "serial", "pid": "pid", "ip": "ip", "state": "state",
             "lifecycle": "lifecycle", "last_contact": "last_contact", "first_seen": "first_seen",
             "version": "version", "hostname": "hostname", "vendor": "vendor", "site": "site"}
SORT_COLUMNS = SORT_KEYS  # the names the API and CLI accept
#: sorted by natural order (digit runs as numbers): 10.0.0.9 < 10.0.0.10, 17.9.1 < 17.12.3a
NATURAL_SORTS = ("ip", "version", "serial", "hostname")
MAX_PER_PAGE = 500
#: the inventory variable that names a device's site
SITE_VARIABLE = "site"
#: the filters a device list takes (each an exact match; pid and version: a prefix)
FILTERS = ("pid", "site", "version", "error_kind", "template", "vendor")
MAX_PAGE = 1_000_000  # far beyond any fleet; a larger page number would overflow the SQL OFFSET


@dataclass
class DeviceQuery:
    """Filter, sort and page of a device list.

    ``state``: a workflow state name; ``lifecycle``: a Lifecycle value;
    ``stalled``: only stalled devices; ``q``: serial, hostname (device or
    inventory) or IP substring; ``pid``/``version``: prefix; ``site``,
    ``template``, ``vendor``, ``error_kind``: exact; ``sort``: a key of
    SORT_COLUMNS; ``order``: asc or desc; ``page`` 1-based; ``per_page`` 1-500;
    ``cursor``: an opaque keyset position from a previous page's ``next_cursor`` or
    ``prev_cursor`` (it wins over ``page``; it must come from the same sort and order).
    """

    state: str = ""
    lifecycle: str = ""
    stalled: bool = False
    q: str = ""
    sort: str = "attention"
    order: str = "asc"
    page: int = 1
    per_page: int = 50
    pid: str = ""
    site: str = ""
    version: str = ""
    error_kind: str = ""
    template: str = ""
    vendor: str = ""
    cursor: str = ""

    @classmethod
    def from_args(cls, args, per_page: int = 50) -> DeviceQuery:
        """A validated query from URL arguments (a mapping of strings): the same names as
        the fields, ``stalled`` as 1/true/on. Raises ActionError for a bad value."""
        def number(name: str, default: int) -> int:
            raw = args.get(name, "")
            if raw in ("", None):
                return default
            try:
                return int(raw)
            except ValueError:
                raise ActionError(f"{name} must be an integer") from None

        text = {f: str(args.get(f, "") or "").strip()[:64]
                for f in ("state", "lifecycle", "q", *FILTERS)}
        return cls(**text, stalled=str(args.get("stalled", "")).lower() in ("1", "true", "on"),
                   sort=args.get("sort", "") or "attention", order=args.get("order", "") or "asc",
                   page=number("page", 1), per_page=number("per_page", per_page),
                   cursor=str(args.get("cursor", "") or "").strip()[:1024]).validate()

    def args(self, per_page: int = 50) -> dict:
        """The values that differ from the defaults, as URL arguments (links, refresh URL)."""
        out = {f: getattr(self, f) for f in ("state", "lifecycle", "q", *FILTERS)}
        out.update(stalled="1" if self.stalled else "", sort="" if self.sort == "attention" else self.sort,
                   order="" if self.order == "asc" else self.order,
                   page="" if self.page == 1 or self.cursor else self.page,
                   per_page="" if self.per_page == per_page else self.per_page, cursor=self.cursor)
        return {k: v for k, v in out.items() if v not in ("", None)}

    def validate(self) -> DeviceQuery:
        """Raise ActionError for values that cannot be used (nothing is clamped)."""
        from app.ops.lifecycle import ZTP_PROGRESS

        if self.state and self.state not in wf.State.__members__ and self.state not in ZTP_PROGRESS:
            raise ActionError(f"unknown state {self.state!r}")
        if self.lifecycle and self.lifecycle not in {lc.value for lc in Lifecycle}:
            raise ActionError(f"unknown lifecycle {self.lifecycle!r} "
                              f"(one of {', '.join(lc.value for lc in Lifecycle)})")
        if self.sort not in SORT_COLUMNS:
            raise ActionError(f"cannot sort by {self.sort!r} (one of {', '.join(SORT_COLUMNS)})")
        if self.order not in ("asc", "desc"):
            raise ActionError("order must be asc or desc")
        if not 1 <= int(self.page) <= MAX_PAGE:
            raise ActionError(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= int(self.per_page) <= MAX_PER_PAGE:
            raise ActionError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        self.page, self.per_page = int(self.page), int(self.per_page)
        if self.cursor:
            self.page = decode_cursor(self.cursor, self)["p"]
        return self

    @property
    def filtered(self) -> bool:
        """Whether any filter narrows the list (else its total is the counts' total)."""
        return bool(self.state or self.lifecycle or self.stalled or self.q
                    or any(getattr(self, f) for f in FILTERS))


@dataclass
class DevicePage:
    """One page of devices (dicts, see ``device_summary``) and the totals."""

    items: list[dict]
    total: int
    page: int
    per_page: int
    counts: dict = field(default_factory=dict)
    #: keyset positions of the next and previous pages (None at either end)
    next_cursor: str | None = None
    prev_cursor: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def device_summary(row: DeviceState, in_inventory: bool, config: Config, now: datetime,
                   item: InventoryItem | None = None) -> dict:
    """The dashboard/API view of a device row: identity, versions, lifecycle, progress.

    An ERROR row counts the step it failed in (``failed_state``); a Provisioned row
    shows no last error (an old error is history once the device succeeded).
    """
    lifecycle = lifecycle_of(row.state, in_inventory)
    step, total = progress_of(row.state, row.failed_state)
    done = lifecycle == Lifecycle.PROVISIONED
    in_error = row.state == wf.State.ERROR
    return {
        "serial_number": row.serial_number, "pid": row.pid, "hostname": row.hostname,
        "ip_address": row.ip_address, "running_version": row.running_version,
        "target_version": row.target_version, "state": row.state, "vendor": row.vendor,
        "lifecycle": lifecycle.value,
        "step": step, "total_steps": total, "failed_state": row.failed_state,
        "last_contact": row.last_contact, "first_seen": row.first_seen,
        "last_error_code": None if done else row.last_error_code,
        "last_error_message": None if done else row.last_error_message,
        "error_kind": row.error_kind if in_error else None,
        "auto_retry_at": row.auto_retry_at if in_error else None,
        "unknown_outcomes": row.unknown_outcomes or 0,
        "stalled": is_stalled(row.state, row.last_contact, config, now),
        "claimed": in_inventory, "source_hold": row.source_hold,
        "inventory_hostname": item.hostname if item is not None else None,
        "template": item.template if item is not None else None,
        "site": _site_of(item),
    }


def _site_of(item: InventoryItem | None) -> str | None:
    value = (item.variables or {}).get(SITE_VARIABLE) if item is not None else None
    return None if value is None else str(value)


def _error_kind_column():
    """The column naming the kind of an ERROR (permanent, transient, unknown: the workflow's)."""
    return DeviceState.error_kind


def _planned_summary(item: InventoryItem) -> dict:
    return {
        "serial_number": item.serial_number, "pid": item.pid, "hostname": item.hostname,
        "ip_address": None, "running_version": None, "target_version": None, "state": None,
        "vendor": None, "lifecycle": Lifecycle.PLANNED.value, "step": 0, "total_steps": wf.TOTAL_STEPS,
        "failed_state": None, "last_contact": None, "first_seen": None, "last_error_code": None,
        "last_error_message": None, "error_kind": None, "auto_retry_at": None,
        "unknown_outcomes": 0, "stalled": False, "claimed": True, "source_hold": None,
        "inventory_hostname": item.hostname, "template": item.template, "site": _site_of(item),
    }


def _in_inventory():
    return exists().where(InventoryItem.serial_number == DeviceState.serial_number)


#: the listing's columns that come from the inventory row (need the outer join)
_INVENTORY_COLUMNS = {"hostname", "inv_hostname", "template", "site", "lifecycle"}
#: the columns each sort key reads; the filters' columns: see ``_needed``
_SORT_NEEDS = {"attention": {"attention", "last_contact"}}


def _needed(query: DeviceQuery) -> set[str]:
    """The listing columns a query's filters and sort read (the rest are not selected)."""
    needed = {"kind", "row_id", "serial", SORT_KEYS[query.sort], *_SORT_NEEDS.get(query.sort, ())}
    if query.state:
        needed.add("state")
    if query.lifecycle:
        needed.add("lifecycle")
    if query.stalled:
        needed |= {"state", "last_contact"}
    if query.q:
        needed |= {"serial", "hostname", "inv_hostname", "ip"}
    needed |= {name for name in FILTERS if getattr(query, name)}
    return needed


def _listing_parts(config: Config, now: datetime, needed: set[str] | None = None):
    """The two halves of the listing: seen devices (with their inventory row, if any) and planned
    (inventory-only) rows, with the columns the dashboard filters and sorts on;
    ``kind`` 0 = device, 1 = planned; ``attention`` 0 = parked, 1 = stalled, 2 = other,
    3 = planned. ``needed``: only these columns (None = all); the inventory join is
    left out of the devices' half when no needed column comes from it."""
    in_inv = InventoryItem.id.is_not(None)
    site = InventoryItem.variables[SITE_VARIABLE].as_string()
    seen_columns = {
        "kind": lambda: literal(0), "row_id": lambda: DeviceState.id,
        "serial": lambda: DeviceState.serial_number, "pid": lambda: DeviceState.pid,
        "hostname": lambda: func.coalesce(DeviceState.hostname, InventoryItem.hostname),
        "inv_hostname": lambda: InventoryItem.hostname, "ip": lambda: DeviceState.ip_address,
        "state": lambda: DeviceState.state, "last_contact": lambda: DeviceState.last_contact,
        "first_seen": lambda: DeviceState.first_seen, "version": lambda: DeviceState.running_version,
        "lifecycle": lambda: lifecycle_sql(DeviceState.state, in_inv), "vendor": lambda: DeviceState.vendor,
        "template": lambda: InventoryItem.template, "site": lambda: site,
        "error_kind": _error_kind_column,
        "attention": lambda: case(
            (DeviceState.state.in_(PARKED), literal(0)),
            (stalled_sql(DeviceState.state, DeviceState.last_contact, config, now), literal(1)),
            else_=literal(2)),
    }
    planned_columns = {
        "kind": lambda: literal(1), "row_id": lambda: InventoryItem.id,
        "serial": lambda: InventoryItem.serial_number, "pid": lambda: InventoryItem.pid,
        "hostname": lambda: InventoryItem.hostname, "inv_hostname": lambda: InventoryItem.hostname,
        "ip": lambda: cast(null(), String), "state": lambda: cast(null(), String),
        "last_contact": lambda: cast(null(), DateTime), "first_seen": lambda: cast(null(), DateTime),
        "version": lambda: cast(null(), String), "lifecycle": lambda: literal(Lifecycle.PLANNED.value),
        "vendor": lambda: cast(null(), String), "template": lambda: InventoryItem.template,
        "site": lambda: site, "error_kind": lambda: cast(null(), String), "attention": lambda: literal(3),
    }
    names = [n for n in seen_columns if needed is None or n in needed]
    seen = select(*(seen_columns[n]().label(n) for n in names)).select_from(DeviceState)
    if needed is None or needed & _INVENTORY_COLUMNS:
        seen = seen.outerjoin(InventoryItem, InventoryItem.serial_number == DeviceState.serial_number)
    planned = select(*(planned_columns[n]().label(n) for n in names)).where(
        ~exists().where(DeviceState.serial_number == InventoryItem.serial_number))
    return seen, planned


def _listing(config: Config, now: datetime, needed: set[str] | None = None):
    """The listing (see ``_listing_parts``) as one UNION ALL subquery."""
    return union_all(*_listing_parts(config, now, needed)).subquery("listing")


_DIGITS = re.compile(r"\d+")


def natural_sort_key(text: str | None) -> str | None:
    """MariaDB's NATURAL_SORT_KEY in Python: every run of digits left-padded to 20 digits,
    so that text order is natural order (``10.0.0.9`` < ``10.0.0.10``)."""
    if text is None:
        return None
    return _DIGITS.sub(lambda m: m.group().lstrip("0").zfill(20), str(text))


def install_sql_functions(engine) -> None:
    """Give SQLite connections of ``engine`` the ``natural_sort_key`` function MariaDB
    (10.7+) has built in; other databases are left alone."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _register(dbapi_conn, _record):
        dbapi_conn.create_function("natural_sort_key", 1, natural_sort_key, deterministic=True)


def _where(u, query: DeviceQuery, config: Config, now: datetime) -> list:
    where = []
    if query.state:
        where.append(u.c.state == query.state)
    if query.lifecycle:
        where.append(u.c.lifecycle == query.lifecycle)
    if query.stalled:
        where.append(stalled_sql(u.c.state, u.c.last_contact, config, now))
    if query.q:
        like = f"%{query.q}%"
        where.append(or_(u.c.serial.like(like), u.c.hostname.like(like), u.c.inv_hostname.like(like),
                         u.c.ip.like(like)))
    for name in ("pid", "version"):
        value = getattr(query, name)
        if value:
            where.append(u.c[name].like(value.replace("%", "").replace("_", "\\_") + "%", escape="\\"))
    for name in ("site", "template", "vendor", "error_kind"):
        value = getattr(query, name)
        if value:
            where.append(u.c[name] == value)
    return where


#: what NULL sorts as in a sort key (NULLs first, as MariaDB and SQLite order them), so that
#: every key has a value a cursor can name
_EPOCH = datetime(1970, 1, 1)


def _sort_keys(u, query: DeviceQuery) -> list[tuple]:
    """``[(expression, descending)]``: the sort column (natural order for NATURAL_SORTS), the
    tie-breakers (attention: last contact), then natural serial and serial, which is unique
    in the listing, so the order is total and a keyset cursor names one position."""
    def key(name: str):
        column = u.c[name]
        if name in ("last_contact", "first_seen"):
            return func.coalesce(column, literal(_EPOCH, DateTime))
        if name in NATURAL_SORTS:
            return func.coalesce(func.natural_sort_key(column), "")
        if name == "attention":
            return column
        return func.coalesce(column, "")

    desc = query.order == "desc"
    keys = [(key(SORT_KEYS[query.sort]), desc)]
    if query.sort == "attention":
        keys.append((key("last_contact"), False))
    return keys + [(key("serial"), False), (u.c.serial, False)]


def _ordering(u, query: DeviceQuery, reverse: bool = False) -> list:
    return [expr.desc() if desc != reverse else expr.asc() for expr, desc in _sort_keys(u, query)]


def _after(keys: list[tuple], values: list, reverse: bool = False):
    """The seek condition "after the row whose sort key is ``values``" (before it: reverse)."""
    alternatives = []
    for i, (expr, desc) in enumerate(keys):
        later = expr < values[i] if desc != reverse else expr > values[i]
        alternatives.append(and_(*(keys[j][0] == values[j] for j in range(i)), later))
    return or_(*alternatives)


def encode_cursor(query: DeviceQuery, values, direction: str, page: int) -> str:
    """An opaque cursor (base64url of JSON): sort, order, direction (next/prev), the page
    number it leads to (for display) and the sort key of the row it starts after."""
    def plain(v):
        return {"dt": v.isoformat()} if isinstance(v, datetime) else v

    data = {"s": query.sort, "o": query.order, "d": direction, "p": page, "k": [plain(v) for v in values]}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: DeviceQuery) -> dict:
    """The fields of a cursor made by ``encode_cursor``, its datetimes parsed. Raises
    ActionError for a cursor that is not one, or one of another sort or order."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        keys = [datetime.fromisoformat(v["dt"]) if isinstance(v, dict) else v for v in data["k"]]
        ok = (data["d"] in ("next", "prev") and isinstance(data["p"], int) and 1 <= data["p"] <= MAX_PAGE
              and all(v is None or isinstance(v, str | int) and not isinstance(v, bool) or isinstance(v, datetime)
                      for v in keys))
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ActionError("invalid cursor (use next_cursor or prev_cursor of a page as given)")
    if data["s"] != query.sort or data["o"] != query.order:
        raise ActionError("the cursor belongs to another sort or order: start again from page 1")
    expected = 3 + (query.sort == "attention")
    if len(keys) != expected:
        raise ActionError("invalid cursor (use next_cursor or prev_cursor of a page as given)")
    return {**data, "k": keys}


def list_devices(sessions: sessionmaker[Session], config: Config, query: DeviceQuery,
                 now: datetime | None = None, counts: bool = True) -> DevicePage:
    """One page of devices matching ``query``, with per-state and per-lifecycle counts.

    The list holds every seen device and every Planned inventory row. With a
    ``cursor`` the page is the rows after (next) or before (prev) the cursor's
    position (keyset: no OFFSET); without one, ``page`` is an OFFSET (the page
    jump). ``next_cursor``/``prev_cursor`` of the result name the neighbours.
    Raises ActionError for invalid query values or an invalid cursor.
    """
    query.validate()
    now = now or utcnow()
    parts = _listing_parts(config, now, _needed(query))
    cursor = decode_cursor(query.cursor, query) if query.cursor else None
    reverse = bool(cursor and cursor["d"] == "prev")
    with sessions() as session:
        totals = counts_by_state(session, config, now) if counts or not query.filtered else {}
        if query.filtered:  # each half counted on its own: no temporary table of the union
            total = 0
            for part in parts:
                h = part.subquery()
                total += session.scalar(select(func.count()).select_from(h).where(*_where(h, query, config, now))) or 0
        else:  # every row: seen devices + planned, the counts already have both
            total = totals["total"] + totals["lifecycle"][Lifecycle.PLANNED.value]
            if not counts:
                totals = {}
        page = session.execute(_page_select(parts, query, config, now, cursor, reverse)).all()
        more = len(page) > query.per_page
        page = page[:query.per_page]
        if reverse:
            page.reverse()
        items = _summaries(session, config, now, page)
    number = query.page
    first, last = (page[0], page[-1]) if page else (None, None)
    has_next = more if not reverse else bool(page)
    has_prev = (more if reverse else number > 1) and bool(page)

    def position(r) -> list:
        return [getattr(r, f"k{i}") for i in range(len(r) - 2)]

    return DevicePage(items, total, number, query.per_page, totals,
                      next_cursor=encode_cursor(query, position(last), "next", number + 1) if has_next else None,
                      prev_cursor=(encode_cursor(query, position(first), "prev", number - 1)
                                   if has_prev and number > 1 else None))


def _page_select(parts, query: DeviceQuery, config: Config, now: datetime, cursor: dict | None,
                 reverse: bool):
    """``kind, row_id, k0…kn`` (the sort key) of one page plus one row (to tell whether there
    is a next one). Each half of the listing is filtered, sorted and cut on its own (MariaDB
    merges the half into a query on its base table: a sort with a LIMIT, no temporary table of
    10,000 rows), then the two short lists are merged in the database by the same key."""
    offset = 0 if cursor else (query.page - 1) * query.per_page
    limit = query.per_page + 1
    halves = []
    for part in parts:
        h = part.subquery()
        keys = _sort_keys(h, query)
        half = (select(h.c.kind, h.c.row_id, *(k.label(f"k{i}") for i, (k, _) in enumerate(keys)))
                .where(*_where(h, query, config, now)).order_by(*_ordering(h, query, reverse))
                .limit(offset + limit))
        if cursor:
            half = half.where(_after(keys, cursor["k"], reverse))
        halves.append(select(half.subquery()))
    merged = union_all(*halves).subquery("page")
    order = [(merged.c[f"k{i}"], desc) for i, (_, desc) in enumerate(_sort_keys(parts[0].subquery(), query))]
    return (select(merged).order_by(*(c.desc() if d != reverse else c.asc() for c, d in order))
            .offset(offset).limit(limit))


def _summaries(session: Session, config: Config, now: datetime, page) -> list[dict]:
    """The summaries of the rows of one page (``kind``, ``row_id``), in the page's order."""
    device_ids = [r.row_id for r in page if r.kind == 0]
    planned_ids = [r.row_id for r in page if r.kind == 1]
    devices = {}
    if device_ids:
        for row, item in session.execute(
                select(DeviceState, InventoryItem).outerjoin(
                    InventoryItem, InventoryItem.serial_number == DeviceState.serial_number)
                .where(DeviceState.id.in_(device_ids))):
            devices[(0, row.id)] = device_summary(row, item is not None, config, now, item)
    if planned_ids:
        for item in session.scalars(select(InventoryItem).where(InventoryItem.id.in_(planned_ids))):
            devices[(1, item.id)] = _planned_summary(item)
    return [devices[(r.kind, r.row_id)] for r in page if (r.kind, r.row_id) in devices]


def iter_devices(sessions: sessionmaker[Session], config: Config, query: DeviceQuery, limit: int = 100_000):
    """Every device matching ``query`` (its filters and sort; page ignored), in pages of
    MAX_PER_PAGE following the keyset cursors, at most ``limit`` rows: for the CSV export
    of the current view."""
    now = utcnow()
    batch = dataclasses.replace(query, page=1, per_page=MAX_PER_PAGE, cursor="")
    seen = 0
    while seen < limit:
        result = list_devices(sessions, config, batch, now=now, counts=False)
        yield from result.items[: limit - seen]
        seen += len(result.items)
        if not result.next_cursor:
            return
        batch = dataclasses.replace(batch, cursor=result.next_cursor)


EXPORT_COLUMNS = ["serial_number", "hostname", "inventory_hostname", "pid", "vendor", "ip_address",
                  "running_version", "target_version", "lifecycle", "state", "failed_state", "step",
                  "total_steps", "stalled", "site", "template", "error_kind", "last_error_code",
                  "last_error_message", "last_contact", "first_seen"]


def filter_choices(sessions: sessionmaker[Session]) -> dict:
    """The values each filter can take, for the dashboard's select boxes (at most 200 each)."""
    site = InventoryItem.variables[SITE_VARIABLE].as_string()
    columns = {"pid": DeviceState.pid, "version": DeviceState.running_version, "vendor": DeviceState.vendor,
               "error_kind": _error_kind_column(), "template": InventoryItem.template, "site": site}
    out = {}
    with sessions() as session:
        for name, column in columns.items():
            values = session.scalars(select(column).where(column.is_not(None), column != "")
                                     .distinct().order_by(column).limit(200)).all()
            out[name] = [str(v) for v in values]
    return out


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


HISTORY_COLUMNS = ["id", "at", "kind", "service", "correlator", "success", "error_code", "message"]


def device_history(sessions: sessionmaker[Session], serial: str) -> list[dict]:
    """Every event of a device, oldest first, without raw XML (for an export). Raises NotFound."""
    with sessions() as session:
        row = session.scalars(select(DeviceState).where(DeviceState.serial_number == serial)).one_or_none()
        if row is None:
            raise NotFound(f"no device {serial}")
        events = session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == row.id)
                                 .order_by(DeviceEvent.id)).all()
    return [_event_dict(e, with_xml=False) for e in events]


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
