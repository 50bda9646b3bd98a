"""HTTP endpoints of the Cisco PnP protocol: /pnp/HELLO, /pnp/WORK-REQUEST, /pnp/WORK-RESPONSE.

Every well-formed PnP message gets 200 with an XML body (a job, a backoff or
a bye); anything else gets 400 with a one-line reason. Database trouble
answers a backoff so the device simply asks again later (never a 5xx). Only an
outage is logged as "database unavailable"; any other database error (a DataError,
an IntegrityError, a deadlock: app/storage/errors.py) is logged as what it is and
the message is handled once more, with every text stored ASCII-escaped; a
work-response that still cannot be stored is noted in the device's history and
its job stays pending (outcome unknown, never a failure of the device).
Source: docs/protocol.md §2.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from app.config import get_config
from app.files.serving import device_gate
from app.observability import metrics
from app.pnp import protocol as p
from app.pnp import service
from app.sot import writeback
from app.sot.images import config_for
from app.storage.db import get_sessions
from app.storage.errors import classify

bp = Blueprint("pnp", __name__, url_prefix="/pnp")
log = logging.getLogger("pnp")
DB_DOWN_BACKOFF = 30  # seconds


class _DeviceSession(SecureCookieSession):
    """The empty session a PnP message gets (never read from a cookie, never saved)."""


class DeviceSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session (the operator console's), not opened for PnP messages.

    A device carries no console session, and opening one costs every message a signing
    serializer and a parse of the Cookie header (~5 % of a message's CPU, BENCHMARKS.md
    "Per-message cost"): under ``/pnp/`` the session is empty and never written back.
    Installed by ``create_app`` as ``app.session_interface``.
    """

    def open_session(self, app, request):
        if request.path.startswith(f"{bp.url_prefix}/"):
            return _DeviceSession()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if isinstance(session, _DeviceSession):
            return
        super().save_session(app, session, response)


device_gate(bp, log, prune=True)


def _xml(body: str) -> Response:
    return Response(body, status=200, mimetype="text/xml")


def _bad(reason: str) -> Response:
    log.warning("rejected %s from %s: %s", request.path, request.remote_addr, reason)
    return Response(reason + "\n", status=400, mimetype="text/plain")


class BodyError(Exception):
    """The request body could not be read (broken chunked encoding, client gone)."""


def _read_body() -> bytes:
    """The raw request body; 413 above MAX_CONTENT_LENGTH (Werkzeug), BodyError when unreadable."""
    try:
        return request.get_data(cache=False)
    except HTTPException:
        raise  # 413 Request Entity Too Large, 400 client disconnected
    except Exception as exc:  # noqa: BLE001 - gunicorn's InvalidChunkSize, NoMoreData, OSError…
        raise BodyError(f"unreadable request body: {exc.__class__.__name__}") from exc


@bp.errorhandler(BodyError)
def _body_error(exc: BodyError) -> Response:
    return _bad(str(exc))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    """Last line of defence (docs/protocol.md pitfall P5): a device never sees a 5xx.

    HTTP errors (404, 405, 413) pass through. Anything else is logged with its
    traceback and answered with a backoff when the UDI is known, else a 400.
    """
    if isinstance(exc, HTTPException):
        return exc
    log.exception("unexpected error on %s from %s", request.path, request.remote_addr)
    udi = g.get("pnp_udi")
    if udi is not None and g.get("pnp_reply") == "bye":
        return _xml(p.build_bye(udi, g.get("pnp_correlator") or ""))
    if udi is not None:
        return _xml(p.build_backoff(udi, g.get("pnp_correlator") or "", DB_DOWN_BACKOFF,
                                    "server error, try again later"))
    return Response("message could not be processed\n", status=400, mimetype="text/plain")


def _count(message: str, reply: service.Reply) -> None:
    metrics.REQUESTS.labels(message, metrics.service_label(reply.service)).inc()
    if reply.finished_seconds is not None:
        metrics.PROVISIONING.observe(reply.finished_seconds)


@bp.route("/HELLO", methods=["GET", "HEAD", "POST"])
def hello() -> Response:
    """Discovery probe: 200 with an empty body for GET, HEAD and POST."""
    return Response("", status=200, mimetype="text/plain")


