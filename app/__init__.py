"""Application factory of the PnP/ZTP server (Flask tutorial style).

``create_app(config)`` builds a Flask app around an immutable ``Config``:
one database engine per process, one blueprint per area. Device-facing
routes: ``/pnp/*`` (Cisco PnP), ``/ztp_fetch/*`` (Juniper ZTP), ``/images``,
``/configs``, ``/files``.
Operator routes (login or token): ``/dashboard``, ``/devices/<SN>``,
``/inventory``, ``/api/v1``; CLI commands: ``flask devices|inventory|images|config|db``.
Monitoring: ``/healthz``.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, Config
from app.db import make_engine, make_sessionmaker, upgrade
from app.logs import setup_logging


def create_app(config: Config | None = None, *, migrate: bool = False,
               ztp_inventory=None) -> Flask:
    """Build the WSGI application.

    ``config`` defaults to ``Config.load()`` (settings.py + environment).
    With ``migrate`` the Alembic migrations are applied first (run.py does
    this once in the master process instead). ``ztp_inventory`` is the
    Juniper inventory lookup ``mac -> dict | None`` (app.ztp.juniper
    .InventoryLookup); default: the CSV ``JUNIPER_INVENTORY``.
    """
    config = config or Config.load()
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"),
                static_folder="static")
    app.config["PNP"] = config
    if config.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = config.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # PnP messages are a few kB
    setup_logging(config)
    if migrate:
        upgrade(config.sqlalchemy_url)
    engine = make_engine(config.sqlalchemy_url, pool_size=max(config.threads, 1) + 2)
    app.extensions["pnp_engine"] = engine
    app.extensions["pnp_sessions"] = make_sessionmaker(engine)

    from flask_wtf.csrf import generate_csrf

    from app.api.routes import bp as api_bp
    from app.cli import register_cli
    from app.console.rendered import bp as rendered_bp
    from app.console.routes import bp as console_bp
    from app.files.routes import bp as files_bp
    from app.health import bp as health_bp
    from app.metrics import bp as metrics_bp
    from app.pnp.routes import bp as pnp_bp
    from app.ztp.juniper import csv_inventory
    from app.ztp.routes import LeadingSlashes
    from app.ztp.routes import bp as ztp_bp

    app.extensions["ztp_inventory"] = ztp_inventory or csv_inventory(config.juniper_inventory_path)
    # Operator console: signed session cookie; CSRF tokens per form (Flask-WTF).
    app.secret_key = config.session_secret
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      WTF_CSRF_TIME_LIMIT=None)
    app.jinja_env.globals["csrf_token"] = generate_csrf

    app.register_blueprint(pnp_bp)
    app.register_blueprint(rendered_bp)  # before files: /configs/rendered/<SN>.cfg
    app.register_blueprint(files_bp)
    app.register_blueprint(ztp_bp)
    app.wsgi_app = LeadingSlashes(app.wsgi_app)
    app.register_blueprint(console_bp)
    app.register_blueprint(api_bp)
    register_cli(app)
    from app.auth import init_login_rate_limit

    init_login_rate_limit(app, config)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    return app


def get_config() -> Config:
    """The Config of the current application."""
    return current_app.config["PNP"]


def get_sessions() -> sessionmaker[Session]:
    """The session factory of the current application."""
    return current_app.extensions["pnp_sessions"]
