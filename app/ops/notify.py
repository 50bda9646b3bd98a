"""Webhooks: device error, device finished, device stalled, sync failure — queued in the
database, signed with HMAC-SHA256, retried with backoff.

* Events are queued in the same transaction that changes the device: a
  ``before_flush`` hook on the application's sessions (or, for the Core row write of a PnP
  message, app/storage/hooks.py: :func:`device_changed`) sees a device row whose
  ``state`` becomes an error (ERROR, BOOTFLASH_NO_SPACE, ZTP_ERROR) or done
  (FINISHED, ZTP_CONFIG_FETCHED) and adds one ``webhook_delivery`` row per
  subscribed webhook (a transactional outbox: no event without its change, no
  change without its event). Stalled devices (silent longer than
  STALLED_AFTER) are found by ``queue_stalled``, once per silence
  (``dedupe_key``). Other parts report a failed source-of-truth sync with
  ``enqueue(sessions, "sync_failure", ...)``.
* ``deliver_due`` claims due rows with one conditional UPDATE each (so any
  number of workers and hosts deliver each row once), POSTs them, and marks
  them delivered, or pending again after WEBHOOK_BACKOFF, or failed after
  WEBHOOK_MAX_ATTEMPTS. ``Dispatcher`` runs it in a thread of each server process.
* Signature: ``X-PNP-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``
  with ``X-PNP-Timestamp: <unix seconds>`` (the scheme Stripe and Slack use:
  the receiver recomputes it and rejects old timestamps). ``verify`` does it.
* Presets: ``json`` (the event as JSON), ``slack`` (``{"text": …}``, what a Slack
  incoming webhook takes), ``teams`` (a MessageCard, what a Microsoft Teams
  incoming webhook takes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlparse

import requests
from sqlalchemy import event as sa_event
from sqlalchemy import inspect, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.observability.metrics import count_failure
from app.ops.errors import ActionError, NotFound
from app.ops.lifecycle import DONE, PARKED, silent_since
from app.ops.monitoring import failure_kind
from app.storage import hooks
from app.storage.db import utcnow
from app.storage.errors import classify
from app.storage.models import DeviceState, Webhook, WebhookDelivery

log = logging.getLogger("pnp.webhook")
failures_log = logging.getLogger("pnp.failure")
EVENTS = ("device_error", "device_finished", "device_stalled", "sync_failure")
PRESETS = ("json", "slack", "teams")
TITLES = {"device_error": "Device failed", "device_finished": "Device provisioned",
          "device_stalled": "Device stalled", "sync_failure": "Source-of-truth sync failed"}


# --- webhooks -----------------------------------------------------------------------------------


#: what a webhook URL must look like (http or https with a host); the API schema uses it too
URL_PATTERN = r"^https?://[^/?# \t\n\r\f\v]+"  # spelled out: \s differs in Python and JSON Schema


def _check(url: str, events: list[str], preset: str) -> None:
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ActionError("the URL must be http:// or https:// with a host")
    unknown = set(events) - set(EVENTS)
    if not events or unknown:
        raise ActionError(f"events: one or more of {', '.join(EVENTS)}")
    if preset not in PRESETS:
        raise ActionError(f"preset: one of {', '.join(PRESETS)}")


def webhook_dict(hook: Webhook) -> dict:
    """The public view of a webhook (the secret included: the receiver needs it)."""
    return {"id": hook.id, "name": hook.name, "url": hook.url, "events": hook.events.split(","),
            "preset": hook.preset, "secret": hook.secret, "enabled": hook.enabled,
            "created_at": hook.created_at}


def add_webhook(sessions: sessionmaker[Session], name: str, url: str, events: list[str],
                preset: str = "json", secret: str | None = None) -> dict:
    """Create a webhook; a random secret when none is given. Raises ActionError."""
    _check(url, events, preset)
    hook = Webhook(name=(name or url)[:64], url=url[:1024], events=",".join(events), preset=preset,
                   secret=secret or secrets.token_hex(32), enabled=True, created_at=utcnow())
    with sessions.begin() as session:
        session.add(hook)
        session.flush()
        return webhook_dict(hook)


def list_webhooks(sessions: sessionmaker[Session]) -> list[dict]:
    """Every webhook, oldest first."""
    with sessions() as session:
        return [webhook_dict(h) for h in session.scalars(select(Webhook).order_by(Webhook.id))]


def remove_webhook(sessions: sessionmaker[Session], hook_id: int) -> None:
    """Delete a webhook and its queue. Raises NotFound."""
    with sessions.begin() as session:
        hook = session.get(Webhook, hook_id)
        if hook is None:
            raise NotFound(f"no webhook {hook_id}")
        session.delete(hook)


def list_deliveries(sessions: sessionmaker[Session], limit: int = 50) -> list[dict]:
    """The newest deliveries (the delivery log)."""
    with sessions() as session:
        rows = session.execute(select(WebhookDelivery, Webhook.name).join(Webhook)
                               .order_by(WebhookDelivery.id.desc()).limit(limit)).all()
    return [{"id": d.id, "webhook": name, "event": d.event, "serial": d.serial, "status": d.status,
             "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
             "created_at": d.created_at, "delivered_at": d.delivered_at,
             "next_attempt_at": d.next_attempt_at} for d, name in rows]


# --- queueing -----------------------------------------------------------------------------------


def event_body(kind: str, serial: str | None, data: dict, at: datetime) -> dict:
    """The JSON event: ``{"event", "at", "serial", "title", "text", "device": {...}}``."""
    title = TITLES.get(kind, kind)
    reason = data.get("error") or data.get("reason") or ""
    text = f"{title}: {serial}" if serial else title
    if data.get("state"):
        text += f" ({data['state']})"
    if reason:
        text += f": {reason}"
    return {"event": kind, "at": at.isoformat(timespec="seconds") + "Z", "serial": serial,
            "title": title, "text": text, "device": data}


def _rows_for(session: Session, kind: str, serial: str | None, data: dict, now: datetime,
              dedupe: str | None) -> list[WebhookDelivery]:
    hooks = session.scalars(select(Webhook).where(Webhook.enabled.is_(True))).all()
    body = json.dumps(event_body(kind, serial, data, now), sort_keys=True)
    return [WebhookDelivery(webhook_id=h.id, event=kind, serial=serial, dedupe_key=dedupe, payload=body,
                            status="pending", attempts=0, next_attempt_at=now, created_at=now)
            for h in hooks if kind in h.events.split(",")]


def enqueue(sessions: sessionmaker[Session], kind: str, serial: str | None = None, data: dict | None = None,
            dedupe: str | None = None) -> int:
    """Queue event ``kind`` for every webhook that wants it; returns how many were queued
    (0 for a repeated ``dedupe`` key). Raises ActionError for an unknown kind."""
    if kind not in EVENTS:
        raise ActionError(f"unknown event {kind!r}")
    with sessions() as session:
        rows = _rows_for(session, kind, serial, data or {}, utcnow(), dedupe)
    queued = 0
    for row in rows:
        try:
            with sessions.begin() as session:
                session.add(row)
            queued += 1
        except IntegrityError:
            pass  # already queued (same dedupe key)
    return queued


def _device_data(row: DeviceState) -> dict:
    return {"serial_number": row.serial_number, "pid": row.pid, "hostname": row.hostname,
            "ip_address": row.ip_address, "vendor": row.vendor, "state": row.state,
            "failed_step": row.failed_state, "error_code": row.last_error_code,
            "error": row.last_error_message, "running_version": row.running_version}


def _before_flush(session: Session, _context, _instances) -> None:
    """Queue device_error / device_finished for device rows whose state changes now, and
    note each failure's kind (counted in pnp_workflow_failures_total after the commit):
    :func:`device_changed` for each DeviceState of the flush, from its attribute history."""
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, DeviceState):
            continue
        attrs = inspect(obj).attrs
        history = attrs.state.history
        device_changed(session, obj, history.deleted[0] if history.deleted else None,
                       bool(history.added), bool(attrs.last_error_message.history.added))


def device_changed(session: Session, row, old_state: str | None, state_set: bool, new_error: bool) -> None:
    """What a device row change queues in its transaction: the failure WARNING line (logged
    after the commit) when ``new_error`` (``last_error_message`` set), and, when ``state_set``
    moves the state from ``old_state`` (None: unknown, a new row) to an error or done state,
    its failure kind (counted after the commit) and one webhook_delivery per subscribed
    webhook (device_error, device_finished). ``row`` is an ORM DeviceState or any object with
    its columns as attributes (the Core write of app/pnp/service.py calls this through
    app/storage/hooks.py). Raises SQLAlchemy errors (the caller's transaction rolls back)."""
    if new_error:
        _note_failure(session, row, old_state if state_set else None)
    if not state_set:
        return
    new = row.state
    kind = "device_error" if new in PARKED else "device_finished" if new in DONE else None
    if kind is None or old_state == new:
        return
    if new in PARKED:
        session.info.setdefault("pnp_failures", []).append(failure_kind(
            new, row.failed_state, row.last_error_code, row.last_error_message,
            getattr(row, "error_kind", None)))
    for delivery in _rows_for(session, kind, row.serial_number, _device_data(row), utcnow(), None):
        session.add(delivery)


def _note_failure(session: Session, row, old_state: str | None) -> None:
    """A new error recorded on a device: one WARNING line with the step and the reason
    (logged once the change is committed). This is the one WARNING of a failure: the
    services log the exchange itself at INFO. ``old_state``: the state before this change
    (None when it did not change)."""
    if not row.last_error_message:
        return
    step = row.failed_state or old_state or row.state
    parked = row.state in PARKED
    kind = failure_kind(row.state, row.failed_state, row.last_error_code, row.last_error_message,
                        getattr(row, "error_kind", None)) if parked else None
    if row.vendor == "juniper":  # no steps: the message names the fetch (ztp-conf: …, ztp-image: …)
        where = "failed" if parked else f"problem while {step}"
    else:
        where = f"failed at {step}" if parked else f"error at {step}, will retry"
    line = (f"{row.serial_number} {where}{f' ({kind})' if kind else ''}: "
            f"{(row.last_error_code + ' ') if row.last_error_code else ''}{row.last_error_message}"
            f" (attempt {row.attempts or 0}, now {row.state})")
    session.info.setdefault("pnp_warnings", []).append(line)


def _after_commit(session: Session) -> None:
    for kind in session.info.pop("pnp_failures", ()):
        count_failure(kind)
    for line in session.info.pop("pnp_warnings", ()):
        failures_log.warning("%s", line)


def _after_rollback(session: Session) -> None:
    session.info.pop("pnp_failures", None)
    session.info.pop("pnp_warnings", None)


def install(sessions: sessionmaker[Session]) -> None:
    """Queue device events from every change made through ``sessions`` (see module doc)."""
    sa_event.listen(sessions, "before_flush", _before_flush)
    hooks.on_row_change(sessions, device_changed)  # the Core row write of the PnP messages
    sa_event.listen(sessions, "after_commit", _after_commit)
    sa_event.listen(sessions, "after_soft_rollback", lambda session, _tx: _after_rollback(session))


def queue_stalled(sessions: sessionmaker[Session], config: Config, now: datetime | None = None) -> int:
    """Queue device_stalled once per silence for devices not done, not parked and silent
    longer than STALLED_AFTER; returns how many events were queued."""
    now = now or utcnow()
    with sessions() as session:
        if not session.scalars(select(Webhook.id).where(Webhook.enabled.is_(True),
                                                        Webhook.events.like("%device_stalled%"))).first():
            return 0
        rows = session.scalars(select(DeviceState).where(
            DeviceState.state.not_in(PARKED + DONE),
            DeviceState.last_contact < silent_since(config, now)).limit(1000)).all()
    queued = 0
    for row in rows:
        data = {**_device_data(row), "reason": f"silent since {row.last_contact:%Y-%m-%d %H:%M:%S} UTC"}
        queued += enqueue(sessions, "device_stalled", row.serial_number, data,
                          dedupe=f"stalled:{row.serial_number}:{row.last_contact:%Y%m%d%H%M%S}")
    return queued


# --- delivery -----------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>.<body>"`` with the webhook's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, max_age: int = 300,
           now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        age = abs((now or time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= max_age and hmac.compare_digest(sign(secret, timestamp, body), signature)


def render(preset: str, event: dict) -> dict:
    """The body for ``preset``: the event itself, Slack's ``{"text"}`` or a Teams MessageCard."""
    if preset == "slack":
        return {"text": f"*{event['title']}* {event['text']}"}
    if preset == "teams":
        facts = [{"name": k, "value": str(v)} for k, v in (event.get("device") or {}).items() if v]
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions",
                "summary": event["title"], "themeColor": "B00020" if "error" in event["event"] else "1B7F3B",
                "title": event["title"], "text": event["text"], "sections": [{"facts": facts}]}
    return event


def _claim(sessions: sessionmaker[Session], delivery_id: int, now: datetime, lease: int) -> bool:
    with sessions.begin() as session:
        return session.execute(
            update(WebhookDelivery).where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now))
            .values(locked_until=now + timedelta(seconds=lease), attempts=WebhookDelivery.attempts + 1)
        ).rowcount == 1


