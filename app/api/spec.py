"""One definition per route: the ``operation`` decorator validates the request with the
route's marshmallow schemas and is what the OpenAPI document is generated from.

``@operation(summary, query=Schema, body=Schema, responses={200: Schema})`` on an
/api/v1 view: the query arguments and the JSON body are loaded with those
schemas before the view runs (400 ``{"error", "fields"}`` for a bad value, an
unknown body field or a body that is not JSON; unknown query arguments are
ignored), and the view reads them from ``g.api_query`` / ``g.api_body``.
``openapi_document(app)`` walks the app's URL map, takes every /api/v1 rule's
operation and builds the OpenAPI 3.1 document with apispec's MarshmallowPlugin
(https://apispec.readthedocs.io), so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import wraps

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import abort, g, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.api import schemas as s

#: the error answers every operation may give, with what they mean
ERRORS = {400: "bad request: a value, the body or the CSRF header (the reason is in error/fields)",
          401: "no valid bearer token or session", 403: "your role may not do this (viewer < operator < admin)",
          404: "no such device, inventory row, user, token or webhook",
          409: "conflict: not configured (e.g. no SOT_WEBHOOK_SECRET), or the name is taken",
          429: "a rate limit (API_RATE_LIMIT) was reached", 502: "the source of truth cannot be read"}


class BadRequest(Exception):
    """A request that its schema refuses: ``message`` and per-field ``fields``."""

    def __init__(self, message: str, fields: dict | None = None) -> None:
        super().__init__(message)
        self.message, self.fields = message, fields or {}


@dataclass
class Operation:
    """What one view takes and answers (see module doc)."""

    summary: str
    query: type[Schema] | None = None
    body: type[Schema] | None = None
    raw_body: dict | None = None  # content types → schema dict, for non-JSON bodies (CSV)
    responses: dict = field(default_factory=dict)  # status → Schema class, "text", None (no body)
    errors: tuple = (400, 401, 403, 429)
    public: bool = False
    description: str = ""


def _load(schema_cls: type[Schema], data, what: str, unknown=None) -> dict:
    try:
        return schema_cls(unknown=unknown).load(data) if unknown else schema_cls().load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        first = next(iter(messages.items()))
        raise BadRequest(f"invalid {what}: {first[0]}: {first[1]}", messages) from None


def operation(summary: str, **kw):
    """Attach an Operation to a view and validate its requests by it."""
    op = Operation(summary, **kw)

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if op.query is not None:
                g.api_query = _load(op.query, request.args.to_dict(), "query argument", unknown=EXCLUDE)
            if op.body is not None:
                body = request.get_json(silent=True)
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                g.api_body = _load(op.body, body, "body")
            return view(*args, **kwargs)
        wrapper.api_operation = op
        return wrapper
    return decorate


def bad_request_answer(exc: BadRequest):
    """The 400 answer of a BadRequest (the blueprint registers it)."""
    from flask import jsonify

    response = jsonify({"error": exc.message, "fields": exc.fields})
    response.status_code = 400
    return response


def _schema_name(cls: type[Schema]) -> str:
    return cls.__name__


def _responses(op: Operation) -> dict:
    out = {}
    for status, what in op.responses.items():
        if what is None:
            out[str(status)] = {"description": "done, no body"}
        elif isinstance(what, list):
            out[str(status)] = {"description": f"a list of {what[0].__name__}", "content": {
                "application/json": {"schema": {"type": "array", "items": {
                    "$ref": f"#/components/schemas/{_schema_name(what[0])}"}}}}}
        elif what == "text":
            out[str(status)] = {"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}}
        else:
            out[str(status)] = {"description": what.__doc__.strip().splitlines()[0] if what.__doc__ else "",
                                "content": {"application/json": {"schema": _schema_name(what)}}}
    for status in op.errors:
        out.setdefault(str(status), {"description": ERRORS[status],
                                     "content": {"application/json": {"schema": "Error"}}})
    return out


def _path_schema(rule, name: str) -> dict:
    """The schema of a path argument: an integer for Werkzeug's ``<int:…>``, else a string."""
    converter = rule._converters.get(name)
    if type(converter).__name__ == "IntegerConverter":
        return {"type": "integer", "minimum": 0}
    return {"type": "string"}


def _key_rules(self, ma_field, **kwargs) -> dict:
    """``propertyNames`` for a Dict field whose keys have a length rule (apispec leaves the keys
    out), so the document says what the validation refuses (an empty variable name)."""
    keys = getattr(ma_field, "key_field", None)
    if not isinstance(ma_field, fields.Dict) or keys is None:
        return {}
    names = {}
    for rule in keys.validators:
        if isinstance(rule, validate.Length):
            names.update({k: v for k, v in (("minLength", rule.min), ("maxLength", rule.max)) if v is not None})
    return {"propertyNames": names} if names else {}


def openapi_document(app, server_url: str = "") -> dict:
    """The OpenAPI 3.1 document of every /api/v1 route of ``app`` (see module doc)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title="PnP server operator API", version="1.1.0", openapi_version="3.1.0",
                   plugins=[plugin],
                   info={"description": "Cisco PnP and Juniper ZTP devices: list, history, actions, "
                                        "inventory, audit. Personal tokens: Authorization: Bearer pnp_…"},
                   servers=[{"url": f"{server_url}/api/v1"}],
                   security=[{"bearer": []}, {"session": []}])
    plugin.converter.add_attribute_function(_key_rules)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "description": "a personal API token (pnp_…) or ADMIN_TOKEN"})
    spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": "session",
                                                "description": "console login; unsafe methods need X-CSRFToken"})
    # leaves before the schemas that nest them (the plugin registers nested ones itself)
    for name in ("Error", "Event", "DeviceSummary", "ClaimResult", "DevicePage", "Device", "InventoryItem",
                 "InventoryPage", "ImportResult", "AuditEntry", "AuditPage", "BulkResult", "Anything",
                 "SotWebhookResult", "User", "SessionsEnded", "Token", "NewToken", "WebhookItem", "Delivery",
                 "Queued"):
        spec.components.schema(name, schema=getattr(s, name))
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/v1/"):
            continue
        op: Operation | None = getattr(app.view_functions[rule.endpoint], "api_operation", None)
        if op is None:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len("/api/v1"):])
        parameters = [{"name": a, "in": "path", "required": True, "schema": _path_schema(rule, a)}
                      for a in sorted(rule.arguments)]
        if op.query is not None:
            parameters.append({"in": "query", "schema": op.query})
        operation_doc = {"summary": op.summary, "operationId": rule.endpoint.replace(".", "_"),
                         "parameters": parameters, "responses": _responses(op)}
        if op.description:
            operation_doc["description"] = op.description
        if op.public:
            operation_doc["security"] = []
        if op.body is not None:
            operation_doc["requestBody"] = {"required": True,
                                            "content": {"application/json": {"schema": op.body}}}
        elif op.raw_body is not None:
            operation_doc["requestBody"] = {"required": True, "content": op.raw_body}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = operation_doc
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def require_found(condition: bool, what: str) -> None:
    """404 unless ``condition``."""
    if not condition:
        abort(404, description=what)
