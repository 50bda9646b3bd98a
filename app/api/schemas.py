"""marshmallow schemas of /api/v1: what requests may carry and what answers hold.

They are the one definition of the API: ``app/api/spec.py`` validates query
arguments and JSON bodies with them (400 with the reason per field, nothing is
clamped) and builds the OpenAPI document from them (apispec's MarshmallowPlugin).
"""

from __future__ import annotations

from marshmallow import EXCLUDE, INCLUDE, Schema, fields, validate

from app.ops import BULK_ACTIONS, MAX_PER_PAGE, SORT_COLUMNS, Lifecycle
from app.ops.accounts import ROLES, TOKEN_NAME, USER_NAME
from app.ops.lifecycle import ZTP_PROGRESS
from app.ops.notify import EVENTS as WEBHOOK_EVENTS
from app.ops.notify import PRESETS as WEBHOOK_PRESETS
from app.ops.notify import URL_PATTERN
from app.pnp.workflow import State

#: every state a device row can hold: the Cisco workflow's and Juniper ZTP's
STATES = [s.value for s in State] + list(ZTP_PROGRESS)
LIFECYCLES = [lc.value for lc in Lifecycle]
EVENT_KINDS = ["job", "response", "state", "error", "info", "reload", "unknown", "fetch", "clamped"]


def _text(**kw):
    return fields.String(allow_none=True, **kw)


class Error(Schema):
    """Every 4xx answer: ``{"error": "..."}`` (``fields`` per bad field for a validation error)."""

    error = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", keys=fields.String(), values=fields.Raw(),
                          metadata={"description": "per bad field, the reasons"})


class DeviceListQuery(Schema):
    """Filters, sort and page of a device list."""

    state = fields.String(validate=validate.OneOf(STATES), metadata={"description": "workflow or ZTP state"})
    lifecycle = fields.String(validate=validate.OneOf(LIFECYCLES))
    stalled = fields.Boolean(metadata={"description": "only stalled devices"})
    q = fields.String(validate=validate.Length(max=64),
                      metadata={"description": "substring of serial, hostname (device or inventory) or IP"})
    pid = fields.String(validate=validate.Length(max=64), metadata={"description": "PID prefix"})
    version = fields.String(validate=validate.Length(max=64), metadata={"description": "running version prefix"})
    site = fields.String(validate=validate.Length(max=64), metadata={"description": "inventory variable site"})
    template = fields.String(validate=validate.Length(max=64))
    vendor = fields.String(validate=validate.OneOf(["cisco", "juniper"]))
    error_kind = fields.String(validate=validate.OneOf(["permanent", "transient", "unknown"]))
    sort = fields.String(validate=validate.OneOf(list(SORT_COLUMNS)),
                         metadata={"description": "default attention: errors, then stalled devices, first"})
    order = fields.String(validate=validate.OneOf(["asc", "desc"]))
    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000),
                          metadata={"description": "page number (OFFSET); a cursor is faster deep in the list"})
    per_page = fields.Integer(validate=validate.Range(min=1, max=MAX_PER_PAGE))
    cursor = fields.String(validate=validate.Length(min=1, max=1024),
                           metadata={"description": "keyset position: next_cursor or prev_cursor of a page "
                                                    "with the same sort and order (wins over page)"})


class DeviceQuery(Schema):
    """How many events one device's answer holds."""

    events = fields.Integer(validate=validate.Range(min=0, max=5000))


class PageQuery(Schema):
    """A page of a list."""

    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(validate=validate.Range(min=1, max=MAX_PER_PAGE))


class AuditQuery(PageQuery):
    """Audit log filters (exact matches)."""

    actor = fields.String(validate=validate.Length(max=64))
    action = fields.String(validate=validate.Length(max=32))
    target = fields.String(validate=validate.Length(max=64))


class ImportQuery(Schema):
    """``dry_run``: validate and say what would change, write nothing."""

    dry_run = fields.Boolean()


