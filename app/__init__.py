"""Application factory of the PnP/ZTP server (Flask tutorial style).

``create_app(config)`` builds a Flask app around an immutable ``Config``:
one database engine per process, one blueprint per area. Device-facing
routes: ``/pnp/*`` (Cisco PnP), ``/images``, ``/configs``, ``/files``.
"""

from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.db import make_engine, make_sessionmaker, upgrade
from app.logs import setup_logging


def create_app(config: Config | None = None, *, migrate: bool = False) -> Flask:
    """Build the WSGI application.

    ``config`` defaults to ``Config.load()`` (settings.py + environment).
    With ``migrate`` the Alembic migrations are applied first (run.py does
    this once in the master process instead).
    """
    config = config or Config.load()
    app = Flask(__name__, template_folder=str(config.root / "templates"),
                static_folder="static")
    app.config["PNP"] = config
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # PnP messages are a few kB
    setup_logging(config)
    if migrate:
        upgrade(config.sqlalchemy_url)
    engine = make_engine(config.sqlalchemy_url, pool_size=max(config.threads, 1) + 2)
    app.extensions["pnp_engine"] = engine
    app.extensions["pnp_sessions"] = make_sessionmaker(engine)

    from app.files.routes import bp as files_bp
    from app.metrics import bp as metrics_bp
    from app.pnp.routes import bp as pnp_bp

    app.register_blueprint(pnp_bp)
    app.register_blueprint(files_bp)
    app.register_blueprint(metrics_bp)
    return app


def get_config() -> Config:
    """The Config of the current application."""
    return current_app.config["PNP"]


def get_sessions() -> sessionmaker[Session]:
    """The session factory of the current application."""
    return current_app.extensions["pnp_sessions"]
