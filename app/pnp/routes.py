"""HTTP endpoints of the Cisco PnP protocol: /pnp/HELLO, /pnp/WORK-REQUEST, /pnp/WORK-RESPONSE.

Every well-formed PnP message gets 200 with an XML body (a job, a backoff or
a bye); anything else gets 400 with a one-line reason. Database trouble
answers a backoff so the device simply asks again later (never a 5xx).
Source: shared/reference/pnp-protocol.md §2.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError

from app import get_config, get_sessions, metrics
from app.pnp import protocol as p
from app.pnp import service

bp = Blueprint("pnp", __name__, url_prefix="/pnp")
log = logging.getLogger("pnp")
DB_DOWN_BACKOFF = 30  # seconds


def _xml(body: str) -> Response:
    return Response(body, status=200, mimetype="text/xml")


def _bad(reason: str) -> Response:
    log.warning("rejected %s from %s: %s", request.path, request.remote_addr, reason)
    return Response(reason + "\n", status=400, mimetype="text/plain")


def _count(message: str, reply: service.Reply) -> None:
    metrics.REQUESTS.labels(message, reply.service).inc()
    if reply.finished_seconds is not None:
        metrics.PROVISIONING.observe(reply.finished_seconds)


@bp.route("/HELLO", methods=["GET", "HEAD", "POST"])
def hello() -> Response:
    """Discovery probe: 200 with an empty body for GET, HEAD and POST."""
    return Response("", status=200, mimetype="text/plain")


@bp.post("/WORK-REQUEST")
def work_request() -> Response:
    """A device asks for work: answer its next job or a backoff."""
    raw = request.get_data(cache=False)
    try:
        wr = p.parse_work_request(raw)
    except p.PnpParseError as exc:
        metrics.REJECTED.labels("work-request").inc()
        return _bad(str(exc))
    log.debug("WORK-REQUEST from %s: %s", request.remote_addr, service.redact(raw))
    try:
        reply = service.work_request(get_sessions(), get_config(), wr, raw,
                                     request.remote_addr)
    except SQLAlchemyError as exc:
        log.error("%s %s work-request: database unavailable: %s", wr.udi.sn, wr.correlator,
                  exc.__class__.__name__)
        metrics.REQUESTS.labels("work-request", "backoff").inc()
        return _xml(p.build_backoff(wr.udi.raw, wr.correlator, DB_DOWN_BACKOFF,
                                    "server database unavailable"))
    _count("work-request", reply)
    log.info("%s", reply.summary)
    log.debug("reply to %s: %s", wr.udi.sn, service.redact(reply.xml))
    return _xml(reply.xml)


@bp.post("/WORK-RESPONSE")
def work_response() -> Response:
    """A device reports a job's result: record it and answer bye."""
    raw = request.get_data(cache=False)
    try:
        resp = p.parse_work_response(raw)
    except p.PnpParseError as exc:
        metrics.REJECTED.labels("work-response").inc()
        return _bad(str(exc))
    log.debug("WORK-RESPONSE from %s: %s", request.remote_addr, service.redact(raw))
    try:
        reply = service.work_response(get_sessions(), get_config(), resp, raw,
                                      request.remote_addr)
    except SQLAlchemyError as exc:
        log.error("%s %s %s response: database unavailable, result not recorded: %s",
                  resp.udi.sn, resp.correlator, resp.service, exc.__class__.__name__)
        metrics.REQUESTS.labels("work-response", resp.service).inc()
        return _xml(p.build_bye(resp.udi.raw, resp.correlator or ""))
    _count("work-response", reply)
    if resp.service == "fault" or resp.success is False:
        code = resp.error.code if resp.error and resp.error.code else resp.service
        metrics.ERRORS.labels(resp.service, code[:64]).inc()
    log.info("%s", reply.summary)
    return _xml(reply.xml)
