"""JSON API ``/api/v1``: devices (filter, pagination), one device with its events, the
actions, inventory import, day-0 preview. OpenAPI 3.1 document at /api/v1/openapi.json.

Authentication: ``Authorization: Bearer <ADMIN_TOKEN>``, or a logged-in
console session (unsafe methods then need the ``X-CSRFToken`` header). Errors
are JSON ``{"error": "..."}`` with a 4xx status. Every change goes through
app.ops, the same service layer as the console and the CLI.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app import ops as op
from app.api.openapi import openapi_document
from app.config import get_config
from app.ops import auth
from app.storage.db import get_sessions

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _plain(value):
    """JSON-ready copy: datetimes as ISO 8601 UTC (``2026-11-22T04:05:06Z``)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + "Z"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException):
    response = jsonify({"error": exc.description or exc.name})
    response.status_code = exc.code or 500
    if exc.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pnp"'
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:  # RFC 9110: a 405 names what is allowed
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _api_not_found(exc: HTTPException):
    """Unknown /api/v1 URLs and methods answer JSON too; other areas keep their pages."""
    if request.path.startswith(bp.url_prefix + "/"):
        return _error(exc)
    return exc


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API (public: it holds no data)."""
    return jsonify(openapi_document(request.host_url.rstrip("/")))


MAX_EVENTS = 5000  # events of one device in one answer


def _bool_arg(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value not in ("1", "true", "0", "false"):
        abort(400, description=f"{name} must be true or false")
    return value in ("1", "true")


def _int_arg(name: str, default: int, low: int = 1, high: int = op.MAX_PAGE) -> int:
    """The integer query argument ``name``; 400 unless it is an integer in [low, high]."""
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        abort(400, description=f"{name} must be an integer")
    if not low <= value <= high:
        abort(400, description=f"{name} must be between {low} and {high}")
    return value


@bp.get("/devices")
@auth.api_auth
def devices():
    """A page of devices with counts per state and lifecycle."""
    query = op.DeviceQuery(state=request.args.get("state", ""),
                           lifecycle=request.args.get("lifecycle", ""),
                           stalled=_bool_arg("stalled"),
                           q=request.args.get("q", "")[:64], sort=request.args.get("sort", "serial"),
                           order=request.args.get("order", "asc"), page=_int_arg("page", 1),
                           per_page=_int_arg("per_page", get_config().page_size, high=op.MAX_PER_PAGE))
    try:
        page = op.list_devices(get_sessions(), get_config(), query)
    except op.ActionError as exc:
        abort(400, description=str(exc))
    return jsonify(_plain({"items": page.items, "total": page.total, "page": page.page,
                           "per_page": page.per_page, "pages": page.pages, "counts": page.counts}))


@bp.get("/devices/<serial>")
@auth.api_auth
def device(serial: str):
    """One device: fields, summary, inventory, events newest first, day-0 config, raw XML."""
    events = _int_arg("events", 200, low=0, high=MAX_EVENTS)
    try:
        data = op.get_device(get_sessions(), get_config(), serial, events=events)
    except op.NotFound as exc:
        abort(404, description=str(exc))
    return jsonify(_plain(data))


def _action(serial: str, run):
    try:
        result = run()
    except op.NotFound as exc:
        abort(404, description=str(exc))
    except op.ActionError as exc:
        abort(400, description=str(exc))
    return result


def _state_of(serial: str) -> dict:
    data = op.get_device(get_sessions(), get_config(), serial, events=0, exchanges=0)
    return _plain(data["summary"])


@bp.post("/devices/<serial>/resume")
@auth.api_auth
def resume(serial: str):
    """Resume at ``{"state": "<workflow state>"}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("state"), str):
        abort(400, description='body must be JSON {"state": "<workflow state>"}')
    _action(serial, lambda: op.resume(get_sessions(), serial, body["state"], auth.actor()))
    return jsonify(_state_of(serial))


@bp.post("/devices/<serial>/accept-source")
@auth.api_auth
def accept_source(serial: str):
    """Accept the new source address of a held device (it becomes the device's address)."""
    _action(serial, lambda: op.accept_source(get_sessions(), serial, auth.actor()))
    return jsonify(_state_of(serial))