def _post(config: Config, hook: Webhook, delivery: WebhookDelivery) -> tuple[int | None, str | None]:
    event = json.loads(delivery.payload)
    body = json.dumps(render(hook.preset, event)).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "pnp-server-webhook",
               "X-PNP-Event": delivery.event, "X-PNP-Delivery": str(delivery.id),
               "X-PNP-Timestamp": timestamp, "X-PNP-Signature": sign(hook.secret, timestamp, body)}
    try:
        response = requests.post(hook.url, data=body, headers=headers, timeout=config.webhook_timeout,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{exc.__class__.__name__}: {str(exc)[:300]}"
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:300]}"


def deliver_due(sessions: sessionmaker[Session], config: Config, limit: int = 20) -> int:
    """Deliver up to ``limit`` due deliveries; returns how many were attempted."""
    now = utcnow()
    with sessions() as session:
        due = session.execute(select(WebhookDelivery, Webhook).join(Webhook).where(
            WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at).limit(limit)).all()
    attempted = 0
    for delivery, hook in due:
        if not _claim(sessions, delivery.id, now, config.webhook_timeout + 30):
            continue  # another worker has it
        attempted += 1
        status, error = _post(config, hook, delivery)
        attempts = delivery.attempts + 1
        values = {"last_status": status, "last_error": error, "locked_until": None}
        if error is None:
            values.update(status="delivered", delivered_at=utcnow())
            log.info("webhook %s: %s %s delivered (HTTP %s, attempt %d)", hook.name, delivery.event,
                     delivery.serial or "", status, attempts)
        elif attempts >= config.webhook_max_attempts:
            values.update(status="failed")
            log.warning("webhook %s: %s %s failed for good after %d attempts: %s", hook.name,
                        delivery.event, delivery.serial or "", attempts, error)
        else:
            backoff = config.webhook_backoff[min(attempts - 1, len(config.webhook_backoff) - 1)]
            values.update(next_attempt_at=utcnow() + timedelta(seconds=backoff))
            log.warning("webhook %s: %s %s attempt %d failed (%s); retry in %d s", hook.name,
                        delivery.event, delivery.serial or "", attempts, error, backoff)
        with sessions.begin() as session:
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values))
    return attempted


