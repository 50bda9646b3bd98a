"""Webhooks from NetBox / Nautobot: verify the HMAC signature, re-sync the changed device, push Kea.

NetBox and Nautobot sign a webhook's body with the secret configured on the
webhook: header ``X-Hook-Signature`` = hex HMAC-SHA512 of the raw body
(NetBox docs "Webhooks", Nautobot docs "Webhooks"). The body is JSON
``{"event": "created|updated|deleted", "model": "device", "data": {...}}``.

* ``device``: that device is re-synced (app/sot/sync.py sync_device), or
  removed when deleted (never while mid-provisioning);
* ``interface``, ``ipaddress`` and other models: the device they belong to when
  the payload names one, else a full sync;
* with ``SOT_DHCP_PUSH`` the reservations are then pushed to the running Kea
  (config-test before config-set, app/dhcp/kea_api.py), as NetBox→Kea tools do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.dhcp import KeaControl, KeaError, KeaOptions, kea_push
from app.ops.dhcp import spec_from_config
from app.sot.sources import SourceError, make_source, reservation_rows
from app.sot.sync import SyncResult, sync, sync_device

log = logging.getLogger("pnp.sot")
SIGNATURE_HEADER = "X-Hook-Signature"


class WebhookError(ValueError):
    """A webhook that is refused: ``status`` 400 (bad body), 403 (bad signature) or 409 (not configured)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class WebhookResult:
    """What a webhook did: the sync's report lines and the Kea push outcome ("" = none)."""

    model: str
    event: str
    sot_id: str | None
    sync: SyncResult
    dhcp: str = ""
    lines: list[str] = field(default_factory=list)


def signature_ok(secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the hex HMAC-SHA512 of ``body`` under ``secret`` (constant time)."""
    if not secret or not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def _device_id(model: str, data: Mapping) -> str | None:
    """The id of the device a changed object belongs to (None: unknown, sync everything)."""
    if model == "device":
        return str(data["id"]) if data.get("id") is not None else None
    for path in (("device",), ("assigned_object", "device"), ("interface", "device")):
        value = data
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping) and value.get("id") is not None:
            return str(value["id"])
    return None


def parse(body: bytes) -> tuple[str, str, Mapping]:
    """``(model, event, data)`` of a webhook body. Raises WebhookError(400)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), Mapping):
        raise WebhookError(400, 'the body must be {"event": ..., "model": ..., "data": {...}}')
    model = str(payload.get("model") or "").lower().rpartition(".")[2]
    event = str(payload.get("event") or "").lower()
    return model, event, payload["data"]


def push_dhcp(config: Config, source) -> str:
    """Push the source's reservations into the running Kea (config-test first). Returns a one-line outcome."""
    try:
        spec = spec_from_config(config, reservation_rows(source))
        kea_push(KeaControl(config.kea_control_socket), spec, KeaOptions(hooks_dir=config.kea_hooks_dir or None))
    except KeaError as exc:
        return f"Kea refused the reservations ({exc}): nothing applied"
    except (OSError, ValueError, SourceError) as exc:
        return f"Kea push failed: {exc}"
    return f"Kea at {config.kea_control_socket}: reservations applied and written"


def handle(sessions: sessionmaker[Session], config: Config, body: bytes, signature: str | None,
           source=None) -> WebhookResult:
    """Verify and act on one webhook. Raises WebhookError (409/403/400) or SourceError (source unreachable)."""
    if not signature:  # an unsigned request is refused before anything about the set-up is told
        raise WebhookError(403, f"{SIGNATURE_HEADER} is missing")
    if config.inventory_source not in ("netbox", "nautobot"):
        raise WebhookError(409, "INVENTORY_SOURCE is not netbox or nautobot: webhooks are not used")
    if not config.sot_webhook_secret:
        raise WebhookError(409, "no webhook secret configured (PNP_SOT_WEBHOOK_SECRET): webhooks are refused")
    if not signature_ok(config.sot_webhook_secret, body, signature):
        raise WebhookError(403, f"{SIGNATURE_HEADER} is missing or does not match the body")
    model, event, data = parse(body)
    source = source or make_source(config)
    sot_id = _device_id(model, data)
    if sot_id is None:
        result = sync(sessions, config, source)
    else:
        result = sync_device(sessions, config, source, sot_id, deleted=(model == "device" and event == "deleted"))
    out = WebhookResult(model, event, sot_id, result, lines=result.lines())
    if config.sot_dhcp_push:
        out.dhcp = push_dhcp(config, source)
        out.lines.append(out.dhcp)
    log.info("webhook %s %s %s: %s", model, event, sot_id or "(all)", "; ".join(out.lines))
    return out
