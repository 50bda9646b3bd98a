"""One way to answer a file download: streamed by Werkzeug, or handed to nginx.

Used by every device-facing download (``/images``, ``/configs``, ``/files``,
``/ztp_fetch``). Werkzeug's ``send_file`` answers Content-Length, HEAD, Range
and conditional GET, and gunicorn uses sendfile, so memory stays flat for a
1 GB image. With ``X_ACCEL_REDIRECT_PREFIX`` set the response only names the
file (``X-Accel-Redirect: <prefix>/<relative path>``) and nginx streams it
(see deploy/nginx.conf).
"""

from __future__ import annotations

from pathlib import Path

from flask import Response, send_file

OCTET_STREAM = "application/octet-stream"


def file_response(path: Path, relative: str, accel_prefix: str = "") -> tuple[Response, str]:
    """The response for the file at ``path`` and how its bytes leave: ``direct`` or ``x-accel-redirect``.

    ``relative`` is the file's path below the project root as nginx's internal
    location knows it (``images/<name>``, ``configs/juniper/<file>``);
    ``accel_prefix`` is X_ACCEL_REDIRECT_PREFIX ("" = stream it ourselves).
    """
    if accel_prefix:
        response = Response(status=200)
        response.headers["X-Accel-Redirect"] = f"{accel_prefix}/{relative}"
        response.headers["Content-Type"] = OCTET_STREAM
        return response, "x-accel-redirect"
    return (send_file(path, conditional=True, max_age=0, etag=True, mimetype=OCTET_STREAM),
            "direct")
