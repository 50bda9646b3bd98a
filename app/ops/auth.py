"""Operator authentication: a session login for the pages, a bearer token for the API.

Secrets come from the Config (``ADMIN_PASSWORD``, ``ADMIN_TOKEN``,
``SECRET_KEY``, normally as ``PNP_*`` environment variables); both are
compared in constant time (``hmac.compare_digest``). With no password set
nobody can log in; with no token set the API accepts only a logged-in session
(whose unsafe requests must carry the ``X-CSRFToken`` header). Device-facing
routes (/pnp, /images, /configs, /files) never ask for either.
"""

from __future__ import annotations

import hmac
from functools import wraps

from flask import abort, redirect, request, session, url_for

from app.config import get_config

SESSION_KEY = "pnp_operator"


def check_password(user: str, password: str) -> bool:
    """True when ``user``/``password`` match ADMIN_USER/ADMIN_PASSWORD (constant time)."""
    config = get_config()
    if not config.admin_password:
        return False
    user_ok = hmac.compare_digest(user.encode(), config.admin_user.encode())
    pass_ok = hmac.compare_digest(password.encode(), config.admin_password.encode())
    return user_ok and pass_ok


def bearer_ok() -> bool:
    """True when the request carries ``Authorization: Bearer <ADMIN_TOKEN>``."""
    token = get_config().admin_token
    header = request.headers.get("Authorization", "")
    if not token or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def logged_in() -> str | None:
    """The operator name of a logged-in session, or None (None too when no password is set)."""
    config = get_config()
    if not config.admin_password:
        return None
    name = session.get(SESSION_KEY)
    return name if name == config.admin_user else None


def log_in(user: str) -> None:
    """Mark the session as logged in (a fresh session, so no fixation)."""
    session.clear()
    session[SESSION_KEY] = user
    session.permanent = False


def log_out() -> None:
    """Forget the login."""
    session.clear()


def actor() -> str:
    """Who is acting, for the device history: the operator name or "api-token"."""
    return logged_in() or ("api-token" if bearer_ok() else "anonymous")


def login_required(view):
    """Page decorator: redirect to /login unless logged in."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if logged_in() is None:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapper


def read_access(view):
    """Page decorator for read-only pages: open when DASHBOARD_PUBLIC, else login_required."""
    protected = login_required(view)

    @wraps(view)
    def wrapper(*args, **kwargs):
        if get_config().dashboard_public:
            return view(*args, **kwargs)
        return protected(*args, **kwargs)
    return wrapper


def api_auth(view):
    """API decorator: a bearer token, or a logged-in session (with CSRF on unsafe methods).

    Answers 401 (JSON) otherwise, 400 for a session request without a valid CSRF token.
    """
    @wraps(view)
    def wrapper(*args, **kwargs):
        if bearer_ok():
            return view(*args, **kwargs)
        if logged_in() is not None:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                from flask_wtf.csrf import validate_csrf
                from wtforms import ValidationError

                try:
                    validate_csrf(request.headers.get("X-CSRFToken", ""))
                except ValidationError:
                    abort(400, description="missing or invalid X-CSRFToken header")
            return view(*args, **kwargs)
        abort(401, description="authentication required: Authorization: Bearer <ADMIN_TOKEN> "
                               "or a logged-in session")
    return wrapper


def init_login_rate_limit(app, config) -> None:
    """Limit failed logins per client address (Flask-Limiter): ``LOGIN_RATE_LIMIT``
    (e.g. ``"10 per minute"``) counts only answers that are not a successful login;
    past it the login form answers 429. Counters live in ``RATELIMIT_STORAGE_URI``:
    ``memory://`` is per gunicorn worker (so the effective limit is workers × the
    setting); point it at ``redis://…`` or ``memcached://…`` for one shared count.
    """
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    if not config.login_rate_limit:
        return
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    limiter = Limiter(get_remote_address, app=app, storage_uri=config.ratelimit_storage_uri)
    app.extensions["login_limiter"] = limiter
    view = app.view_functions["console.login"]
    app.view_functions["console.login"] = limiter.limit(
        config.login_rate_limit, methods=["POST"],
        deduct_when=lambda response: response.status_code != 302,
        error_message="too many failed logins from this address: wait a minute")(view)