class DeviceSummary(Schema):
    """A device as the dashboard lists it (a Planned inventory row too: state null)."""

    serial_number = fields.String(required=True)
    pid = _text()
    hostname = _text()
    inventory_hostname = _text()
    ip_address = _text()
    running_version = _text()
    target_version = _text()
    state = fields.String(allow_none=True, required=True, validate=validate.OneOf(STATES))
    vendor = _text()
    lifecycle = fields.String(required=True, validate=validate.OneOf(LIFECYCLES))
    failed_state = _text(metadata={"description": "ERROR only: the state whose step failed (step counts it)"})
    step = fields.Integer(required=True)
    total_steps = fields.Integer(required=True)
    last_contact = fields.DateTime(allow_none=True)
    first_seen = fields.DateTime(allow_none=True)
    last_error_code = _text()
    last_error_message = _text()
    error_kind = fields.String(allow_none=True, validate=validate.OneOf(["permanent", "transient", "unknown"]),
                               metadata={"description": "why a device is in ERROR: permanent waits for an "
                                                        "operator, transient and unknown are retried at "
                                                        "auto_retry_at"})
    auto_retry_at = fields.DateTime(allow_none=True, metadata={"description": "next automatic retry (UTC)"})
    unknown_outcomes = fields.Integer(metadata={"description": "jobs in a row of the current step "
                                                               "without a response"})
    stalled = fields.Boolean(required=True)
    claimed = fields.Boolean()
    source_hold = fields.String(allow_none=True, metadata={
        "description": "a new source address the device is held for until an operator accepts it "
                       "(POST /devices/{serial}/accept-source); null: not held"})
    template = _text()
    site = _text()


class Counts(Schema):
    state = fields.Dict(keys=fields.String(), values=fields.Integer())
    lifecycle = fields.Dict(keys=fields.String(), values=fields.Integer())
    stalled = fields.Integer()
    total = fields.Integer()


class DevicePage(Schema):
    items = fields.List(fields.Nested(DeviceSummary), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    pages = fields.Integer(required=True)
    counts = fields.Nested(Counts)
    next_cursor = fields.String(allow_none=True, metadata={"description": "the next page's cursor; null on the last"})
    prev_cursor = fields.String(allow_none=True,
                                metadata={"description": "the previous page's cursor; null on the first"})


class Event(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    kind = fields.String(validate=validate.OneOf(EVENT_KINDS))
    service = _text()
    correlator = _text()
    success = fields.Boolean(allow_none=True)
    error_code = _text()
    message = fields.String()
    raw_xml = _text()


class Day0(Schema):
    name = _text()
    source = _text()
    text = _text()
    md5 = _text()
    error = _text()


class Device(Schema):
    serial_number = fields.String(required=True)
    summary = fields.Nested(DeviceSummary, required=True)
    fields_ = fields.Dict(data_key="fields", metadata={"description": "every device_state column"})
    inventory = fields.Dict(allow_none=True)
    events = fields.List(fields.Nested(Event))
    exchanges = fields.List(fields.Nested(Event))
    day0 = fields.Nested(Day0)


class ResumeBody(Schema):
    state = fields.String(required=True, validate=validate.OneOf([s.value for s in State]))


class ClaimResult(DeviceSummary):
    newly_claimed = fields.Boolean(required=True)


class BulkBody(Schema):
    action = fields.String(required=True, validate=validate.OneOf(list(BULK_ACTIONS)))
    serials = fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                          validate=validate.Length(min=1, max=1000))


class BulkResult(Schema):
    action = fields.String(required=True)
    done = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    failed = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class InventoryItem(Schema):
    serial_number = fields.String(required=True)
    hostname = _text()
    pid = _text()
    template = _text()
    variables = fields.Dict(keys=fields.String(), values=fields.Raw())
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class InventoryPage(Schema):
    items = fields.List(fields.Nested(InventoryItem), required=True)
    total = fields.Integer(required=True)


class InventoryBody(Schema):
    class Meta:
        unknown = EXCLUDE

    hostname = fields.String(allow_none=True, validate=validate.Length(max=255))
    pid = fields.String(allow_none=True, validate=validate.Length(max=64))
    template = fields.String(allow_none=True, validate=validate.Length(max=255))
    variables = fields.Dict(keys=fields.String(validate=validate.Length(min=1)), values=fields.Raw())


class Change(Schema):
    serial_number = fields.String(required=True)
    action = fields.String(required=True, validate=validate.OneOf(["create", "update", "unchanged"]))
    changes = fields.Dict(keys=fields.String(), values=fields.List(fields.Raw()),
                          metadata={"description": "field → [before, after]"})


class ImportResult(Schema):
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    errors = fields.List(fields.String(), required=True)
    dry_run = fields.Boolean()
    changes = fields.List(fields.Nested(Change), metadata={"description": "what the import changes (or would)"})


class ImportRejected(Error):
    """A refused import (400): ``error``, and per-line ``errors`` when the CSV was read; nothing
    was written."""

    created = fields.Integer()
    updated = fields.Integer()
    errors = fields.List(fields.String())
    dry_run = fields.Boolean()
    changes = fields.List(fields.Nested(Change))


class AuditEntry(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    via = fields.String()
    action = fields.String()
    target = _text()
    address = _text()
    success = fields.Boolean()
    detail = _text()


class AuditPage(Schema):
    items = fields.List(fields.Nested(AuditEntry), required=True)
    total = fields.Integer(required=True)


class Anything(Schema):
    """Any JSON object."""

    class Meta:
        unknown = INCLUDE


class SotWebhookResult(Schema):
    """What a source-of-truth webhook changed."""

    model = _text()
    event = _text()
    device = fields.Raw(allow_none=True)
    created = fields.Integer()
    updated = fields.Integer()
    removed = fields.Integer()
    kept = fields.Integer()
    dhcp = fields.Raw(allow_none=True)
    report = fields.List(fields.String())


# --- team: users, personal tokens, webhooks (app/ops/team.py) ----------------------------------


class User(Schema):
    """A user: role, when made, when the password last changed, open sessions and live tokens
    (never the password or its hash)."""

    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(list(ROLES)))
    created_at = fields.DateTime()
    password_changed_at = fields.DateTime()
    sessions = fields.Integer(metadata={"description": "open console sessions"})
    tokens = fields.Integer(metadata={"description": "personal API tokens not revoked"})


class UserBody(Schema):
    """A new user: name, role and the first password (at least 8 characters)."""

    name = fields.String(required=True, validate=[
        validate.Length(min=1, max=64),
        validate.Regexp(USER_NAME, error="a user name is 1-64 letters, digits or . _ @ - "
                                         "(starting with a letter or digit)")])
    role = fields.String(required=True, validate=validate.OneOf(list(ROLES)))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=8, max=1024))