def _exchange(kind: str, parse, handle, fallback) -> Response:
    """Parse, handle under the row lock, reply; database trouble gets ``fallback``
    (a bug is answered by ``_unexpected`` from what ``g`` holds).

    ``fallback(message, reason)`` builds the XML sent when the message could
    not be handled (a backoff for work-requests, a bye for work-responses).
    """
    raw = _read_body()
    try:
        message = parse(raw)
    except p.PnpParseError as exc:
        metrics.REJECTED.labels(kind).inc()
        return _bad(str(exc))
    g.pnp_udi, g.pnp_correlator = message.udi.raw, getattr(message, "correlator", "")
    g.pnp_reply = "bye" if kind == "work-response" else "backoff"
    debug = log.isEnabledFor(logging.DEBUG)  # no redaction of text that is not logged
    if debug:
        log.debug("%s from %s: %s", kind, request.remote_addr, service.redact(raw))
    try:
        reply = _handle(kind, handle, message, raw)
    except SQLAlchemyError as exc:
        metrics.REQUESTS.labels(kind, metrics.service_label(getattr(message, "service", "backoff"))).inc()
        fault = classify(exc)
        reason = "server database unavailable" if fault.outage else "server database error"
        return _xml(fallback(message, reason))
    _count(kind, reply)
    if reply.held:  # another host drives a serial whose flow started elsewhere (app/pnp/source.py)
        log.info("%s", reply.summary)
        return _xml(reply.xml)
    if isinstance(message, p.WorkResponse) and (message.is_fault or message.success is False):
        code = (message.error.code if message.error and message.error.code
                else "fault" if message.is_fault else "none")
        metrics.ERRORS.labels(metrics.service_label(message.service), metrics.error_code_label(code)).inc()
    log.info("%s", reply.summary)
    if debug:
        log.debug("reply to %s: %s", message.udi.sn, service.redact(reply.xml))
    response = _xml(reply.xml)
    # Source of truth: queue a status write-back after the transaction; sent once the reply is out.
    drain = writeback.after_message(get_sessions(), get_config(), message.udi.sn,
                                    current_app.extensions.setdefault("sot_writeback", {}))
    if drain is not None:
        response.call_on_close(drain)
    return response


def _handle(kind: str, handle, message, raw: bytes) -> service.Reply:
    """``handle`` the message; a database error that is not an outage is logged as what it
    is and the message handled once more with ASCII-only text (app/storage/fit.py). A
    work-response that fails twice is recorded as unstored (``service.record_unstored``).
    Raises the SQLAlchemy error when the message could not be handled."""
    sessions, config, source = get_sessions(), get_config(), request.remote_addr
    try:
        # the device's image override from the source of truth, if any (app/sot/images.py)
        config = config_for(sessions, config, message.udi.sn)
        return handle(sessions, config, message, raw, source)
    except SQLAlchemyError as exc:
        fault = classify(exc)
        if fault.outage:
            log.error("%s %s: database unavailable, nothing recorded: %s", message.udi.sn, kind,
                      fault)
            raise
        log.error("%s %s: database error, not an outage (%s); handling it once more with "
                  "ASCII-only text", message.udi.sn, kind, fault)
    try:
        return handle(sessions, config, message, raw, source, ascii_only=True)
    except SQLAlchemyError as exc:
        fault = classify(exc)
        log.error("%s %s: database error again, not recorded (%s)", message.udi.sn, kind, fault)
        if kind == "work-response" and not fault.outage:
            try:
                service.record_unstored(sessions, message, str(fault))
            except SQLAlchemyError as again:
                log.error("%s %s: could not note it in the history either (%s)",
                          message.udi.sn, kind, classify(again))
        raise


@bp.post("/WORK-REQUEST")
def work_request() -> Response:
    """A device asks for work: answer its next job or a backoff."""
    return _exchange("work-request", p.parse_work_request, service.work_request,
                     lambda wr, reason: p.build_backoff(wr.udi.raw, wr.correlator,
                                                        DB_DOWN_BACKOFF, reason))


@bp.post("/WORK-RESPONSE")
def work_response() -> Response:
    """A device reports a job's result: record it and answer bye."""
    return _exchange("work-response", p.parse_work_response, service.work_response,
                     lambda resp, reason: p.build_bye(resp.udi.raw, resp.correlator or ""))
