"""JSON API ``/api/v1``: devices (filters, sorts, pages), one device with its events, the
actions (one device or many), the inventory (import with a dry run, edit, delete), the
day-0 preview, the audit log, and the team: users and webhooks (admin), your own personal
API tokens (the secret is in the answer that creates it, only there).

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
from app.ops import accounts, auth, notify, team
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
    except op.Conflict as exc:
        abort(409, description=str(exc))
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
           query=s.ImportQuery, raw_body={"text/csv": {"schema": {"type": "string", "minLength": 1}},
                                          "multipart/form-data": {"schema": {
                                              "type": "object", "required": ["file"], "properties": {
                                                  "file": {"type": "string", "format": "binary"}}}}},
           responses={200: s.ImportResult, 400: s.ImportRejected}, errors=(401, 403, 429))
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


# --- team: users (admin), personal tokens (your own), webhooks (admin) --------------------------
# The same audited actions as the console's Users, Account and Webhooks pages and
# ``run.py users ...``: app/ops/team.py.


@bp.get("/users")
@auth.api_auth(needed="admin")
@operation("Users with role, open sessions and live tokens (admin)", responses={200: [s.User]})
def users():
    """Every user, by name (never a password or its hash)."""
    return jsonify(_plain(accounts.list_users(get_sessions())))


@bp.post("/users")
@auth.api_auth(needed="admin")
@operation("Add a user with a role and a first password (admin)", body=s.UserBody,
           responses={201: s.User}, errors=(400, 401, 403, 409, 429))
def user_add():
    """Add a user; 409 when the name is taken, 400 for a bad name, role or password."""
    body = g.api_body
    _action(lambda: team.add_user(get_sessions(), auth.current_actor(), body["name"], body["role"],
                                   body["password"]))
    return jsonify(_plain(team.get_user(get_sessions(), body["name"]))), 201


@bp.get("/users/<name>")
@auth.api_auth(needed="admin")
@operation("One user (admin)", responses={200: s.User}, errors=(401, 403, 404, 429))
def user(name: str):
    """One user."""
    return jsonify(_plain(_action(lambda: team.get_user(get_sessions(), name))))


@bp.patch("/users/<name>")
@auth.api_auth(needed="admin")
@operation("Change a user's role and/or password (admin; a new password ends their sessions)",
           body=s.UserChange, responses={200: s.User}, errors=(*_ACT, 409))
def user_change(name: str):
    """Change the role and/or the password; the last admin keeps the admin role (409)."""
    body, actor = g.api_body, auth.current_actor()
    _action(lambda: team.get_user(get_sessions(), name))
    if "role" in body:
        _action(lambda: team.set_role(get_sessions(), actor, name, body["role"]))
    if "password" in body:
        _action(lambda: team.set_password(get_sessions(), actor, name, body["password"]))
    return jsonify(_plain(team.get_user(get_sessions(), name)))


@bp.post("/users/<name>/logout")
@auth.api_auth(needed="admin")
@operation("End every session of a user at once (admin)", responses={200: s.SessionsEnded},
           errors=(401, 403, 404, 429))
def user_logout(name: str):
    """End the user's console sessions."""
    ended = _action(lambda: team.end_sessions(get_sessions(), auth.current_actor(), name))
    return jsonify({"ended": ended})


@bp.delete("/users/<name>")
@auth.api_auth(needed="admin")
@operation("Remove a user: sessions and tokens end at once; the audit log keeps the name (admin)",
           responses={204: None}, errors=(*_ACT, 409))
def user_remove(name: str):
    """Remove a user (never the last admin: 409)."""
    _action(lambda: team.remove_user(get_sessions(), auth.current_actor(), name))
    return Response(status=204)


def _me() -> str:
    return auth.current_principal().name


@bp.get("/tokens")
@auth.api_auth(needed="viewer")
@operation("Your personal API tokens, newest first (never their secrets)", responses={200: [s.Token]},
           errors=(401, 403, 404, 429))
