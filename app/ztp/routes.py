"""``/ztp_fetch/<mode>/<vci>/<mac>``: Juniper ZTP config and image downloads.

The DHCP helper puts ``ztp_fetch/conf/<VCI>/<aa-bb-cc-dd-ee-ff>.conf`` into
option 43 sub-option 1; Junos prefixes ``/`` (a name that already starts with
``/`` arrives as ``//ztp_fetch/...``, which :class:`LeadingSlashes` folds).
Modes: ``conf`` (config or ``#!`` script per MAC) and ``image`` (official
image per model; ``/ztp_fetch/image/<vci>/<mac>/<official-name>`` keeps the
official name as last path segment, docs/protocol.md §16.6).

``/ztp_fetch_image/<file>`` is the image path of the nginx+Django set-ups
this server replaces: it serves ``images/<file>`` and records the download in
the history of the Juniper device last seen at (or reserved for) the client's address.

Every GET is recorded in the device's history when it starts and when the
response is closed, with the bytes sent and whether that was the whole file
(app.ztp.service): a device is done only after a complete config and, when it
has an image, a complete image. With ``X_ACCEL_REDIRECT_PREFIX`` nginx sends
the bytes and the hand-off is counted as complete (nginx does not report back).

Answers: 200 with the file (``Content-Disposition: attachment``,
``X-Accel-Buffering: no``; with ``X_ACCEL_REDIRECT_PREFIX`` set, static files
go through nginx ``X-Accel-Redirect``, see deploy/nginx.conf); 400 for a bad
MAC or VCI; 404 when there is no config/image or its template cannot be rendered.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.config import get_config
from app.files.serving import device_gate, file_response
from app.sot import writeback
from app.storage.db import get_sessions
from app.storage.errors import classify
from app.storage.models import DeviceState
from app.ztp import juniper, service
from app.ztp.token import token_matches

bp = Blueprint("ztp", __name__)
log = logging.getLogger("pnp.ztp")


device_gate(bp, log, prune=True)


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


class _Counted:
    """A WSGI response iterable that counts the bytes it yields and reports them once, when closed.

    The WSGI server closes the iterable after the last byte or when the client
    went away; ``done(sent)`` runs then (outside the request context).
    """

    def __init__(self, inner, done) -> None:
        self.inner = inner
        self.done = done
        self.sent = 0
        self.closed = False
        # counting costs gunicorn its sendfile: read the file in 1 MiB blocks instead of 8 KiB
        for attr in ("blksize", "buffer_size"):  # gunicorn's / Werkzeug's FileWrapper
            if isinstance(getattr(inner, attr, None), int):
                setattr(inner, attr, 1 << 20)

    def __iter__(self):
        for chunk in self.inner:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)


def _complete(response: Response, sent: int, size: int | None) -> bool:
    """Whether ``sent`` bytes of this response delivered the file to its end."""
    if response.status_code == 200:
        return size is None or sent >= size
    if response.status_code == 206 and response.content_range is not None and size is not None:
        rng = response.content_range
        return rng.stop is not None and rng.stop >= size and sent >= (rng.stop - (rng.start or 0))
    return False


def _track(response: Response, req, what: str, size: int | None, needs_image: bool) -> Response:
    """Record the end of the download when the response is closed (size and completion)."""
    sessions = get_sessions()
    if response.headers.get("X-Accel-Redirect"):
        _transfer(sessions, req, what=what + " (sent by nginx)", sent=size or 0, size=size, complete=True,
                  needs_image=needs_image)
        return response
    if response.status_code not in (200, 206):
        return response

    def done(sent: int) -> None:
        _transfer(sessions, req, what=what, sent=sent, size=size, complete=_complete(response, sent, size),
                  needs_image=needs_image)

    response.response = _Counted(response.response, done)
    return response


def _transfer(sessions, req, **details) -> None:
    try:
        service.record_transfer(sessions, req, **details)
    except SQLAlchemyError as exc:
        log.error("ztp %s %s: database unavailable, end of download not recorded: %s", req.mode, req.mac,
                  exc.__class__.__name__)


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
    own_image = (row.get("image") or "").strip() or None
    # the inventory is the source of truth: its model's image counts even when the VCI names another model
    row_model = (row.get("model") or "").strip().lower()
    needs_image = bool(own_image or config.juniper_models.get(req.model) or config.juniper_models.get(row_model))
    mismatch = service.vci_mismatch(req, row) if row else None
    try:
        if req.mode == "image":
            path = juniper.choose_image(req, config.juniper_models, config.images_dir, own_image)
            response = _file_response(path, None, path.name, f"images/{path.name}")
            size = path.stat().st_size
            what, image = f"image {path.name}", path.name
        else:
            choice = juniper.choose_config(req, config.juniper_configs_dir, inventory)
            kind = "script" if choice.script else "Junos config"
            accel = f"configs/juniper/{choice.path.name}" if choice.path is not None else None
            response = _file_response(choice.path, choice.body, f"{req.mac_dashed}.conf", accel)
            size = len(choice.body) if choice.body is not None else choice.path.stat().st_size
            what, image = f"{kind} from {choice.source}", None
    except juniper.ZtpError as exc:
        response = _text(exc.status, str(exc))
        if record:  # an unknown MAC (no row, not in the inventory) gets no row: only a log line
            _record(req, error=str(exc), status=exc.status, hostname=hostname, create=bool(row))
            _writeback(req.mac, response)
        return response
    if record:
        _record(req, served=f"{what} ({size} bytes)", hostname=hostname, image=image, mismatch=mismatch)
        response = _track(response, req, what, size, needs_image)
        _writeback(req.mac, response)
    return response


def _writeback(mac: str, response: Response) -> None:
    """The source-of-truth status write-back of the device (app/sot/writeback.py), queued and sent once the
    response is closed: after the end of the download is recorded, so a complete fetch counts."""
    sessions, config = get_sessions(), get_config()
    state = current_app.extensions.setdefault("sot_writeback", {})

    def after() -> None:
        drain = writeback.after_message(sessions, config, mac, state)
        if drain is not None:
            drain()
    if writeback.enabled(config):
        response.call_on_close(after)


@bp.route("/ztp_fetch_image/<name>", methods=["GET", "HEAD"])
def ztp_fetch_image(name: str) -> Response:
    """``/ztp_fetch_image/<file>``: the image URL of nginx+Django ZTP set-ups, kept for migrations.

    Serves ``images/<file>`` (404 for a name with a path or a missing file).
    The download is recorded for the Juniper device whose last fetch came from
    the client's address, else for the inventory row reserving that address
    (the URL names no MAC); an unknown address is served and only logged.
    """
    config = get_config()
    path = config.images_dir / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return _text(404, f"image {name} is missing from images/")
    response = _file_response(path, None, path.name, f"images/{path.name}")
    if request.method != "GET":
        return response
    try:
        with get_sessions()() as session:
            device = session.scalars(select(DeviceState).where(
                DeviceState.vendor == "juniper", DeviceState.ip_address == request.remote_addr)
                .order_by(DeviceState.last_contact.desc()).limit(1)).first()
            known = (device.mac_address, device.vci or f"Juniper-{device.pid}") if device is not None else None
    except SQLAlchemyError as exc:
        log.error("ztp_fetch_image: database unavailable, fetch not recorded: %s", exc.__class__.__name__)
        return response
    if known is None:  # never seen: the reservation of the inventory (its ip column) names the device
        try:
            rows = juniper.read_inventory_csv(config.juniper_inventory_path)
        except ValueError:
            rows = []
        reserved = next((r for r in rows if r.get("mac") and r.get("ip") == request.remote_addr), None)
        if reserved is not None:
            known = (reserved["mac"], f"Juniper-{(reserved.get('model') or 'device').lower()}")
    if known is None or not known[0]:
        log.info("ztp_fetch_image %s from %s: no Juniper device known at that address", name, request.remote_addr)
        return response
    try:
        req = juniper.parse_request("image", known[1], known[0], config.juniper_models.keys(), name)
    except juniper.ZtpError:
        return response
    size = path.stat().st_size
    _record(req, served=f"image {name} ({size} bytes) via /ztp_fetch_image", image=name)
    return _track(response, req, f"image {name}", size, needs_image=True)


def _record(req, **details) -> None:
    """Record the fetch in the device's history; a database outage only loses the record
    (the device still gets its file or its 4xx, never a 5xx). Any other database error
    is logged as what it is and the record tried once more, ASCII-only (app/storage/fit.py)."""
    for ascii_only in (False, True):
        try:
            service.record_fetch(get_sessions(), req, request.remote_addr, ascii_only=ascii_only,
                                 **details)
            return
        except SQLAlchemyError as exc:
            fault = classify(exc)
            if fault.outage:
                log.error("ztp %s %s: database unavailable, fetch not recorded: %s", req.mode,
                          req.mac, fault)
                return
            log.error("ztp %s %s: database error, not an outage (%s)%s", req.mode, req.mac, fault,
                      "; trying once more with ASCII-only text" if not ascii_only else
                      "; fetch not recorded")
