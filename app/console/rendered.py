"""``/configs/rendered/<SN>.cfg``: the inventory template of a device, rendered on request.

Device-facing (no login), like /configs. The workflow hands this URL out in
config-upgrade when the device has no static ``configs/<SN>.cfg`` and its
inventory row names a template. An error (missing variable...) answers 404
with the reason: never a half-rendered config.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from app import get_config, get_sessions
from app import operator as op
from app.day0 import Day0Error

bp = Blueprint("rendered", __name__)
log = logging.getLogger("pnp.files")


@bp.route("/configs/rendered/<serial>.cfg", methods=["GET", "HEAD"])
def rendered_config(serial: str) -> Response:
    """The rendered day-0 config of ``serial``; 403 when SIGNED_CONFIG_URLS requires a signed URL."""
    from app.files.routes import unsigned_refusal

    return unsigned_refusal(f"rendered/{serial}.cfg") or rendered_response(serial)


def rendered_response(serial: str) -> Response:
    """Render ``serial``'s day-0 template and answer it; 404 with the reason when it cannot be."""
    try:
        day0 = op.render_day0(get_sessions(), get_config(), serial)
    except Day0Error as exc:
        log.warning("configs/rendered/%s.cfg to %s: %s", serial, request.remote_addr, exc)
        return Response(f"day-0 config error: {exc}\n", status=404, mimetype="text/plain")
    if day0.source != "template":
        return Response(f"{serial} has no day-0 template; its config is /configs/{day0.name}\n",
                        status=404, mimetype="text/plain")
    log.info("%s configs/rendered/%s.cfg to %s", request.method, serial, request.remote_addr)
    response = Response(day0.text, mimetype="application/octet-stream")
    response.headers["Content-MD5-Hex"] = day0.md5
    return response