class UserChange(Schema):
    """A role and/or a new password (a new password ends the user's sessions)."""

    role = fields.String(validate=validate.OneOf(list(ROLES)))
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=1024))


class SessionsEnded(Schema):
    """How many sessions of a user were ended."""

    ended = fields.Integer(required=True)


class Token(Schema):
    """A personal API token (never its secret or hash after creation)."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(metadata={"description": "pnp_<prefix>_… : tells tokens apart"})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class NewToken(Token):
    """A token just created: ``token`` is its secret, shown this once."""

    token = fields.String(required=True, metadata={"description": "Authorization: Bearer <token>; "
                                                                  "not shown again"})


class TokenBody(Schema):
    """What the token is for."""

    name = fields.String(required=True, validate=[
        validate.Length(min=1, max=64), validate.Regexp(TOKEN_NAME, error="give the token a name (what it is for)")])


class WebhookItem(Schema):
    """A webhook (its HMAC secret only in the answer that created it)."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(validate=validate.OneOf(list(WEBHOOK_EVENTS))), required=True)
    preset = fields.String(validate=validate.OneOf(list(WEBHOOK_PRESETS)))
    enabled = fields.Boolean()
    created_at = fields.DateTime()
    secret = fields.String(metadata={"description": "HMAC-SHA256 key of X-PNP-Signature (creation only)"})


class WebhookBody(Schema):
    """A new webhook: URL, events, payload preset (json, slack, teams), optional HMAC secret."""

    name = fields.String(validate=validate.Length(max=64))
    url = fields.String(required=True, validate=[
        validate.Length(min=1, max=1024),
        validate.Regexp(URL_PATTERN, error="the URL must be http:// or https:// with a host")])
    events = fields.List(fields.String(validate=validate.OneOf(list(WEBHOOK_EVENTS))), required=True,
                         validate=validate.Length(min=1, max=len(WEBHOOK_EVENTS)))
    preset = fields.String(validate=validate.OneOf(list(WEBHOOK_PRESETS)))
    secret = fields.String(validate=validate.Length(min=16, max=128),
                           metadata={"description": "default: 32 random bytes, hex"})


class Delivery(Schema):
    """One queued or sent webhook event (the delivery log)."""

    id = fields.Integer(required=True)
    webhook = fields.String()
    event = fields.String()
    serial = _text()
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer()
    last_status = fields.Integer(allow_none=True)
    last_error = _text()
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)


class Queued(Schema):
    """A test event was queued."""

    queued = fields.Boolean(required=True)


class DeliveryQuery(Schema):
    """How many deliveries."""

    limit = fields.Integer(validate=validate.Range(min=1, max=500))
