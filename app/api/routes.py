"""JSON API ``/api/v1``: devices (filters, sorts, pages), one device with its events, the
actions (one device or many), the inventory (import with a dry run, edit, delete), the
day-0 preview and the audit log.

Each route is defined once: its ``@operation`` (app/api/spec.py) names the
marshmallow schemas (app/api/schemas.py) that validate the request and from
which /api/v1/openapi.json is generated; /api-docs shows it (Swagger UI, served
from app/static, no CDN).

Authentication: ``Authorization: Bearer <personal token>`` (or ADMIN_TOKEN), or a
logged-in console session (unsafe methods then need the ``X-CSRFToken`` header);
reading needs the viewer role, acting operator, the audit log admin. Errors are
JSON ``{"error": "..."}`` with a 4xx status; a bad value is a 400 naming the field
(nothing is clamped); an unknown device is a 404 on every route. Every change goes
through app.ops, the same service layer as the console and the CLI, and is audited.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app import ops as op
from app.api import schemas as s
from app.api.spec import BadRequest, bad_request_answer, openapi_document, operation
from app.config import get_config
from app.ops import auth
from app.storage.db import get_sessions

bp = Blueprint("api", __name__, url_prefix="/api/v1")
_ACT = (400, 401, 403, 404, 429)


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
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # e.g. Allow of a 405 (RFC 9110)
    if exc.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pnp"'
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:  # RFC 9110: a 405 names what is allowed
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


bp.register_error_handler(BadRequest, bad_request_answer)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _api_not_found(exc: HTTPException):
    """Unknown /api/v1 URLs and methods answer JSON too; other areas keep their pages."""
    if request.path.startswith(bp.url_prefix + "/"):
        return _error(exc)
    return exc


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API, generated from the routes (public: no data)."""
    return jsonify(openapi_document(current_app, request.host_url.rstrip("/")))


# --- devices ------------------------------------------------------------------------------------


@bp.get("/devices")
@auth.api_auth
@operation("List devices: errors and stalled first by default; filters, natural sorts, keyset "
           "pages (next_cursor/prev_cursor) or a page number",
           query=s.DeviceListQuery, responses={200: s.DevicePage})
