"""One way to answer a file download: streamed by Werkzeug, or handed to nginx.

Used by every device-facing download (``/images``, ``/configs``, ``/files``,
``/ztp_fetch``). Werkzeug's ``send_file`` answers Content-Length, HEAD, Range
and conditional GET, and gunicorn uses sendfile, so memory stays flat for a
1 GB image. With ``X_ACCEL_REDIRECT_PREFIX`` set the response only names the
file (``X-Accel-Redirect: <prefix>/<relative path>``) and nginx streams it
(see deploy/nginx.conf).
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from zlib import adler32

from flask import Blueprint, Response, current_app, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from app.common.gate import device_refusal
from app.config import get_config

OCTET_STREAM = "application/octet-stream"
#: the WSGI environ key of a download's CountingFile (read by the access log)
DOWNLOAD_ENVIRON_KEY = "pnp.download"


class CountingFile(io.RawIOBase):
    """A read-only file that reports, when closed, how many body bytes left through it.

    gunicorn sends the file with ``socket.sendfile``, which moves the file
    position to the end of what was actually sent (also when the client goes
    away part-way); Werkzeug's Range wrapper and gunicorn's fallback read it
    block by block. So the bytes sent are the final position minus the start
    of the body (the Range start, or 0), capped at the body length: a download
    cut after 10 MB counts 10 MB, not the Content-Length. ``on_close(sent,
    length)`` is called once, with ``length`` the body bytes the response
    announced (0 for HEAD and 304). ``sent`` can be read at any time: gunicorn's
    access log reads it (app/cli/server.py) before the response is closed,
    because gunicorn's own count stays 0 on its sendfile path.
    """

    def __init__(self, path: Path, on_close: Callable[[int, int], None]):
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server through close()
        self._on_close = on_close
        self.body_start, self.body_length = 0, None
        self._end = 0  # the furthest position the file reached: where the sent bytes end

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fh.fileno()

    def readinto(self, buffer) -> int:
        n = self._fh.readinto(buffer)
        self._end = max(self._end, self._fh.tell())
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._end = max(self._end, self._fh.tell())
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._fh.seek(offset, whence)
        self._end = max(self._end, position)
        return position

    def tell(self) -> int:
        return self._fh.tell()

    @property
    def sent(self) -> int:
        """Body bytes that left through this file so far."""
        sent = max(0, self._end - self.body_start)
        return sent if self.body_length is None else min(sent, self.body_length)

    def close(self) -> None:
        if self.closed:
            return
        sent = self.sent
        try:
            self._fh.close()
        finally:
            super().close()
        self._on_close(sent, self.body_length or 0)


def file_response(path: Path, relative: str, accel_prefix: str = "",
                  on_sent: Callable[[int, int], None] | None = None) -> tuple[Response, str]:
    """The response for the file at ``path`` and how its bytes leave: ``direct`` or ``x-accel-redirect``.

    ``relative`` is the file's path below the project root as nginx's internal
    location knows it (``images/<name>``, ``configs/juniper/<file>``);
    ``accel_prefix`` is X_ACCEL_REDIRECT_PREFIX ("" = stream it ourselves).
    ``on_sent(sent, length)`` (direct only) is called when the response is closed,
    with the body bytes actually sent and those announced (see :class:`CountingFile`).
    """
    if accel_prefix:
        response = Response(status=200)
        response.headers["X-Accel-Redirect"] = f"{accel_prefix}/{relative}"
        response.headers["Content-Type"] = OCTET_STREAM
        return response, "x-accel-redirect"
    if on_sent is None:
        return (send_file(path, conditional=True, max_age=0, etag=True, mimetype=OCTET_STREAM),
                "direct")
    return _counted_response(path, on_sent), "direct"


def _counted_response(path: Path, on_sent: Callable[[int, int], None]) -> Response:
    """What ``send_file(path, conditional=True, max_age=0, etag=True)`` answers (Content-Length,
    ETag, Last-Modified, Range, 304), with the body read through a :class:`CountingFile`."""
    stat = os.stat(path)
    body = CountingFile(path, on_sent)
    request.environ[DOWNLOAD_ENVIRON_KEY] = body
    response = Response(wrap_file(request.environ, body), mimetype=OCTET_STREAM, direct_passthrough=True)
    response.content_length = stat.st_size
    response.last_modified = stat.st_mtime
    response.cache_control.no_cache = True
    response.cache_control.max_age = 0
    response.expires = int(time.time())
    response.set_etag(f"{stat.st_mtime}-{stat.st_size}-{adler32(str(path).encode()) & 0xFFFFFFFF}")
    try:
        response = response.make_conditional(request.environ, accept_ranges=True,
                                             complete_length=stat.st_size)
    except RequestedRangeNotSatisfiable:
        body.close()
        raise
    if response.status_code == 206 and response.content_range is not None:
        body.body_start = response.content_range.start or 0
    body.body_length = response.content_length if response.status_code in (200, 206) else 0
    if response.status_code not in (200, 206) or request.method == "HEAD":
        body.body_length = 0
    return response


def device_gate(bp: Blueprint, log: logging.Logger, *, open_paths: tuple[str, ...] = (),
                prune: bool = False) -> None:
    """Guard a device-facing blueprint: a client outside DEVICE_NETWORKS gets a 403 with the
    reason (app/common/gate.py), except on ``open_paths``; with ``prune`` each answered request
    also starts the periodic prune when it is due (app/ops/retention.py; never waits for it)."""

    @bp.before_request
    def _device_networks_only():
        reason = device_refusal(get_config(), request.remote_addr)
        if reason is not None and request.path not in open_paths:
            log.warning("refused %s from %s: %s", request.path[:200], request.remote_addr, reason)
            return Response(reason + "\n", status=403, mimetype="text/plain")
        return None

    if prune:
        @bp.after_request
        def _prune_now_and_then(response: Response) -> Response:
            pruner = current_app.extensions.get("pnp_prune")
            if pruner is not None:
                pruner.maybe_start()
            return response