class Dispatcher:
    """A daemon thread of one server process: every WEBHOOK_POLL seconds deliver what is due,
    every minute look for stalled devices. Safe with any number of processes (claims)."""

    def __init__(self, sessions: sessionmaker[Session], config: Config) -> None:
        self.sessions, self.config = sessions, config
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pnp-webhooks", daemon=True)
        self._last_stalled = 0.0

    def start(self) -> Dispatcher:
        self.thread.start()
        return self

    def _any_webhook(self) -> bool:
        """Whether any webhook is enabled, asked at most every 10 s (a server without
        webhooks then costs one small query per 10 s and worker, not one per poll)."""
        now = time.monotonic()
        if now - self._checked >= 10:
            self._checked = now
            with self.sessions() as session:
                self._hooks = session.scalars(select(Webhook.id).where(Webhook.enabled.is_(True))).first() \
                    is not None
        return self._hooks

    def _run(self) -> None:
        self._checked, self._hooks = -1e9, False
        while not self.stop.wait(self.config.webhook_poll):
            try:
                if not self._any_webhook():
                    continue
                if time.monotonic() - self._last_stalled >= 60:
                    self._last_stalled = time.monotonic()
                    queue_stalled(self.sessions, self.config)
                while deliver_due(self.sessions, self.config):
                    pass
            except SQLAlchemyError as exc:  # a database outage or error must not end the thread
                fault = classify(exc)
                what = "database unavailable" if fault.outage else f"database error ({fault})"
                log.warning("webhook dispatcher: %s, trying again", what)
            except Exception:  # noqa: BLE001 - nor a bug: it is logged with its traceback
                log.exception("webhook dispatcher: unexpected error, trying again")


