"""Application factory of the PnP/ZTP server (Flask tutorial style).

``create_app(config)`` builds a Flask app around an immutable ``Config``: one
database engine per process (app/storage/db.py), one blueprint per area.

Where things live (each folder one room; imports only go down this list):

* ``app/cli/``: every ``python3 run.py …`` command (server, devices, inventory,
  images, db, dhcp);
* HTTP: ``app/pnp/routes.py`` (``/pnp/*``), ``app/files/routes.py``
  (``/images``, ``/configs``, ``/files``), ``app/ztp/routes.py``
  (``/ztp_fetch``), ``app/console/`` (``/dashboard``…), ``app/api/``
  (``/api/v1``), ``app/observability/`` (``/healthz``, ``/metrics``);
* operator layer: ``app/ops/`` (queries, actions, inventory import shared by
  console, API and CLI);
* ``app/pnp/service.py``: applies workflow decisions under the row lock;
* ``app/pnp/workflow.py``: the 13 steps, pure functions;
* ``app/pnp/protocol.py``: PnP XML parse and build;
* ``app/storage/``: engine, sessions, models, the per-device lock, migrations;
* ``app/config.py``, ``app/common/``: settings and small pure helpers;
* ``app/dhcp/``: the DHCP library (no Flask).

tests/test_architecture.py checks that no import circles or upward imports appear.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_wtf.csrf import generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

from app.api.routes import bp as api_bp
from app.config import PROJECT_ROOT, Config
from app.console.routes import bp as console_bp
from app.files.routes import bp as files_bp
from app.observability.health import bp as health_bp
from app.observability.logs import setup_logging
from app.observability.metrics import bp as metrics_bp
from app.observability.metrics import count_statements
from app.ops import monitoring, notify
from app.ops.auth import init_auth
from app.ops.retention import AutoPrune, juniper_known
from app.pnp.routes import DeviceSessionInterface
from app.pnp.routes import bp as pnp_bp
from app.sot.sync import ztp_lookup
from app.storage.db import make_engine, make_sessionmaker
from app.storage.migrate import upgrade
from app.ztp.juniper import csv_inventory
from app.ztp.routes import LeadingSlashes
from app.ztp.routes import bp as ztp_bp


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
        hops = config.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # PnP messages are a few kB
    setup_logging(config)
    if migrate:
        upgrade(config.sqlalchemy_url)
    engine = make_engine(config.sqlalchemy_url, pool_size=config.db_pool, max_overflow=config.db_max_overflow,
                         pool_timeout=config.db_pool_timeout, wsrep_sync_wait=config.db_wsrep_sync_wait,
                         gevent=config.worker_class == "gevent")
    if os.environ.get("PNP_COUNT_STATEMENTS") == "1":
        count_statements(engine)
    app.extensions["pnp_engine"] = engine
    app.extensions["pnp_sessions"] = make_sessionmaker(engine)
    if ztp_inventory is None:  # the CSV, or the inventory table a source of truth fills (app/sot/sync.py)
        ztp_inventory = (csv_inventory(config.juniper_inventory_path) if config.inventory_source == "csv"
                         else ztp_lookup(app.extensions["pnp_sessions"]))
    app.extensions["ztp_inventory"] = ztp_inventory
    app.extensions["sot_writeback"] = {}  # per-process memory of app/sot/writeback.py (next retry look)
    # Growth bounds: at most one prune per PRUNE_INTERVAL per worker, started by device requests.
    app.extensions["pnp_prune"] = AutoPrune(app.extensions["pnp_sessions"], config,
                                            juniper_known(app.extensions["ztp_inventory"]))
    # Operator console: signed session cookie; CSRF tokens per form (Flask-WTF).
    app.secret_key = config.session_secret
    app.session_interface = DeviceSessionInterface()  # none opened for PnP messages
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      WTF_CSRF_TIME_LIMIT=None)
    app.jinja_env.globals["csrf_token"] = generate_csrf
    for blueprint in (pnp_bp, files_bp, ztp_bp, console_bp, api_bp, health_bp, metrics_bp):
        app.register_blueprint(blueprint)
    app.wsgi_app = LeadingSlashes(app.wsgi_app)
    init_auth(app, config)
    notify.init_app(app, config)
    monitoring.init_app(app, config)
    return app
