"""Console pages: /login, /dashboard (htmx partial refresh), /devices/<SN>, /inventory.

Pages are server-rendered Jinja2 (templates/console/); the dashboard table
and the device status block are re-fetched every 5 s by htmx
(app/static/htmx.min.js, no CDN). Every change goes through app.ops, the
same service layer as the API and the CLI; every form carries a CSRF token
(Flask-WTF). The read-only pages need a login unless DASHBOARD_PUBLIC.
"""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlparse

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.exc import SQLAlchemyError

from app import ops as op
from app.config import get_config
from app.console.forms import ActionForm, ImportForm, LoginForm, ResumeForm
from app.ops import accounts, auth, notify, team
from app.ops import audit as audit_log
from app.pnp import workflow as wf
from app.storage.db import get_sessions, utcnow
from app.storage.errors import classify

bp = Blueprint("console", __name__)
log = logging.getLogger("pnp.console")
REFRESH_SECONDS = 5
PAGE_SIZES = (25, 50, 100, 200, 500)


@bp.app_template_filter("ts")
def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "–"


@bp.app_template_filter("ago")
def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((utcnow() - value).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


@bp.app_context_processor
def _globals() -> dict:
    role = auth.role()
    return {"operator": auth.logged_in(), "role": role, "can_act": role in ("operator", "admin"),
            "is_admin": role == "admin", "refresh_seconds": REFRESH_SECONDS,
            "lifecycles": [lc.value for lc in op.Lifecycle], "states": [s.value for s in wf.State]}


def _htmx_login_redirect():
    """An expired session polled by htmx: send the whole page to /login."""
    if request.headers.get("HX-Request") and auth.logged_in() is None \
            and not (get_config().dashboard_public and request.method == "GET"):
        response = Response("", status=200)
        response.headers["HX-Redirect"] = url_for("console.login")
        return response
    return None


@bp.before_request
def _before():
    return _htmx_login_redirect()


# --- login --------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return url_for("console.dashboard")


def _no_account_yet() -> bool:
    return not get_config().admin_password and not accounts.has_users(get_sessions())


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form: a user of the database (the first admin from PNP_ADMIN_PASSWORD).

    401 for a wrong user or password, 429 while the failed-login limits are used up.
    """
    form = LoginForm()
    config = get_config()
    error = None
    if _no_account_yet():
        error = ("No operator account exists: start the server with PNP_ADMIN_PASSWORD "
                 "or add one with `python3 run.py users add`.")
    elif request.method == "POST":
        if not form.validate_on_submit():
            error = "; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items())
            return render_template("console/login.html", form=form, error=error,
                                   admin_user=config.admin_user), 400
        name = form.user.data.strip()
        if auth.login_blocked(name):
            auth.audit("login", success=False, detail="refused: too many failed logins",
                       principal=accounts.Principal(name[:64], "viewer", "session"))
            error = "Refused: too many failed logins from this address or for this user: wait a minute."
            return render_template("console/login.html", form=form, error=error,
                                   admin_user=config.admin_user), 429
        if auth.log_in(name, form.password.data):
            return redirect(_safe_next(request.args.get("next")))
        error = "Wrong user or password."
        return render_template("console/login.html", form=form, error=error,
                               admin_user=config.admin_user), 401
    return render_template("console/login.html", form=form, error=error, admin_user=config.admin_user)


@bp.post("/logout")
def logout():
    """End the server-side session at once (CSRF-checked so a foreign page cannot log you out)."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description="missing or invalid CSRF token")
    auth.log_out()
    return redirect(url_for("console.login"))


@bp.get("/")
def index():
    """The dashboard is the home page."""
    return redirect(url_for("console.dashboard"))


# --- dashboard ----------------------------------------------------------------------------------


def _query_from_args() -> op.DeviceQuery:
    try:
        return op.DeviceQuery.from_args(request.args, get_config().page_size)
    except op.ActionError as exc:
        abort(400, description=str(exc))


def _args_of(query: op.DeviceQuery) -> dict:
    """The non-default query values, to rebuild links and the refresh URL."""
    return query.args(get_config().page_size)


def _table_context() -> dict:
    query = _query_from_args()
    page = op.list_devices(get_sessions(), get_config(), query)
    args = _args_of(query)

    def link(endpoint: str = "console.dashboard", **changes) -> str:
        """The dashboard URL with ``changes``: a new filter or sort starts at page 1; a page
        number and a keyset cursor replace each other."""
        merged = {**args, **changes}
        if set(changes) - {"page", "cursor"}:
            merged.pop("page", None)
            merged.pop("cursor", None)
        for name, other in (("page", "cursor"), ("cursor", "page")):
            if name in changes:
                merged.pop(other, None)
        return url_for(endpoint, **{k: v for k, v in merged.items() if v not in ("", None)})

    return {"page": page, "query": query, "args": args, "link": link,
            "stalled_after": get_config().stalled_after, "writeback": _writeback_queue()}


def _writeback_queue() -> dict | None:
    """The source-of-truth write-back queue (pending/failing rows) when write-back is on, else None."""
    from app.sot import writeback

    if not writeback.enabled(get_config()):
        return None
    return writeback.queue_summary(get_sessions())


@bp.errorhandler(SQLAlchemyError)
def database_down(exc: SQLAlchemyError):
    """The database cannot be reached: say so (503), and keep the htmx refresh going so the
    dashboard recovers by itself (htmx does not swap error responses, hence 200 for it)."""
    reason = f"{exc.__class__.__name__} ({get_config().database_label})"
    fault = classify(exc)
    log.error("console %s: %s: %s", request.path,
              "database unavailable" if fault.outage else "database error, not an outage", fault)
    if request.headers.get("HX-Request"):
        return render_template("console/_db_down.html", reason=reason, retry_url=request.full_path)
    return render_template("console/db_down.html", reason=reason), 503


@bp.get("/dashboard")
@auth.read_access
def dashboard():
    """Every device with its lifecycle, state and progress; refreshes itself every 5 s."""
    return render_template("console/dashboard.html", choices=op.filter_choices(get_sessions()),
                           page_sizes=PAGE_SIZES, action_form=ActionForm(), **_table_context())


@bp.get("/dashboard/export.csv")
@auth.read_access
def dashboard_export():
    """The current view (filters and sort, every page) as CSV."""
    query = _query_from_args()
    rows = op.iter_devices(get_sessions(), get_config(), query)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(op.to_csv(list(rows), op.EXPORT_COLUMNS), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="devices-{stamp}.csv"'})


@bp.get("/dashboard/table")
@auth.read_access
def dashboard_table():
    """The htmx partial of /dashboard: counts and one page of the device table."""
    return render_template("console/_devices.html", **_table_context())


# --- one device ---------------------------------------------------------------------------------


def _device_or_404(serial: str, **kw) -> dict:
    try:
        return op.get_device(get_sessions(), get_config(), serial, **kw)
    except op.NotFound:
        abort(404, description=f"no device {serial}")


@bp.get("/devices/<serial>")
@auth.read_access
def device(serial: str):
    """All fields, events newest first, the day-0 config and the raw XML of the last exchanges."""
    data = _device_or_404(serial)
    form = ResumeForm(state=data["summary"]["state"] or wf.INITIAL_STATE.value)
    retry_step = None
    if data["fields"]:
        retry_step = op.failed_step(get_sessions(), serial)
    return render_template("console/device.html", d=data, s=data["summary"], resume_form=form,
                           action_form=ActionForm(), retry_step=retry_step)


@bp.get("/devices/<serial>/status")
@auth.read_access
def device_status(serial: str):
    """The htmx partial of the device page: summary and the newest events."""
    data = _device_or_404(serial, events=200, exchanges=0)
    return render_template("console/_device_status.html", d=data, s=data["summary"])


@bp.get("/devices/<serial>/config")
@auth.require("viewer")
def device_config(serial: str):
    """Preview: the day-0 config the device gets, as text (or the reason it cannot)."""
    from app.files.day0 import Day0Error

    try:
        rendered = op.render_day0(get_sessions(), get_config(), serial)
    except Day0Error as exc:
        return Response(f"! day-0 config error: {exc}\n", status=422, mimetype="text/plain")
    return Response(rendered.text, mimetype="text/plain")


def _checked(form) -> None:
    if not form.validate_on_submit():
        abort(400, description="invalid form (missing or expired CSRF token?): "
                               + "; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items()))


def _act(serial: str, action: str, done: str, **kw):
    """Run one audited action (app/ops/bulk.py ``act``) and go back to the device page."""
    try:
        result = op.act(get_sessions(), action, serial, auth.current_actor(), **kw)
    except op.NotFound:
        abort(404, description=f"no device {serial}")
    except op.ActionError as exc:
        abort(400, description=str(exc))
    flash(done.format(result=result))
    return redirect(url_for("console.device", serial=serial))


@bp.post("/devices/<serial>/resume")
@auth.require("operator")
def device_resume(serial: str):
    """Resume at the chosen state."""
    form = ResumeForm()
    _checked(form)
    return _act(serial, "resume", f"{serial} resumes at {{result}} at its next work-request",
                state=form.state.data)


@bp.post("/devices/<serial>/accept-source")
@auth.require("operator")
def device_accept_source(serial: str):
    """Accept the new source address of a held device."""
    _checked(ActionForm())
    return _act(serial, "accept-source", f"{serial} now provisions from {{result}}")


@bp.post("/devices/<serial>/retry")
@auth.require("operator")
def device_retry(serial: str):
    """Retry the failed step."""
    _checked(ActionForm())
    return _act(serial, "retry", f"{serial} retries {{result}} at its next work-request")


@bp.post("/devices/<serial>/reset")
@auth.require("operator")
def device_reset(serial: str):
    """Start over at step 1."""
    _checked(ActionForm())
    return _act(serial, "reset", f"{serial} starts over at {{result}}")


@bp.post("/devices/<serial>/claim")
@auth.require("operator")
def device_claim(serial: str):
    """Add the device to the inventory."""
    _checked(ActionForm())
    response = _act(serial, "claim", f"{serial} claimed")
    if request.form.get("next") == "dashboard":
        return redirect(url_for("console.dashboard"))
    return response


@bp.post("/devices/<serial>/delete")
@auth.require("operator")
def device_delete(serial: str):
    """Forget the device and its history (the audit log keeps who did it)."""
    _checked(ActionForm())
    try:
        op.act(get_sessions(), "delete", serial, auth.current_actor())
    except op.NotFound:
        abort(404, description=f"no device {serial}")
    flash(f"{serial} deleted")
    return redirect(url_for("console.dashboard"))


@bp.get("/devices/<serial>/history.csv")
@auth.require("viewer")
def device_history(serial: str):
    """The device's whole history as CSV (export it before deleting the device)."""
    try:
        rows = op.device_history(get_sessions(), serial)
    except op.NotFound:
        abort(404, description=f"no device {serial}")
    text = op.to_csv(rows, op.HISTORY_COLUMNS)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{serial.replace(":", "")}-history.csv"'})


@bp.post("/dashboard/bulk")
@auth.require("operator")
def dashboard_bulk():
    """One action (retry, reset, claim, delete) on the selected devices; the count was
    confirmed in the browser. Reports done and failed devices in a flash message."""
    _checked(ActionForm())
    serials = request.form.getlist("serial")
    try:
        result = op.bulk(get_sessions(), request.form.get("action", ""), serials, auth.current_actor())
    except op.ActionError as exc:
        abort(400, description=str(exc))
    message = f"{result.action}: {len(result.done)} device(s) done"
    if result.failed:
        message += "; failed: " + "; ".join(f"{s}: {r}" for s, r in result.failed.items())
    flash(message)
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/dashboard") else url_for("console.dashboard"))


# --- inventory ----------------------------------------------------------------------------------


@bp.route("/inventory", methods=["GET", "POST"])
@auth.require("operator")
def inventory():
    """The inventory list and the CSV import form (validated before anything is written)."""
    request.max_content_length = op.MAX_CSV_BYTES
    form = ImportForm()
    result = None
    status = 200
    if request.method == "POST":
        _checked(form)
        raw = form.csv_file.data.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            result = op.ImportResult(errors=["the file is not UTF-8 text"])
        else:
            result = op.import_inventory(get_sessions(), get_config(), text)
        status = 200 if result.ok else 400
    try:
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        page = 1
    items, total = op.list_inventory(get_sessions(), page=page, per_page=100)
    return render_template("console/inventory.html", form=form, result=result, items=items,
                           total=total, page_no=page, counts=op.inventory_counts(get_sessions()),
                           action_form=ActionForm()), status


def _variables_from_text(text: str) -> dict:
    """``name=value`` lines (blank lines ignored) → dict. Raises ActionError."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise op.ActionError(f"variables line {number}: write name=value")
        out[name.strip()] = value.strip()
    return out


@bp.route("/inventory/<serial>/edit", methods=["GET", "POST"])
@auth.require("operator")
def inventory_edit(serial: str):
    """Edit one inventory row; the template is test-rendered before it is saved."""
    try:
        item = op.get_item(get_sessions(), serial)
    except op.NotFound:
        abort(404, description=f"no inventory row {serial}")
    error, status = None, 200
    if request.method == "POST":
        _checked(ActionForm())
        form = request.form
        try:
            variables = _variables_from_text(form.get("variables", ""))
            item = op.update_item(get_sessions(), get_config(), serial, form.get("hostname"),
                                  form.get("pid", ""), form.get("template"), variables)
        except op.ActionError as exc:
            error, status = str(exc), 400
            item = {**item, "hostname": form.get("hostname"), "pid": form.get("pid", ""),
                    "template": form.get("template")}
        else:
            auth.audit("inventory-edit", serial)
            flash(f"inventory row {serial} saved")
            return redirect(url_for("console.inventory"))
    return render_template("console/inventory_edit.html", item=item, error=error), status


@bp.post("/inventory/<serial>/delete")
@auth.require("operator")
def inventory_delete(serial: str):
    """Remove one inventory row (a seen device becomes Unclaimed)."""
    _checked(ActionForm())
    try:
        op.delete_item(get_sessions(), serial)
    except op.NotFound:
        abort(404, description=f"no inventory row {serial}")
    auth.audit("inventory-delete", serial)
    flash(f"inventory row {serial} deleted")
    return redirect(url_for("console.inventory"))


# --- accounts -----------------------------------------------------------------------------------


def _form_error(exc: Exception) -> None:
    flash(f"error: {exc}")


@bp.route("/account", methods=["GET", "POST"])
@auth.require("viewer")
def account():
    """The logged-in user's page: change the password (other sessions end), personal API
    tokens (created, shown once, revoked)."""
    me = auth.current_principal()
    new_secret = None
    if request.method == "POST":
        _checked(ActionForm())
        what = request.form.get("what")
        try:
            if what == "password":
                if not accounts.authenticate(get_sessions(), get_config(), me.name,
                                             request.form.get("current", "")):
                    raise op.ActionError("the current password is wrong")
                if request.form.get("new", "") != request.form.get("again", ""):
                    raise op.ActionError("the two new passwords differ")
                team.set_password(get_sessions(), auth.current_actor(), me.name, request.form.get("new", ""),
                                  keep=me.handle)
                flash("password changed; your other sessions ended")
            elif what == "token":
                new_secret, _info = team.create_token(get_sessions(), auth.current_actor(), me.name,
                                                      request.form.get("name", ""))
            elif what == "revoke":
                token_id = int(request.form.get("token_id", "0"))
                team.revoke_token(get_sessions(), auth.current_actor(), me.name, token_id)
                flash(f"token {token_id} revoked")
        except (op.ActionError, op.NotFound, ValueError) as exc:
            _form_error(exc)
    tokens = accounts.list_tokens(get_sessions(), me.name)
    return render_template("console/account.html", me=me, tokens=tokens, new_secret=new_secret,
                           action_form=ActionForm())


@bp.route("/users", methods=["GET", "POST"])
@auth.require("admin")
def users():
    """Admin: add users, change roles, end sessions, remove users."""
    if request.method == "POST":
        _checked(ActionForm())
        what, name = request.form.get("what"), request.form.get("name", "").strip()
        try:
            if what == "add":
                role = request.form.get("role", "viewer")
                team.add_user(get_sessions(), auth.current_actor(), name, role, request.form.get("password", ""))
                flash(f"user {name} added ({role})")
            elif what == "role":
                role = request.form.get("role", "")
                team.set_role(get_sessions(), auth.current_actor(), name, role)
                flash(f"{name} is now {role}")
            elif what == "logout":
                ended = team.end_sessions(get_sessions(), auth.current_actor(), name)
                flash(f"{ended} session(s) of {name} ended")
            elif what == "remove":
                team.remove_user(get_sessions(), auth.current_actor(), name)
                flash(f"user {name} removed")
        except (op.ActionError, op.NotFound) as exc:
            _form_error(exc)
        return redirect(url_for("console.users"))
    return render_template("console/users.html", users=accounts.list_users(get_sessions()),
                           roles=accounts.ROLES, action_form=ActionForm())


@bp.get("/audit")
@auth.require("admin")
def audit():
    """Admin: the audit log, newest first, filtered by user, action or device; ``?format=csv``."""
    args = request.args
    try:
        page = max(1, int(args.get("page", 1)))
    except ValueError:
        abort(400, description="page must be an integer")
    filters = {k: args.get(k, "").strip()[:64] for k in ("actor", "action", "target")}
    if args.get("format") == "csv":
        rows, _total = op.list_audit(get_sessions(), **filters, per_page=audit_log.MAX_PER_PAGE)
        columns = ["at", "actor", "via", "action", "target", "address", "success", "detail"]
        return Response(op.to_csv(rows, columns), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
    rows, total = op.list_audit(get_sessions(), **filters, page=page, per_page=100)
    return render_template("console/audit.html", rows=rows, total=total, page_no=page, filters=filters)


# --- webhooks -----------------------------------------------------------------------------------


@bp.route("/webhooks", methods=["GET", "POST"])
@auth.require("admin")
def webhooks():
    """Admin: webhooks (URL, events, preset, HMAC secret), a test send, the delivery log."""
    if request.method == "POST":
        _checked(ActionForm())
        what = request.form.get("what")
        try:
            if what == "add":
                hook = team.add_webhook(get_sessions(), auth.current_actor(), request.form.get("name", ""),
                                        request.form.get("url", "").strip(), request.form.getlist("events"),
                                        request.form.get("preset", "json"))
                flash(f"webhook {hook['name']} added")
            elif what == "remove":
                hook_id = int(request.form.get("id", "0"))
                team.remove_webhook(get_sessions(), auth.current_actor(), hook_id)
                flash(f"webhook {hook_id} removed")
            elif what == "test":
                hook_id = int(request.form.get("id", "0"))
                team.send_test(get_sessions(), auth.current_actor(), hook_id)
                flash(f"test event queued for webhook {hook_id}")
        except (op.ActionError, op.NotFound, ValueError) as exc:
            _form_error(exc)
        return redirect(url_for("console.webhooks"))
    return render_template("console/webhooks.html", hooks=notify.list_webhooks(get_sessions()),
                           deliveries=notify.list_deliveries(get_sessions()), events=notify.EVENTS,
                           presets=notify.PRESETS)


@bp.get("/api-docs")
def api_docs():
    """The interactive API page: Swagger UI (vendored in app/static/swagger-ui) on
    /api/v1/openapi.json."""
    return render_template("console/api_docs.html")
