"""``/ztp_fetch/<mode>/<vci>/<mac>``: Juniper ZTP config and image downloads.

The DHCP helper puts ``ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>.conf`` into
option 43 sub-option 1; Junos prefixes ``/`` (a name that already starts with
``/`` arrives as ``//ztp_fetch/...``, which :class:`LeadingSlashes` folds).
Modes: ``conf`` (config or ``#!`` script per MAC) and ``image`` (official
image per model; ``/ztp_fetch/image/<vci>/<mac>/<official-name>`` keeps the
official name as last path segment, docs/protocol.md §16.6).

Answers: 200 with the file (``Content-Disposition: attachment``,
``X-Accel-Buffering: no``; with ``X_ACCEL_REDIRECT_PREFIX`` set, static files
go through nginx ``X-Accel-Redirect``, see deploy/nginx.conf); 400 for a bad
MAC or VCI; 404 when there is no config/image or its template cannot be rendered.
Each GET is recorded in the device's history (app.ztp.service).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from app.common.gate import device_refusal
from app.config import get_config
from app.files.serving import file_response
from app.storage.db import get_sessions
from app.ztp import juniper, service
from app.ztp.token import token_matches

bp = Blueprint("ztp", __name__)
log = logging.getLogger("pnp.ztp")


@bp.before_request
def _device_networks_only():
    """403 for a client outside DEVICE_NETWORKS (app/common/gate.py)."""
    reason = device_refusal(get_config(), request.remote_addr)
    if reason is not None:
        log.warning("refused %s from %s: %s", request.path[:200], request.remote_addr, reason)
        return Response(reason + "\n", status=403, mimetype="text/plain")
    return None


@bp.after_request
def _prune_now_and_then(response: Response) -> Response:
    """Start the periodic prune when due (app/ops/retention.py; never waits for it)."""
    pruner = current_app.extensions.get("pnp_prune")
    if pruner is not None:
        pruner.maybe_start()
    return response


class LeadingSlashes:
    """WSGI middleware folding a run of leading slashes in PATH_INFO into one (``//ztp_fetch`` -> ``/ztp_fetch``).

    Werkzeug 3.1 happens to match a doubled *leading* slash, but answers doubled
    slashes elsewhere with a 308 redirect (``merge_slashes``); folding them here
    keeps ``//ztp_fetch`` served at once, whatever the Werkzeug version, and the
    logged path canonical.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("//"):
            environ["PATH_INFO"] = "/" + path.lstrip("/")
        return self.wsgi_app(environ, start_response)


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def _file_response(path: Path | None, body: bytes | None, filename: str, accel: str | None) -> Response:
    config = get_config()
    if body is not None:
        response = Response(body, mimetype="application/octet-stream")
    else:
        response, _via = file_response(path, accel or "", config.x_accel_redirect_prefix if accel else "")
    response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.route("/ztp_fetch/<mode>/<vci>/<mac>", methods=["GET", "HEAD"])
@bp.route("/ztp_fetch/<mode>/<vci>/<mac>/<name>", methods=["GET", "HEAD"])
def ztp_fetch(mode: str, vci: str, mac: str, name: str | None = None) -> Response:
    """Serve a Juniper device its config (``conf``) or image (``image``); see the module docstring."""
    config = get_config()
    try:
        req = juniper.parse_request(mode, vci, mac, config.juniper_models.keys(), name)
    except juniper.ZtpError as exc:
        log.warning("ztp_fetch %s from %s: %d %s", request.path, request.remote_addr, exc.status, exc)
        return _text(exc.status, str(exc))
    if req.mode == "conf" and config.ztp_token_secret and not token_matches(
            config.ztp_token_secret, req.mac, req.name):
        log.warning("ztp_fetch %s from %s: 403 missing or wrong device token", req.mac, request.remote_addr)
        return _text(403, "this config needs the device's token: fetch the file name the DHCP server "
                          "announces (option 43 sub-option 1)")
    record = request.method == "GET"
    inventory = current_app.extensions.get("ztp_inventory")
    try:
        row = (inventory(req.mac) if inventory is not None else None) or {}
    except ValueError as exc:  # a broken inventory.csv: say so, serve static files anyway
        log.error("ztp inventory: %s", exc)
        row, inventory = {}, None
    hostname = row.get("hostname") or None
    try:
        if req.mode == "image":
            path = juniper.choose_image(req, config.juniper_models, config.images_dir)
            response = _file_response(path, None, path.name, f"images/{path.name}")
            served, image = f"image {path.name} ({path.stat().st_size} bytes)", path.name
        else:
            choice = juniper.choose_config(req, config.juniper_configs_dir, inventory)
            kind = "script" if choice.script else "Junos config"
            accel = f"configs/juniper/{choice.path.name}" if choice.path is not None else None
            response = _file_response(choice.path, choice.body, f"{req.mac_dashed}.conf", accel)
            served, image = f"{kind} from {choice.source}", None
    except juniper.ZtpError as exc:
        if record:  # an unknown MAC (no row, not in the inventory) gets no row: only a log line
            _record(req, error=str(exc), status=exc.status, hostname=hostname, create=bool(row))
        return _text(exc.status, str(exc))
    if record:
        _record(req, served=served, hostname=hostname, image=image)
    return response


def _record(req, **details) -> None:
    """Record the fetch in the device's history; a database outage only loses the record
    (the device still gets its file or its 4xx, never a 5xx)."""
    try:
        service.record_fetch(get_sessions(), req, request.remote_addr, **details)
    except SQLAlchemyError as exc:
        log.error("ztp %s %s: database unavailable, fetch not recorded: %s", req.mode, req.mac,
                  exc.__class__.__name__)
