"""``/images/<f>``, ``/configs/<f>``, ``/files/<f>``: files devices download.

Streamed through app/files/serving.py (Werkzeug, or nginx with
``X_ACCEL_REDIRECT_PREFIX``). Names are resolved with ``resolve_inside``
(real path, symlinks followed, then checked to be inside the folder): nothing
outside the three folders is served, nor hidden files such as
``images/.md5-cache.json``; an over-long or odd name is a 404, never a 500.

``/configs/rendered/<SN>.cfg`` is the inventory template of a device, rendered
on request: the workflow hands this URL out in config-upgrade when the device
has no static ``configs/<SN>.cfg`` and its inventory row names a template. An
error (missing variable...) answers 404 with the reason: never a
half-rendered config. ``/configs/signed/<token>/<name>`` serves either kind
through a signed, expiring URL (app/files/signing.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Blueprint, Response, abort, request, send_file

from app import ops
from app.common.paths import resolve_inside
from app.config import get_config
from app.files.day0 import Day0Error
from app.files.serving import device_gate, file_response
from app.files.signing import InvalidConfigToken, verify_config
from app.observability import metrics
from app.ops.downloads import serial_at
from app.storage.db import get_sessions

bp = Blueprint("files", __name__)
log = logging.getLogger("pnp.files")
AREAS = ("images", "configs", "files")


# the CA bundle is what a device needs before it can trust anything: open to all
device_gate(bp, log, open_paths=("/ca/bundle.pem",))


def _is_day0_file(name: str) -> bool:
    """Only top-level ``*.cfg`` files of configs/ are day-0 configs devices may fetch."""
    return "/" not in name and name.endswith(".cfg")


def _serve(area: str, name: str, serial: str | None = None) -> Response:
    """Answer ``area/name`` (404 when it is not a servable file) and log the download once.

    ``serial``: the device it is for when the URL says so (a signed config URL),
    else the device last seen at the client's address (app/ops/downloads.py).
    Streamed here, the line is logged when the response is closed: ``completed``
    or ``aborted`` (the client went away) with the body bytes actually sent, of
    how many, and the seconds it took; handed to nginx, when it is handed over.
    """
    config = get_config()
    folder = getattr(config, f"{area}_dir")
    if area == "configs" and not _is_day0_file(name):
        abort(404)  # templates, inventories and configs/juniper/ are never served raw
    path = resolve_inside(folder, name)
    if path is None:
        abort(404)  # missing, hidden, over-long, or outside the folder (symlink to /etc...)
    serial = serial or serial_at(get_sessions(), request.remote_addr)
    who = f"{request.remote_addr} (SN {serial or 'unknown'})"
    what = f"{request.method} {area}/{name}"
    if request.headers.get("Range"):
        what += f" range {request.headers['Range'][:64]}"
    if config.x_accel_redirect_prefix:
        response, via = file_response(path, f"{area}/{name}", config.x_accel_redirect_prefix)
        if request.method == "GET":
            metrics.FILE_BYTES.labels(area, via).inc(path.stat().st_size)
        log.info("download %s to %s: handed to nginx (%s bytes)", what, who, path.stat().st_size)
        return response
    started = time.monotonic()

    def sent(nbytes: int, length: int) -> None:
        metrics.FILE_BYTES.labels(area, "direct").inc(nbytes)
        took = time.monotonic() - started
        if nbytes >= length:
            log.info("download %s to %s: completed, %d bytes in %.1f s", what, who, nbytes, took)
        else:
            log.warning("download %s to %s: aborted after %d of %d bytes (%.1f s; the client went away)",
                        what, who, nbytes, length, took)

    response, _via = file_response(path, f"{area}/{name}", on_sent=sent)
    return response


@bp.route("/images/<path:name>", methods=["GET", "HEAD"])
def images(name: str) -> Response:
    """An IOS-XE image from images/."""
    return _serve("images", name)


@bp.route("/ca/bundle.pem", methods=["GET", "HEAD"])
def ca_bundle() -> Response:
    """The CA bundle (PEM) devices put in their trustpool: option 43 ``T`` points here.

    Served over plain HTTP on purpose (the device cannot verify HTTPS before it
    has the bundle; docs/protocol.md §12). 404 when CA_BUNDLE is not set.
    """
    path = get_config().ca_bundle
    if not path:
        abort(404)
    if not Path(path).is_file():
        log.error("CA_BUNDLE %s is missing", path)
        abort(404)
    return send_file(path, mimetype="application/x-pem-file", conditional=True, max_age=0)


@bp.route("/configs/<path:name>", methods=["GET", "HEAD"])
def configs(name: str) -> Response:
    """A day-0 config from configs/; 403 when SIGNED_CONFIG_URLS requires a signed URL."""
    return unsigned_refusal(name) or _serve("configs", name)


def unsigned_refusal(name: str) -> Response | None:
    """The 403 for a plain (unsigned) day-0 config request when SIGNED_CONFIG_URLS is on, else None."""
    if not get_config().signed_config_urls:
        return None
    log.warning("refused plain configs/%s to %s: signed URLs required", name[:200], request.remote_addr)
    return Response("day-0 configs are only served through signed URLs\n", status=403, mimetype="text/plain")


@bp.route("/configs/signed/<token>/<path:name>", methods=["GET", "HEAD"])
def signed_config(token: str, name: str) -> Response:
    """A day-0 config through a signed, expiring URL (app/files/signing.py); 403 when invalid."""
    config = get_config()
    if not config.signed_config_urls:
        abort(404)
    try:
        serial = verify_config(config.config_url_secret, token, name, config.config_url_max_age)
    except InvalidConfigToken as exc:
        log.warning("refused signed configs/%s to %s: %s", name[:200], request.remote_addr, exc)
        return Response(f"{exc}\n", status=403, mimetype="text/plain")
    if name == f"rendered/{serial}.cfg":  # an inventory template, rendered on request
        return rendered_response(serial)
    return _serve("configs", name, serial)


@bp.route("/files/<path:name>", methods=["GET", "HEAD"])
def files(name: str) -> Response:
    """A guestshell tarball, python script or other file from files/."""
    return _serve("files", name)


@bp.route("/configs/rendered/<serial>.cfg", methods=["GET", "HEAD"])
def rendered_config(serial: str) -> Response:
    """The rendered day-0 config of ``serial``; 403 when SIGNED_CONFIG_URLS requires a signed URL."""
    return unsigned_refusal(f"rendered/{serial}.cfg") or rendered_response(serial)


def rendered_response(serial: str) -> Response:
    """Render ``serial``'s day-0 template (or the config its source of truth rendered) and answer it;
    404 with the reason when it cannot be."""
    try:
        day0 = ops.render_day0(get_sessions(), get_config(), serial)
    except Day0Error as exc:
        log.warning("configs/rendered/%s.cfg to %s: %s", serial, request.remote_addr, exc)
        return Response(f"day-0 config error: {exc}\n", status=404, mimetype="text/plain")
    if not day0.name.startswith("rendered/"):  # static or default: served under its own name
        return Response(f"{serial} has no day-0 template; its config is /configs/{day0.name}\n",
                        status=404, mimetype="text/plain")
    log.info("download %s configs/rendered/%s.cfg to %s (SN %s): rendered, %d bytes", request.method, serial,
             request.remote_addr, serial, len(day0.text.encode()))
    response = Response(day0.text, mimetype="application/octet-stream")
    response.headers["Content-MD5-Hex"] = day0.md5
    return response