def tokens():
    """The tokens of the user this request acts as."""
    return jsonify(_plain(_action(lambda: accounts.list_tokens(get_sessions(), _me()))))


@bp.post("/tokens")
@auth.api_auth(needed="viewer")
@operation("Create a personal API token; its secret is in this answer only", body=s.TokenBody,
           responses={201: s.NewToken}, errors=_ACT)
def token_create():
    """A new token of your own: ``token`` is the secret (store it: it is not shown again)."""
    secret, info = _action(lambda: team.create_token(get_sessions(), auth.current_actor(), _me(),
                                                      g.api_body["name"]))
    return jsonify(_plain({**info, "token": secret})), 201


@bp.delete("/tokens/<int:token_id>")
@auth.api_auth(needed="viewer")
@operation("Revoke one of your tokens (it fails at once)", responses={204: None}, errors=_ACT)
def token_revoke(token_id: int):
    """Revoke one of your tokens; 404 for another user's token."""
    _action(lambda: team.revoke_token(get_sessions(), auth.current_actor(), _me(), token_id))
    return Response(status=204)


def _public_hook(hook: dict) -> dict:
    return {k: v for k, v in hook.items() if k != "secret"}


@bp.get("/webhooks")
@auth.api_auth(needed="admin")
@operation("Webhooks (admin; secrets are shown only when created)", responses={200: [s.WebhookItem]})
def webhooks():
    """Every webhook, oldest first."""
    return jsonify(_plain([_public_hook(h) for h in notify.list_webhooks(get_sessions())]))


@bp.post("/webhooks")
@auth.api_auth(needed="admin")
@operation("Add a webhook: URL, events, preset (json, slack, teams); the answer holds its HMAC secret",
           body=s.WebhookBody, responses={201: s.WebhookItem}, errors=(400, 401, 403, 429))
def webhook_add():
    """Add a webhook; 400 for a URL that is not http(s) or unknown events."""
    body = g.api_body
    hook = _action(lambda: team.add_webhook(get_sessions(), auth.current_actor(), body.get("name", ""),
                                             body["url"].strip(), body["events"], body.get("preset", "json"),
                                             body.get("secret")))
    return jsonify(_plain(hook)), 201


@bp.get("/webhooks/deliveries")
@auth.api_auth(needed="admin")
@operation("The delivery log: the newest webhook events queued or sent (admin)",
           query=s.DeliveryQuery, responses={200: [s.Delivery]})
def webhook_deliveries():
    """The newest deliveries, newest first."""
    return jsonify(_plain(notify.list_deliveries(get_sessions(), limit=g.api_query.get("limit", 50))))


@bp.get("/webhooks/<int:hook_id>")
@auth.api_auth(needed="admin")
@operation("One webhook (admin)", responses={200: s.WebhookItem}, errors=(401, 403, 404, 429))
def webhook(hook_id: int):
    """One webhook (without its secret)."""
    return jsonify(_plain(_public_hook(_action(lambda: team.get_webhook(get_sessions(), hook_id)))))


@bp.delete("/webhooks/<int:hook_id>")
@auth.api_auth(needed="admin")
@operation("Remove a webhook and its queue (admin)", responses={204: None}, errors=(401, 403, 404, 429))
def webhook_remove(hook_id: int):
    """Remove a webhook."""
    _action(lambda: team.remove_webhook(get_sessions(), auth.current_actor(), hook_id))
    return Response(status=204)


@bp.post("/webhooks/<int:hook_id>/test")
@auth.api_auth(needed="admin")
@operation("Queue a test event for a webhook (admin)", responses={202: s.Queued}, errors=(401, 403, 404, 429))
def webhook_test(hook_id: int):
    """Queue a ``test`` event (delivered by the dispatcher like any other)."""
    _action(lambda: team.send_test(get_sessions(), auth.current_actor(), hook_id))
    return jsonify({"queued": True}), 202
