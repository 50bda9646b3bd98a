"""``/images/<f>``, ``/configs/<f>``, ``/files/<f>``: files devices download.

Streamed from disk by Werkzeug (Content-Length, HEAD, Range, conditional
GET; gunicorn uses sendfile), so memory stays flat for a 1 GB image. Names
are joined with ``safe_join``: nothing outside the three folders is served,
nor hidden files such as ``images/.md5-cache.json``. With
``X_ACCEL_REDIRECT_PREFIX`` set, the response only names the file and nginx
streams it (see deploy/nginx.conf).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request, send_file
from werkzeug.security import safe_join

from app import get_config, metrics

bp = Blueprint("files", __name__)
log = logging.getLogger("pnp.files")
AREAS = ("images", "configs", "files")


def _serve(area: str, name: str) -> Response:
    config = get_config()
    folder = getattr(config, f"{area}_dir")
    if any(part.startswith(".") for part in name.split("/")):
        abort(404)
    path = safe_join(str(folder), name)
    if path is None:
        abort(404)
    from pathlib import Path

    if not Path(path).is_file():
        abort(404)
    log.info("%s %s/%s to %s (range %s)", request.method, area, name, request.remote_addr,
             request.headers.get("Range", "-"))
    if config.x_accel_redirect_prefix:
        response = Response(status=200)
        response.headers["X-Accel-Redirect"] = f"{config.x_accel_redirect_prefix}/{area}/{name}"
        response.headers["Content-Type"] = "application/octet-stream"
        if request.method == "GET":
            metrics.FILE_BYTES.labels(area, "x-accel-redirect").inc(Path(path).stat().st_size)
        return response
    response = send_file(path, conditional=True, max_age=0, etag=True,
                         mimetype="application/octet-stream")
    if request.method == "GET" and response.status_code in (200, 206):
        metrics.FILE_BYTES.labels(area, "direct").inc(response.content_length or 0)
    return response


@bp.route("/images/<path:name>", methods=["GET", "HEAD"])
def images(name: str) -> Response:
    """An IOS-XE image from images/."""
    return _serve("images", name)


@bp.route("/configs/<path:name>", methods=["GET", "HEAD"])
def configs(name: str) -> Response:
    """A day-0 config from configs/."""
    return _serve("configs", name)


@bp.route("/files/<path:name>", methods=["GET", "HEAD"])
def files(name: str) -> Response:
    """A guestshell tarball, python script or other file from files/."""
    return _serve("files", name)