@bp.post("/devices/<serial>/retry")
@auth.api_auth
def retry(serial: str):
    """Retry the failed step now."""
    _action(serial, lambda: op.retry(get_sessions(), serial, auth.actor()))
    return jsonify(_state_of(serial))


@bp.post("/devices/<serial>/reset")
@auth.api_auth
def reset(serial: str):
    """Start over at step 1."""
    _action(serial, lambda: op.reset(get_sessions(), serial, auth.actor()))
    return jsonify(_state_of(serial))


@bp.post("/devices/<serial>/claim")
@auth.api_auth
def claim(serial: str):
    """Add a seen device to the inventory (lets it go on when REQUIRE_CLAIM)."""
    created = _action(serial, lambda: op.claim(get_sessions(), serial, auth.actor()))
    return jsonify({**_state_of(serial), "newly_claimed": created})


@bp.delete("/devices/<serial>")
@auth.api_auth
def delete(serial: str):
    """Forget the device and its history."""
    _action(serial, lambda: op.delete_device(get_sessions(), serial, auth.actor()))
    return Response(status=204)


@bp.get("/devices/<serial>/config")
@auth.api_auth
def config_preview(serial: str):
    """The day-0 config the device gets (text/plain), or 422 with the reason."""
    from app.files.day0 import Day0Error

    try:
        day0 = op.render_day0(get_sessions(), get_config(), serial)
    except Day0Error as exc:
        abort(422, description=str(exc))
    return Response(day0.text, mimetype="text/plain", headers={"X-Day0-Source": day0.source,
                                                                "X-Day0-Name": day0.name})


@bp.get("/inventory")
@auth.api_auth
def inventory():
    """A page of the inventory."""
    items, total = op.list_inventory(get_sessions(), page=_int_arg("page", 1),
                                     per_page=_int_arg("per_page", 100, high=op.MAX_PER_PAGE))
    return jsonify(_plain({"items": items, "total": total}))


@bp.post("/inventory")
@auth.api_auth
def inventory_import():
    """Import CSV: a ``text/csv`` body or a multipart ``file``; ``?dry_run=1`` validates only.

    400 with per-line ``errors`` when anything is wrong (nothing written).
    """
    request.max_content_length = op.MAX_CSV_BYTES
    upload = request.files.get("file")
    raw = upload.read() if upload is not None else request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="the CSV is not UTF-8 text")
    result = op.import_inventory(get_sessions(), get_config(), text,
                                 dry_run=request.args.get("dry_run", "") in ("1", "true"))
    body = {"created": result.created, "updated": result.updated, "errors": result.errors}
    return jsonify(body), (200 if result.ok else 400)


@bp.post("/sot/webhook")
def sot_webhook():
    """A NetBox/Nautobot webhook: HMAC-SHA512 ``X-Hook-Signature`` checked, the changed device re-synced.

    No bearer token: the signature made with ``SOT_WEBHOOK_SECRET`` is the
    authentication. 403 bad signature, 400 bad body, 409 not configured, 502
    when the source of truth cannot be read back (nothing changed then).
    """
    from app.sot import webhook
    from app.sot.sources import SourceError

    body = request.get_data(cache=False)
    try:
        result = webhook.handle(get_sessions(), get_config(), body, request.headers.get(webhook.SIGNATURE_HEADER))
    except webhook.WebhookError as exc:
        abort(exc.status, description=str(exc))
    except SourceError as exc:
        abort(502, description=str(exc))
    return jsonify({"model": result.model, "event": result.event, "device": result.sot_id,
                    "created": result.sync.created, "updated": result.sync.updated,
                    "removed": result.sync.removed, "kept": result.sync.kept, "dhcp": result.dhcp,
                    "report": result.lines})


@bp.get("/sot/writeback")
@auth.api_auth
def sot_writeback():
    """The status write-back queue: rows not yet written to the source of truth (newest first)."""
    from app.sot.writeback import queue_summary

    return jsonify(_plain(queue_summary(get_sessions())))
