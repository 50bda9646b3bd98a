"""``/healthz``: is the server able to provision right now? For monitoring and load balancers.

Answers JSON: ``{"status": "ok", "database": "up", "latency_ms": 3}`` with 200,
or ``{"status": "degraded", "database": "down", "error": "OperationalError"}``
with 503 when the database does not answer ``SELECT 1`` within
``HEALTH_DB_TIMEOUT`` seconds (devices meanwhile get backoff replies, see
app/pnp/routes.py). The check runs in a small thread pool so a hung database
cannot hold the request longer than the timeout. No secrets (URL, password)
appear in the answer.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)
log = logging.getLogger("pnp.health")
HEALTH_DB_TIMEOUT = 3.0  # seconds


def _ping(engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def database_status(engine, executor: ThreadPoolExecutor, timeout: float = HEALTH_DB_TIMEOUT) -> dict:
    """``{"database": "up"|"down", "latency_ms": int}`` plus ``error`` (exception class name) when down."""
    started = time.monotonic()
    future = executor.submit(_ping, engine)
    try:
        future.result(timeout=timeout)
    except FutureTimeout:
        return {"database": "down", "error": f"no answer within {timeout:g} s"}
    except Exception as exc:  # noqa: BLE001 - any driver error means "down"
        return {"database": "down", "error": exc.__class__.__name__}
    return {"database": "up", "latency_ms": round((time.monotonic() - started) * 1000)}


@bp.get("/healthz")
def healthz():
    """200 when the database answers, 503 when it does not (JSON body either way)."""
    app = current_app
    executor = app.extensions.setdefault("pnp_health_pool",
                                         ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz"))
    status = database_status(app.extensions["pnp_engine"], executor)
    up = status["database"] == "up"
    if not up:
        log.warning("healthz: database down (%s)", status.get("error"))
    return jsonify({"status": "ok" if up else "degraded", **status}), 200 if up else 503