def init_app(app, config: Config) -> None:
    """Queue device events from the app's sessions and, with WEBHOOK_DISPATCHER, start the
    delivery thread of this process at its first request (gunicorn forks workers after
    ``create_app``; a thread started before the fork would not survive it)."""
    sessions = app.extensions["pnp_sessions"]
    install(sessions)
    if not config.webhook_dispatcher:
        return
    lock = threading.Lock()

    def start_once() -> None:
        if "pnp_dispatcher" in app.extensions or app.testing:
            return
        with lock:
            if "pnp_dispatcher" not in app.extensions:
                app.extensions["pnp_dispatcher"] = Dispatcher(sessions, config).start()

    app.before_request(start_once)


def queue_test(sessions: sessionmaker[Session], hook_id: int) -> None:
    """Queue a ``test`` event for one webhook (the console's "send a test" button). Raises NotFound."""
    now = utcnow()
    with sessions.begin() as session:
        if session.get(Webhook, hook_id) is None:
            raise NotFound(f"no webhook {hook_id}")
        body = json.dumps(event_body("test", None, {"reason": "a test from the PnP server console"}, now))
        session.add(WebhookDelivery(webhook_id=hook_id, event="test", payload=body, status="pending",
                                    attempts=0, next_attempt_at=now, created_at=now))
