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
from app.ops import auth
from app.pnp import workflow as wf
from app.storage.db import get_sessions, utcnow
from app.storage.errors import classify

bp = Blueprint("console", __name__)
log = logging.getLogger("pnp.console")
REFRESH_SECONDS = 5


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
    return {"operator": auth.logged_in(), "refresh_seconds": REFRESH_SECONDS,
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


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; POST checks ADMIN_USER/ADMIN_PASSWORD in constant time."""
    form = LoginForm()
    config = get_config()
    error = None
    if not config.admin_password:
        error = "No operator password is set: start the server with PNP_ADMIN_PASSWORD."
    elif request.method == "POST":
        if not form.validate_on_submit():
            error = "; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items())
            return render_template("console/login.html", form=form, error=error,
                                   admin_user=config.admin_user), 400
        if auth.check_password(form.user.data, form.password.data):
            auth.log_in(form.user.data)
            return redirect(_safe_next(request.args.get("next")))
        error = "Wrong user or password."
        return render_template("console/login.html", form=form, error=error,
                               admin_user=config.admin_user), 401
    return render_template("console/login.html", form=form, error=error, admin_user=config.admin_user)


@bp.post("/logout")
def logout():
    """Forget the login (CSRF-checked so a foreign page cannot log you out)."""
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
    args = request.args
    try:
        query = op.DeviceQuery(state=args.get("state", ""), lifecycle=args.get("lifecycle", ""),
                               stalled=args.get("stalled", "") in ("1", "true", "on"),
                               q=args.get("q", "").strip()[:64], sort=args.get("sort", "serial"),
                               order=args.get("order", "asc"), page=int(args.get("page", 1)),
                               per_page=int(args.get("per_page", get_config().page_size)))
        return query.validate()
    except (ValueError, op.ActionError) as exc:
        abort(400, description=str(exc))


def _args_of(query: op.DeviceQuery) -> dict:
    """The non-default query values, to rebuild links and the refresh URL."""
    out = {"state": query.state, "lifecycle": query.lifecycle, "stalled": "1" if query.stalled else "",
           "q": query.q, "sort": query.sort if query.sort != "serial" else "",
           "order": query.order if query.order != "asc" else "",
           "page": query.page if query.page != 1 else "",
           "per_page": query.per_page if query.per_page != get_config().page_size else ""}
    return {k: v for k, v in out.items() if v not in ("", None)}


def _table_context() -> dict:
    query = _query_from_args()
    page = op.list_devices(get_sessions(), get_config(), query)
    args = _args_of(query)

    def link(endpoint: str = "console.dashboard", **changes) -> str:
        merged = {**args, **changes}
        if set(changes) - {"page"}:
            merged.pop("page", None)
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
    return render_template("console/dashboard.html", **_table_context())


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
@auth.login_required
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


def _act(serial: str, what, done: str):
    try:
        result = what()
    except op.NotFound:
        abort(404, description=f"no device {serial}")
    except op.ActionError as exc:
        abort(400, description=str(exc))
    flash(done.format(result=result))
    return redirect(url_for("console.device", serial=serial))


@bp.post("/devices/<serial>/resume")
@auth.login_required
def device_resume(serial: str):
    """Resume at the chosen state."""
    form = ResumeForm()
    _checked(form)
    return _act(serial, lambda: op.resume(get_sessions(), serial, form.state.data, auth.actor()),
                f"{serial} resumes at {{result}} at its next work-request")


@bp.post("/devices/<serial>/accept-source")
@auth.login_required
def device_accept_source(serial: str):
    """Accept the new source address of a held device."""
    _checked(ActionForm())
    return _act(serial, lambda: op.accept_source(get_sessions(), serial, auth.actor()),
                f"{serial} now provisions from {{result}}")


@bp.post("/devices/<serial>/retry")
@auth.login_required
def device_retry(serial: str):
    """Retry the failed step."""
    _checked(ActionForm())
    return _act(serial, lambda: op.retry(get_sessions(), serial, auth.actor()),
                f"{serial} retries {{result}} at its next work-request")


@bp.post("/devices/<serial>/reset")
@auth.login_required
def device_reset(serial: str):
    """Start over at step 1."""
    _checked(ActionForm())
    return _act(serial, lambda: op.reset(get_sessions(), serial, auth.actor()),
                f"{serial} starts over at {{result}}")


@bp.post("/devices/<serial>/claim")
@auth.login_required
def device_claim(serial: str):
    """Add the device to the inventory."""
    _checked(ActionForm())
    response = _act(serial, lambda: op.claim(get_sessions(), serial, auth.actor()), f"{serial} claimed")
    if request.form.get("next") == "dashboard":
        return redirect(url_for("console.dashboard"))
    return response


@bp.post("/devices/<serial>/delete")
@auth.login_required
def device_delete(serial: str):
    """Forget the device and its history."""
    _checked(ActionForm())
    try:
        op.delete_device(get_sessions(), serial, auth.actor())
    except op.NotFound:
        abort(404, description=f"no device {serial}")
    flash(f"{serial} deleted")
    return redirect(url_for("console.dashboard"))


# --- inventory ----------------------------------------------------------------------------------


@bp.route("/inventory", methods=["GET", "POST"])
@auth.login_required
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
                           total=total, page_no=page), status
