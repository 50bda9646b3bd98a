"""Operator authentication, request side: Flask-Login sessions kept in the database,
personal bearer tokens, roles, shared rate limits, and the audit of logins.

* Pages: Flask-Login's ``login_user``; the signed cookie carries only a random
  session id whose SHA-256 is a row of ``operator_session`` (app/ops/accounts.py).
  Logout, a password change and removing the user delete that row, so a cookie
  copied before is refused at once; idle (SESSION_IDLE_TIMEOUT) and absolute
  (SESSION_MAX_AGE) timeouts end it too.
* API: ``Authorization: Bearer <personal token>`` (or the legacy ADMIN_TOKEN,
  acting as the first admin), or a logged-in session whose unsafe requests
  carry the ``X-CSRFToken`` header. Each token is limited to API_RATE_LIMIT
  requests; bad tokens count against the address.
* Roles: viewer < operator < admin (``require``, ``api_auth``).
* Failed logins count per (user, address) (LOGIN_RATE_LIMIT), per address
  (LOGIN_ADDRESS_RATE_LIMIT) and per user (LOGIN_USER_RATE_LIMIT) in the shared
  storage of app/ops/ratelimit.py; each block lasts at most its window.

Device-facing routes (/pnp, /images, /configs, /files) never ask for any of it.
"""

from __future__ import annotations

import hmac
from functools import wraps

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from app.config import get_config
from app.ops import accounts
from app.ops.accounts import Principal
from app.ops.audit import record
from app.ops.bulk import Actor
from app.ops.ratelimit import RateLimits
from app.storage.db import get_sessions

login_manager = LoginManager()
login_manager.session_protection = None  # the server-side session row is the protection


class SessionUser(UserMixin):
    """Flask-Login's user: a Principal plus the secret session id (``get_id``)."""

    def __init__(self, principal: Principal, sid: str) -> None:
        self.principal, self.sid = principal, sid

    def get_id(self) -> str:
        return self.sid


@login_manager.user_loader
def _load_user(sid: str) -> SessionUser | None:
    principal = accounts.load_session(get_sessions(), get_config(), sid)
    return SessionUser(principal, sid) if principal else None


def limits() -> RateLimits:
    """The application's shared rate-limit counters."""
    return current_app.extensions["pnp_limits"]


def address() -> str:
    """The client address (after ProxyFix when PROXY_HOPS is set)."""
    return request.remote_addr or "-"


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    return header[7:].strip()


def _token_principal(secret: str) -> Principal | None:
    """Resolve a bearer secret (rate-limited); aborts 429 past API_RATE_LIMIT."""
    config = get_config()
    bad_key = f"api-bad:{address()}"
    if limits().exceeded(bad_key, config.login_address_rate_limit):
        abort(429, description="too many bad tokens from this address: wait a minute")
    principal = None
    if config.admin_token and hmac.compare_digest(secret.encode(), config.admin_token.encode()):
        principal = accounts.env_token_principal(get_sessions(), config)
    elif secret:
        principal = accounts.load_token(get_sessions(), secret)
    if principal is None:
        limits().hit(bad_key, config.login_address_rate_limit)
        return None
    if not limits().hit(f"api-token:{principal.handle}", config.api_rate_limit):
        abort(429, description=f"API_RATE_LIMIT ({config.api_rate_limit}) reached for this token")
    return principal


def current_principal() -> Principal | None:
    """Who this request acts as: a bearer token's user, else the logged-in session's, else None."""
    if "pnp_principal" not in g:
        secret = _bearer()
        if secret is not None:
            g.pnp_principal = _token_principal(secret)
        elif current_user.is_authenticated:
            g.pnp_principal = current_user.principal
        else:
            g.pnp_principal = None
    return g.pnp_principal


def logged_in() -> str | None:
    """The user name of a logged-in session (not a token), or None."""
    return current_user.principal.name if current_user.is_authenticated else None


def role() -> str | None:
    """The role of the logged-in session, or None."""
    return current_user.principal.role if current_user.is_authenticated else None


def actor() -> str:
    """Who is acting, for the device history and the audit log: the user name."""
    principal = current_principal()
    return principal.name if principal else "anonymous"


def current_actor() -> Actor:
    """This request's principal as the ``Actor`` of app/ops/bulk.py (name, via, address)."""
    principal = current_principal()
    return Actor(principal.name if principal else "anonymous", principal.via if principal else "-",
                 address())


