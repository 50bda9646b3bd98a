"""Applies workflow decisions to the database: one locked transaction per PnP message.

The HTTP layer parses a message and calls ``work_request()`` or
``work_response()``; these lock the device row, run the pure workflow
function, write the row changes and history events, commit, and return the
XML reply. Operator actions (resume, reset) use the same lock.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from app.config import Config
from app.files import day0
from app.files.signing import config_url_builder, redact_token
from app.pnp import protocol as p
from app.pnp import source
from app.pnp import workflow as wf
from app.storage import fit, hooks
from app.storage.db import utcnow
from app.storage.lock import LockedRow, device_lock, locked
from app.storage.models import DeviceEvent, DeviceState, InventoryItem

log = logging.getLogger("pnp")

_SECRET_ATTR = re.compile(r'\b(pwd|usr|password|secret)=("[^"]*"|\'[^\']*\')', re.IGNORECASE)
RAW_XML_LIMIT = 64 * 1024
HOLD_BACKOFF = 30  # seconds: a held serial's messages (app/pnp/source.py) are asked to come back


def redact(xml: str | bytes) -> str:
    """Message text with credential attributes (``pwd``, ``usr``…) and signed-URL tokens
    masked, for logs and history."""
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", "replace")
    return redact_token(_SECRET_ATTR.sub(lambda m: f'{m.group(1)}="***"', xml))[:RAW_XML_LIMIT]


def day0_lookup(config: Config, item: day0.InventoryView | None = None) -> callable:
    """``serial → (name under /configs/, md5)``: ``configs/<SN>.cfg``, else the inventory
    template rendered (``rendered/<SN>.cfg``), else ``default.cfg`` (see app.files.day0).

    Raises ValueError (Day0Error) with the reason when none can be produced.
    """
    return day0.day0_lookup(config, item)


def _context(session: Session, config: Config, serial: str, now: datetime) -> wf.Context:
    """The workflow Context for ``serial``: its inventory row decides day-0 and claim.

    The inventory row is read only when needed (REQUIRE_CLAIM, or the day-0 step),
    not on every message.
    """
    def inventory_item() -> day0.InventoryView | None:
        return day0.InventoryView.from_row(session.scalars(
            select(InventoryItem).where(InventoryItem.serial_number == serial)).one_or_none())

    claimed = inventory_item() is not None if config.require_claim else True
    return wf.Context(now=now, config=config,
                      day0=lambda sn: day0_lookup(config, inventory_item())(sn),
                      claimed=claimed, config_url=config_url_builder(config),
                      file_size=lambda name: _file_size(config, name))


def _file_size(config: Config, name: str) -> int | None:
    """Size in bytes of ``files/<name>`` (a transfer's source), None when unreadable."""
    try:
        return (config.files_dir / name).stat().st_size
    except OSError:
        return None


@dataclass
class Reply:
    """The XML to send back and a one-line log summary.

    ``service`` is the job sent (``backoff`` when none) for a work-request and
    the answered service for a work-response; ``finished_seconds`` is set when
    this message moved the device to FINISHED: seconds since its first contact.
    """

    xml: str
    summary: str
    service: str = ""
    finished_seconds: float | None = None
    held: bool = False


def _identity(wr: p.WorkRequest | None, udi: p.Udi, source_ip: str | None, now: datetime) -> dict:
    """The identity columns a message sets, as sent: values longer than their column are cut
    (and recorded) by app/storage/fit.py when the row is flushed."""
    fields = {"udi": udi.raw, "last_contact": now}
    if udi.pid:  # a UDI without PID or VID keeps what the device said before
        fields["pid"] = udi.pid
    if udi.vid:
        fields["vid"] = udi.vid
    if source_ip:
        fields["ip_address"] = source_ip
    if wr is not None and wr.hostname:
        fields["hostname"] = wr.hostname
    return fields


def keeps_raw(config: Config, event: wf.Event, first_device_info: bool) -> bool:
    """Whether ``event``'s message keeps its raw XML in the history (HISTORY_RAW_XML).

    ``all``: every job and response. ``jobs`` (the default): every job sent; a response only
    when it reports a failure or a fault (``success`` not True) or when it is the device's
    first device-info (``first_device_info``: the row had no running version yet). Other
    events carry no XML either way; every message keeps its history line and summary.
    """
    if event.kind == "job" or config.history_raw_xml == "all":
        return True
    return event.success is not True or (first_device_info and event.service == "device-info")


def _write_row(session: Session, row: DeviceState | LockedRow, changes: dict, now: datetime) -> list[dict]:
    """Write ``changes`` (column → value) to the locked ``row``: one Core ``UPDATE … WHERE id``
    of the columns that differ, without the ORM unit of work.

    ``row`` is the :class:`~app.storage.lock.LockedRow` of the Core read (or an ORM row). The
    values are fitted to their columns here (app/storage/fit.py; what was cut gets a
    ``clamped`` history line, as the ORM flush hook does: returned as a device_event row for
    the caller's INSERT), then set on ``row`` (as committed on an ORM row), so the ORM has
    nothing to flush. A state change or a new error then calls the row-change hooks
    (app/storage/hooks.py: the webhook outbox and the failure line of app/ops/notify.py), in
    this transaction, as the ORM flush hook would.
    """
    changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
    if not changes:
        return []
    old_state = row.state
    values, fitted = fit.fit_values(DeviceState.__table__, changes, bool(session.info.get("fit_ascii")))
    session.execute(update(DeviceState.__table__).where(DeviceState.__table__.c.id == row.id).values(**values))
    store = setattr if isinstance(row, LockedRow) else set_committed_value
    for name, value in values.items():
        store(row, name, value)
    if "state" in values or "last_error_message" in values:
        hooks.row_changed(session, row, old_state, "state" in values, "last_error_message" in values)
    if not fitted:
        return []
    log.warning("%s: %s", row.serial_number, fit.clamp_message(fitted))
    return [fit.clamp_event(row.id, now, fitted)]


_VIEW_FIELDS = frozenset(f.name for f in dataclasses.fields(wf.DeviceView))


def _view(row: DeviceState, identity: dict) -> wf.DeviceView:
    """The workflow's view of ``row`` with the message's identity columns (not written yet)."""
    return dataclasses.replace(wf.DeviceView.from_row(row),
                               **{k: v for k, v in identity.items() if k in _VIEW_FIELDS})


def _store(session: Session, row: DeviceState, decision: wf.Decision, now: datetime,
           raw_in, raw_out: str | None, config: Config, first_device_info: bool = False,
           identity: dict | None = None) -> None:
    """Apply the message's identity columns and the decision's column changes to the row
    (:func:`_write_row`) and write its events.

    The events go in as one executemany (one multi-row INSERT on MariaDB), not one
    ORM round trip each. Every value is fitted to its column first (app/storage/fit.py);
    what was cut gets a ``clamped`` history line. ``raw_in`` is the received message (bytes
    or text), redacted only when an event keeps it (:func:`keeps_raw`); ``raw_out`` the XML sent.
    """
    clamped = _write_row(session, row, {**(identity or {}), **decision.changes}, now)
    raw_for = {"job": raw_out}
    for e in decision.events:
        if e.kind == "response" and keeps_raw(config, e, first_device_info):
            raw_for["response"] = redact(raw_in)
            break
    ascii_only = bool(session.info.get("fit_ascii"))
    events, fitted = [], []
    for e in decision.events:
        values, cut = fit.fit_values(DeviceEvent.__table__, {
            "device_id": row.id, "at": now, "kind": e.kind, "service": e.service or None,
            "correlator": e.correlator or None, "success": e.success,
            "error_code": e.error_code or None, "message": e.message,
            "raw_xml": raw_for.get(e.kind) if keeps_raw(config, e, first_device_info) else None},
            ascii_only)
        events.append(values)
        fitted += cut
    if fitted:
        log.warning("%s: %s", row.serial_number, fit.clamp_message(fitted))
        events.append(fit.clamp_event(row.id, now, fitted))
    events += clamped
    if events:
        session.execute(insert(DeviceEvent.__table__), events)  # Core executemany


def _finished_seconds(row: DeviceState, before: str, now: datetime) -> float | None:
    """Seconds from first contact to now when this message moved the row to FINISHED."""
    if row.state == wf.State.FINISHED.value and before != wf.State.FINISHED.value:
        return max(0.0, (now - row.first_seen).total_seconds())
    return None


def render(decision: wf.Decision, udi: str, correlator: str) -> str:
    """The XML for a work-request decision: its job, else its backoff."""
    if decision.job is not None:
        return p.build_request(udi, correlator, decision.job.service, decision.job.body)
    return p.build_backoff(udi, correlator, decision.backoff_seconds or 60,
                           decision.backoff_reason or "nothing to do now")


def _job_landed(correlator: str):
    """``landed`` for app.storage.lock.locked: the re-read row holds the job decided for this
    work-request (its correlator is pending), so the lost COMMIT did happen."""
    return lambda row, previous: (previous[1] is not None and previous[0].job is not None
                                  and row.pending_correlator == correlator)


def _session_info(ascii_only: bool) -> dict:
    return {"fit_ascii": True} if ascii_only else {}


def work_request(sessions: sessionmaker[Session], config: Config, wr: p.WorkRequest,
                 raw: bytes, source_ip: str | None, *, ascii_only: bool = False) -> Reply:
    """Handle a parsed WORK-REQUEST: create/lock the row, decide, store, reply.

    Returns the job or backoff XML. Database errors propagate (the HTTP layer
    turns them into a backoff). ``ascii_only`` stores every text with its non-ASCII
    characters escaped (the HTTP layer's retry after a DataError, app/storage/fit.py).
    """
    now = utcnow()
    defaults = {"first_seen": now, "state": wf.INITIAL_STATE.value, "attempts": 0,
                "image_installs": 0, "guestshell_checks": 0, "unknown_outcomes": 0,
                "verifying": False, "auto_retry_rounds": 0, "tarball_transferred": False,
                "script_transferred": False, "configured": False,
                **_identity(wr, wr.udi, source_ip, now)}
    def unit(session: Session, row: DeviceState):  # run again from a fresh read on a retryable error
        held = source.hold_locked(session, row, config, source_ip, now)
        if held is not None:  # another host drives a serial whose flow started elsewhere
            return held, None, None
        created = row.created if isinstance(row, LockedRow) else row.first_seen == now
        ctx = _context(session, config, wr.udi.sn, now)
        before = row.state
        identity = _identity(wr, wr.udi, source_ip, now)
        decision = wf.on_work_request(_view(row, identity), wr, ctx)
        xml = render(decision, wr.udi.raw, wr.correlator)
        if created:
            decision.events.insert(0, wf.Event("info", f"first contact from {source_ip} "
                                                       f"({wr.udi.raw})"))
        sent = redact(xml) if any(e.kind == "job" for e in decision.events) else None
        _store(session, row, decision, now, raw, sent, config, identity=identity)
        return decision, xml, _finished_seconds(row, before, now)
    decision, xml, finished = locked(sessions, wr.udi.sn, unit, defaults, landed=_job_landed(wr.correlator),
                                     info=_session_info(ascii_only), core=True)
    if xml is None:
        return Reply(p.build_backoff(wr.udi.raw, wr.correlator, HOLD_BACKOFF, decision),
                     f"{wr.udi.sn} {wr.correlator} work-request held: backoff {HOLD_BACKOFF}s",
                     "backoff", held=True)
    what = decision.job.summary if decision.job else f"backoff {decision.backoff_seconds}s"
    return Reply(xml, f"{wr.udi.sn} {wr.correlator} work-request {decision.state.value}: {what}",
                 decision.job.service if decision.job else "backoff", finished)


def work_response(sessions: sessionmaker[Session], config: Config, resp: p.WorkResponse,
                  raw: bytes, source_ip: str | None, *, ascii_only: bool = False) -> Reply:
    """Handle a parsed WORK-RESPONSE: match it to the pending job and apply the result.

    Always returns a bye (echoing the correlator). A response from a device
    with no row is logged and otherwise ignored. ``ascii_only`` as for work_request.
    Database errors propagate (the HTTP layer retries, then calls ``record_unstored``).
    """
    now = utcnow()
    correlator = resp.correlator or ""
    bye = p.build_bye(resp.udi.raw, correlator)
    if wf.acknowledges_backoff(resp):  # one UPDATE, no row lock, no ORM flush
        values, _ = fit.fit_values(DeviceState.__table__, {
            "last_contact": now, **({"ip_address": source_ip} if source_ip else {})})
        where = [DeviceState.serial_number == device_key(resp.udi.sn)]
        if not source.passes(config, "?", source_ip):  # only from the recorded address
            where.append(or_(DeviceState.ip_address.is_(None), DeviceState.ip_address == "",
                             DeviceState.ip_address == source_ip))
        with sessions.begin() as session:
            found = session.execute(update(DeviceState).where(*where).values(**values)
                                    .execution_options(synchronize_session=False)).rowcount
        if not found and source.check(sessions, config, resp.udi.sn, source_ip) is not None:
            return Reply(bye, f"{resp.udi.sn} {correlator} backoff held: not recorded", "backoff",
                         held=True)
        what = "acknowledged" if found else "from an unknown device: ignored"
        return Reply(bye, f"{resp.udi.sn} {correlator} backoff {what}", "backoff")
    def unit(session: Session, row: DeviceState | None):  # run again from a fresh read on a retryable error
        if row is None:
            return None
        if source.hold_locked(session, row, config, source_ip, now) is not None:
            return "held"
        identity = _identity(None, resp.udi, source_ip, now)
        answered = correlator or row.pending_correlator or ""
        ctx = _context(session, config, resp.udi.sn, now)
        before, first_device_info = row.state, not row.running_version
        decision = wf.on_work_response(_view(row, identity), resp, ctx)
        _store(session, row, decision, now, raw, None, config, first_device_info, identity)
        return decision, p.build_bye(resp.udi.raw, answered), answered, _finished_seconds(row, before, now)
    done = locked(sessions, resp.udi.sn, unit, info=_session_info(ascii_only), core=True)
    if done is None:
        return Reply(bye, f"{resp.udi.sn} {correlator} {resp.service} response from an "
                          "unknown device: ignored")
    if done == "held":  # answered bye, not recorded (app/pnp/source.py)
        return Reply(bye, f"{resp.udi.sn} {correlator} {resp.service} response held: not recorded",
                     "backoff", held=True)
    decision, bye, correlator, finished = done
    result = "success" if resp.success else (resp.error.code if resp.error else "failure")
    return Reply(bye, f"{resp.udi.sn} {correlator} {resp.service} {result} → "
                      f"{decision.state.value}", resp.service, finished)


def record_unstored(sessions: sessionmaker[Session], resp: p.WorkResponse, problem: str) -> bool:
    """Record in the device's history that its work-response could not be stored.

    ``problem`` is the database error in one line. Written in its own transaction,
    ASCII only and fitted to the columns, with no row lock and no other change:
    the job stays pending, so its outcome is unknown to the workflow (not a failure
    of the device). Returns False when the device has no row. Raises SQLAlchemy errors.
    """
    now = utcnow()
    result = "success" if resp.success else (resp.error.code if resp.error else "failure")
    message = (f"work-response {resp.service} ({resp.correlator or 'no correlator'}, {result}) "
               f"could not be stored: {problem}; the job stays pending, its outcome unknown")
    with sessions.begin() as session:
        device_id = session.scalar(select(DeviceState.id).where(
            DeviceState.serial_number == device_key(resp.udi.sn)))
        if device_id is None:
            return False
        values, _ = fit.fit_values(DeviceEvent.__table__, {
            "device_id": device_id, "at": now, "kind": "error", "service": resp.service,
            "correlator": resp.correlator or None, "success": resp.success,
            "error_code": "SERVER_DATABASE", "message": message}, ascii_only=True)
        session.execute(insert(DeviceEvent.__table__), [values])
    return True


def device_key(serial: str) -> str:
    """The ``serial_number`` a device is stored under (its serial, fitted to the column)."""
    return fit.fit_value(DeviceState.__table__.c.serial_number, serial)[0]


def set_state(sessions: sessionmaker[Session], serial: str, state: str,
              reason: str = "operator", *, start_over: bool = False,
              changes: dict | None = None) -> bool:
    """Operator action: move a device to ``state`` (a workflow state name) under its row
    lock, with the columns ``workflow.operator_move`` says such a move changes, and
    record it in the history. ``changes`` sets further columns. Returns False for an
    unknown serial. Raises ValueError for an unknown state.
    """
    target = wf.State(state)
    now = utcnow()
    with device_lock(sessions, serial) as (session, row):
        if row is None:
            return False
        old = row.state
        move = wf.operator_move(old, target, start_over=start_over)
        for name, value in {**move, **(changes or {})}.items():
            setattr(row, name, value)
        session.add(DeviceEvent(device_id=row.id, at=now, kind="state",
                                message=f"{old} → {target.value} ({reason})"))
    return True