def devices():
    """A page of devices with counts per state and lifecycle."""
    try:
        query = op.DeviceQuery.from_args(g.api_query, get_config().page_size)
        page = op.list_devices(get_sessions(), get_config(), query)
    except op.ActionError as exc:
        abort(400, description=str(exc))
    return jsonify(_plain({"items": page.items, "total": page.total, "page": page.page,
                           "per_page": page.per_page, "pages": page.pages, "counts": page.counts,
                           "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor}))


@bp.post("/bulk")
@auth.api_auth
@operation("One action on many devices (each audited); per device done or the reason it failed",
           body=s.BulkBody, responses={200: s.BulkResult}, errors=(400, 401, 403, 429))
def bulk():
    """``{"action": "retry|reset|claim|delete", "serials": [...]}`` → done / failed per device."""
    body = g.api_body
    try:
        result = op.bulk(get_sessions(), body["action"], body["serials"], auth.current_actor())
    except op.ActionError as exc:
        abort(400, description=str(exc))
    return jsonify(_plain({"action": result.action, "done": result.done, "failed": result.failed}))


@bp.get("/devices/<serial>")
@auth.api_auth
@operation("One device: fields, summary, inventory, events newest first, day-0 config, raw XML",
           query=s.DeviceQuery, responses={200: s.Device}, errors=(400, 401, 403, 404, 429))
def device(serial: str):
    """One device (a Planned inventory row too)."""
    try:
        data = op.get_device(get_sessions(), get_config(), serial, events=g.api_query.get("events", 200))
    except op.NotFound as exc:
        abort(404, description=str(exc))
    return jsonify(_plain(data))


def _action(run):
    try:
        return run()
    except op.NotFound as exc:
        abort(404, description=str(exc))
    except op.ActionError as exc:
        abort(400, description=str(exc))


def _state_of(serial: str) -> dict:
    data = op.get_device(get_sessions(), get_config(), serial, events=0, exchanges=0)
    return _plain(data["summary"])


def _act(serial: str, action: str, **kw):
    _action(lambda: op.act(get_sessions(), action, serial, auth.current_actor(), **kw))
    return jsonify(_state_of(serial))


@bp.post("/devices/<serial>/resume")
@auth.api_auth
@operation("Resume at a workflow state (that step starts afresh at the next work-request)",
           body=s.ResumeBody, responses={200: s.DeviceSummary}, errors=_ACT)
def resume(serial: str):
    """Resume at ``{"state": "<workflow state>"}``."""
    return _act(serial, "resume", state=g.api_body["state"])


@bp.post("/devices/<serial>/accept-source")
@auth.api_auth
@operation("Accept the new source address of a held device (it becomes the device's address)",
           responses={200: s.DeviceSummary}, errors=_ACT)
def accept_source(serial: str):
    """Accept the new source address of a held device."""
    return _act(serial, "accept-source")


@bp.post("/devices/<serial>/retry")
@auth.api_auth
@operation("Retry the failed step now", responses={200: s.DeviceSummary}, errors=_ACT)
def retry(serial: str):
    """Retry the failed step now."""
    return _act(serial, "retry")


@bp.post("/devices/<serial>/reset")
@auth.api_auth
@operation("Start over at step 1", responses={200: s.DeviceSummary}, errors=_ACT)
def reset(serial: str):
    """Start over at step 1."""
    return _act(serial, "reset")


@bp.post("/devices/<serial>/claim")
@auth.api_auth
@operation("Add a seen device to the inventory (lets it go on when REQUIRE_CLAIM)",
           responses={200: s.ClaimResult}, errors=_ACT)
def claim(serial: str):
    """Add a seen device to the inventory."""
    created = _action(lambda: op.act(get_sessions(), "claim", serial, auth.current_actor()))
    return jsonify({**_state_of(serial), "newly_claimed": created})


@bp.delete("/devices/<serial>")
@auth.api_auth
@operation("Forget the device and its history (the audit log keeps the deletion)",
           responses={204: None}, errors=_ACT)
def delete(serial: str):
    """Forget the device and its history."""
    _action(lambda: op.act(get_sessions(), "delete", serial, auth.current_actor()))
    return Response(status=204)


@bp.get("/devices/<serial>/history")
@auth.api_auth
@operation("The device's whole history, oldest first (export it before deleting the device)",
           responses={200: [s.Event]}, errors=(401, 403, 404, 429))
def history(serial: str):
    """Every event of a device."""
    rows = _action(lambda: op.device_history(get_sessions(), serial))
    return jsonify(_plain(rows))


@bp.get("/devices/<serial>/config")
@auth.api_auth
@operation("Preview the day-0 config the device gets (text), or 422 with the reason",
           responses={200: "text", 422: s.Error}, errors=(401, 403, 404, 429))
def config_preview(serial: str):
    """The day-0 config the device gets (text/plain); 404 for an unknown serial."""
    from app.files.day0 import Day0Error

    _action(lambda: op.get_device(get_sessions(), get_config(), serial, events=0, exchanges=0))
    try:
        day0 = op.render_day0(get_sessions(), get_config(), serial)
    except Day0Error as exc:
        abort(422, description=str(exc))
    return Response(day0.text, mimetype="text/plain", headers={"X-Day0-Source": day0.source,
                                                                "X-Day0-Name": day0.name})


# --- inventory ----------------------------------------------------------------------------------


@bp.get("/inventory")
@auth.api_auth
@operation("A page of the inventory (by serial)", query=s.PageQuery, responses={200: s.InventoryPage})
def inventory():
    """A page of the inventory."""
    items, total = op.list_inventory(get_sessions(), page=g.api_query.get("page", 1),
                                     per_page=g.api_query.get("per_page", 100))
    return jsonify(_plain({"items": items, "total": total}))


@bp.post("/inventory")
@auth.api_auth
@operation("Import CSV (serial, hostname, pid, template, variables…); dry_run says what would change",
           query=s.ImportQuery, raw_body={"text/csv": {"schema": {"type": "string"}},
                                          "multipart/form-data": {"schema": {"type": "object", "properties": {
                                              "file": {"type": "string", "format": "binary"}}}}},
           responses={200: s.ImportResult}, errors=(400, 401, 403, 429))
def inventory_import():
    """Import CSV: a ``text/csv`` body or a multipart ``file``; ``?dry_run=true`` writes nothing.

    400 with per-line ``errors`` when anything is wrong (nothing written).
    """
    request.max_content_length = op.MAX_CSV_BYTES
    upload = request.files.get("file")
    raw = upload.read() if upload is not None else request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="the CSV is not UTF-8 text")
    dry_run = g.api_query.get("dry_run", False)
    result = op.import_inventory(get_sessions(), get_config(), text, dry_run=dry_run)
    body = {"created": result.created, "updated": result.updated, "errors": result.errors,
            "dry_run": dry_run, "changes": result.changes}
    if not result.ok:
        body["error"] = f"{len(result.errors)} error(s): nothing imported"
    return jsonify(_plain(body)), (200 if result.ok else 400)


@bp.get("/inventory/<serial>")
@auth.api_auth
@operation("One inventory row", responses={200: s.InventoryItem}, errors=(401, 403, 404, 429))
def inventory_item(serial: str):
    """One inventory row."""
    return jsonify(_plain(_action(lambda: op.get_item(get_sessions(), serial))))


@bp.put("/inventory/<serial>")
@auth.api_auth
@operation("Change one inventory row (the template is test-rendered first)",
           body=s.InventoryBody, responses={200: s.InventoryItem}, errors=_ACT)
def inventory_update(serial: str):
    """Replace one inventory row's ``hostname``, ``pid``, ``template``, ``variables``."""
    body = g.api_body
    item = _action(lambda: op.update_item(get_sessions(), get_config(), serial, body.get("hostname"),
                                          body.get("pid") or "", body.get("template"),
                                          body.get("variables", {})))
    auth.audit("inventory-edit", serial)
    return jsonify(_plain(item))


@bp.delete("/inventory/<serial>")
@auth.api_auth
@operation("Remove one inventory row (a seen device becomes Unclaimed)", responses={204: None},
           errors=(401, 403, 404, 429))
def inventory_delete(serial: str):
    """Remove one inventory row."""
    _action(lambda: op.delete_item(get_sessions(), serial))
    auth.audit("inventory-delete", serial)
    return Response(status=204)


# --- audit --------------------------------------------------------------------------------------


@bp.get("/audit")
@auth.api_auth(needed="admin")
@operation("The audit log, newest first (admin)", query=s.AuditQuery, responses={200: s.AuditPage})
def audit():
    """Logins, logouts and every action: who, what, on which device, from where."""
    q = g.api_query
    rows, total = op.list_audit(get_sessions(), actor=q.get("actor", ""), action=q.get("action", ""),
                                target=q.get("target", ""), page=q.get("page", 1),
                                per_page=q.get("per_page", 100))
    return jsonify(_plain({"items": rows, "total": total}))


# --- source of truth ----------------------------------------------------------------------------


@bp.post("/sot/webhook")
@operation("A NetBox/Nautobot webhook: the changed device is re-synced (HMAC-SHA512 X-Hook-Signature)",
           raw_body={"application/json": {"schema": {"type": "object"}}},
           responses={200: s.SotWebhookResult}, errors=(400, 403, 409, 502), public=True)
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
@operation("The status write-back queue: rows not yet written to the source of truth (newest first)",
           responses={200: s.Anything})
def sot_writeback():
    """The status write-back queue: rows not yet written to the source of truth (newest first)."""
    from app.sot.writeback import queue_summary

    return jsonify(_plain(queue_summary(get_sessions())))