def audit(action: str, target: str | None = None, success: bool = True, detail: str | None = None,
          principal: Principal | None = None) -> None:
    """Record an action of this request's principal in the audit log."""
    who = principal or current_principal()
    record(get_sessions(), who.name if who else "anonymous", who.via if who else "-", action,
           target=target, address=address(), success=success, detail=detail)


# --- login and logout ---------------------------------------------------------------------------


def login_blocked(name: str) -> bool:
    """True when failed logins for ``name`` from this address (or of the address, or of
    the user) used up their limit in the current window."""
    config = get_config()
    store, addr = limits(), address()
    return (store.exceeded(f"login-pair:{name}|{addr}", config.login_rate_limit)
            or store.exceeded(f"login-addr:{addr}", config.login_address_rate_limit)
            or store.exceeded(f"login-user:{name}", config.login_user_rate_limit))


def log_in(name: str, password: str) -> Principal | None:
    """Check the password and open a server-side session; None when wrong (counted).
    Both outcomes are audited and logged."""
    config = get_config()
    principal = accounts.authenticate(get_sessions(), config, name, password)
    store, addr = limits(), address()
    if principal is None:
        store.hit(f"login-pair:{name}|{addr}", config.login_rate_limit)
        store.hit(f"login-addr:{addr}", config.login_address_rate_limit)
        store.hit(f"login-user:{name}", config.login_user_rate_limit)
        record(get_sessions(), name[:64], "session", "login", address=addr, success=False,
               detail="wrong user or password")
        return None
    sid = accounts.open_session(get_sessions(), principal, addr, request.user_agent.string)
    login_user(SessionUser(principal, sid))
    g.pnp_principal = principal
    record(get_sessions(), principal.name, "session", "login", address=addr, detail=f"role {principal.role}")
    return principal


def log_out() -> None:
    """End the server-side session at once (audited)."""
    if current_user.is_authenticated:
        principal, sid = current_user.principal, current_user.sid
        accounts.close_session(get_sessions(), sid)
        record(get_sessions(), principal.name, "session", "logout", address=address())
    logout_user()


# --- decorators ---------------------------------------------------------------------------------


def require(needed: str = "viewer"):
    """Page decorator: redirect to /login without a session, 403 without the role ``needed``."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            if not current_user.principal.can(needed):
                abort(403, description=f"this needs the {needed} role "
                                       f"(you are {current_user.principal.role})")
            return view(*args, **kwargs)
        return wrapper
    return decorate


login_required = require("operator")


def read_access(view):
    """Page decorator for read-only pages: open when DASHBOARD_PUBLIC, else any role."""
    protected = require("viewer")(view)

    @wraps(view)
    def wrapper(*args, **kwargs):
        if get_config().dashboard_public:
            return view(*args, **kwargs)
        return protected(*args, **kwargs)
    return wrapper


def api_auth(view=None, *, needed: str | None = None):
    """API decorator: a bearer token or a logged-in session (CSRF header on unsafe methods),
    with role ``needed`` (default: viewer for GET, operator otherwise).

    Answers 401 (JSON) without credentials, 403 without the role, 400 for a session
    request without a valid CSRF token, 429 past a token's rate limit.
    """
    def decorate(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                abort(401, description="authentication required: Authorization: Bearer <token> "
                                       "or a logged-in session")
            role_needed = needed or ("viewer" if request.method in ("GET", "HEAD") else "operator")
            if not principal.can(role_needed):
                abort(403, description=f"this needs the {role_needed} role (you are {principal.role})")
            if principal.via == "session" and request.method not in ("GET", "HEAD", "OPTIONS"):
                from flask_wtf.csrf import validate_csrf
                from wtforms import ValidationError

                try:
                    validate_csrf(request.headers.get("X-CSRFToken", ""))
                except ValidationError:
                    abort(400, description="missing or invalid X-CSRFToken header")
            return fn(*args, **kwargs)
        return wrapper
    return decorate(view) if view is not None else decorate


def init_auth(app, config) -> None:
    """Flask-Login, the shared rate-limit counters and the SQL functions of the device
    lists (natural sort on SQLite) for ``app``."""
    from app.ops.queries import install_sql_functions

    install_sql_functions(app.extensions["pnp_engine"])
    login_manager.init_app(app)
    app.extensions["pnp_limits"] = RateLimits(app.extensions["pnp_sessions"], config.ratelimit_storage_uri,
                                            prefix=config.ratelimit_key_prefix)
