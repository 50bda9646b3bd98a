"""The OpenAPI 3.1 document of /api/v1 (kept next to the routes it describes)."""

from __future__ import annotations

from app.ops import MAX_PAGE, MAX_PER_PAGE, SORT_COLUMNS, Lifecycle
from app.pnp.workflow import State


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "bad request (invalid filter, state, body or CSRF token)"),
    "401": _json(_ref("Error"), "no valid bearer token or session"),
    "404": _json(_ref("Error"), "no such device"),
}
_SERIAL = {"name": "serial", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "serial number (SN of the UDI)"}


def _action(summary: str, body: dict | None = None) -> dict:
    op = {"summary": summary, "parameters": [_SERIAL],
          "responses": {"200": _json(_ref("DeviceSummary"), "the device after the action"), **_ERRORS}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return {"post": op}


def openapi_document(server_url: str = "") -> dict:
    """The OpenAPI 3.1 document as a dict; ``server_url`` fills ``servers``."""
    state_enum = [s.value for s in State]
    summary = {
        "type": "object",
        "properties": {
            "serial_number": {"type": "string"}, "pid": {"type": "string"},
            "hostname": {"type": ["string", "null"]}, "ip_address": {"type": ["string", "null"]},
            "running_version": {"type": ["string", "null"]}, "target_version": {"type": ["string", "null"]},
            "state": {"type": ["string", "null"], "enum": state_enum + [None]},
            "lifecycle": {"type": "string", "enum": [lc.value for lc in Lifecycle]},
            "step": {"type": "integer"}, "total_steps": {"type": "integer"},
            "failed_state": {"type": ["string", "null"],
                             "description": "ERROR only: the state whose step failed (step counts it)"},
            "last_contact": {"type": ["string", "null"], "format": "date-time"},
            "first_seen": {"type": ["string", "null"], "format": "date-time"},
            "last_error_code": {"type": ["string", "null"]},
            "last_error_message": {"type": ["string", "null"]},
            "error_kind": {"type": ["string", "null"], "enum": ["permanent", "transient", "unknown", None],
                           "description": "why a device is in ERROR: permanent waits for an operator, "
                                          "transient and unknown are retried at auto_retry_at"},
            "auto_retry_at": {"type": ["string", "null"], "format": "date-time",
                              "description": "next automatic retry of an ERROR (UTC); null: none"},
            "unknown_outcomes": {"type": "integer",
                                 "description": "jobs in a row of the current step without a response"},
            "stalled": {"type": "boolean"}, "claimed": {"type": "boolean"},
        },
        "required": ["serial_number", "state", "lifecycle", "step", "total_steps", "stalled"],
    }
    event = {"type": "object", "properties": {
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "kind": {"type": "string", "enum": ["job", "response", "state", "error", "info", "reload",
                                            "unknown", "fetch", "clamped"]},
        "service": {"type": ["string", "null"]}, "correlator": {"type": ["string", "null"]},
        "success": {"type": ["boolean", "null"]}, "error_code": {"type": ["string", "null"]},
        "message": {"type": "string"}, "raw_xml": {"type": ["string", "null"]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "PnP server operator API", "version": "1.0.0",
                 "description": "Devices provisioned by Cisco PnP: list, history, actions, inventory."},
        "servers": [{"url": f"{server_url}/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/devices": {"get": {
                "summary": "List devices (server-side filter, sort and pagination)",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": state_enum}},
                    {"name": "lifecycle", "in": "query",
                     "schema": {"type": "string", "enum": [lc.value for lc in Lifecycle]}},
                    {"name": "stalled", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "q", "in": "query", "schema": {"type": "string"},
                     "description": "substring of serial, hostname or IP"},
                    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORT_COLUMNS)}},
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                               "maximum": MAX_PAGE}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                   "maximum": 500}},
                ],
                "responses": {"200": _json(_ref("DevicePage"), "one page of devices"), **_ERRORS}}},
            "/devices/{serial}": {
                "get": {"summary": "One device with all fields, events (newest first), day-0 config, raw XML",
                        "parameters": [_SERIAL, {"name": "events", "in": "query",
                                                 "schema": {"type": "integer", "minimum": 0,
                                                            "maximum": 5000}}],
                        "responses": {"200": _json(_ref("Device"), "the device"), **_ERRORS}},
                "delete": {"summary": "Forget the device and its history", "parameters": [_SERIAL],
                           "responses": {"204": {"description": "deleted"}, **_ERRORS}}},
            "/devices/{serial}/resume": _action(
                "Resume at a workflow state (that step starts afresh at the next work-request)",
                {"type": "object", "required": ["state"],
                 "properties": {"state": {"type": "string", "enum": state_enum}}}),
            "/devices/{serial}/retry": _action("Retry the failed step now"),
            "/devices/{serial}/accept-source": _action("Accept the new source address of a held device"),
            "/devices/{serial}/reset": _action("Start over at step 1"),
            "/devices/{serial}/claim": _action("Add the device to the inventory"),
            "/devices/{serial}/config": {"get": {
                "summary": "Preview the day-0 config the device gets", "parameters": [_SERIAL],
                "responses": {"200": {"description": "the config",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "422": _json(_ref("Error"), "the config cannot be rendered (reason)"),
                              **_ERRORS}}},
            "/inventory": {
                "get": {"summary": "List the inventory",
                        "parameters": [{"name": "page", "in": "query",
                                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                                       {"name": "per_page", "in": "query", "schema": {
                                           "type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}}],
                        "responses": {"200": _json({"type": "object"}, "inventory rows"), **_ERRORS}},
                "post": {"summary": "Import inventory CSV (serial, hostname, pid, template, variables...)",
                         "parameters": [{"name": "dry_run", "in": "query", "schema": {"type": "boolean"}}],
                         "requestBody": {"required": True, "content": {
                             "text/csv": {"schema": {"type": "string"}},
                             "multipart/form-data": {
                                 "schema": {"type": "object", "required": ["file"],
                                            "properties": {"file": {"type": "string", "minLength": 1,
                                                                    "pattern": r"\S"}}},
                                 "encoding": {"file": {"contentType": "text/csv"}}}}},
                         "responses": {"200": _json(_ref("ImportResult"), "imported"),
                                       "400": _json(_ref("ImportResult"), "per-line errors; nothing written"),
                                       "401": _ERRORS["401"]}}},
            "/sot/webhook": {
                "post": {"summary": "NetBox/Nautobot webhook: re-sync the changed device (HMAC-SHA512 "
                                    "X-Hook-Signature with SOT_WEBHOOK_SECRET; no bearer token)",
                         "security": [],
                         "parameters": [{"name": "X-Hook-Signature", "in": "header", "required": True,
                                         "schema": {"type": "string"}}],
                         "requestBody": {"required": True, "content": {"application/json": {"schema": {
                             "type": "object", "properties": {"event": {"type": "string"},
                                                              "model": {"type": "string"},
                                                              "data": {"type": "object"}}}}}},
                         "responses": {"200": _json({"type": "object"}, "what the re-sync changed"),
                                       "400": _ERRORS["400"],
                                       "403": _json(_ref("Error"), "signature missing or wrong"),
                                       "409": _json(_ref("Error"), "no source of truth or no secret configured"),
                                       "502": _json(_ref("Error"), "the source of truth could not be read")}}},
            "/sot/writeback": {
                "get": {"summary": "Status write-backs not yet accepted by the source of truth",
                        "responses": {"200": _json({"type": "object"}, "pending and failing rows"),
                                      **_ERRORS}}},
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session",
                            "description": "console login; unsafe methods need X-CSRFToken"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}},
                          "required": ["error"]},
                "DeviceSummary": summary,
                "Event": event,
                "DevicePage": {"type": "object", "properties": {
                    "items": {"type": "array", "items": _ref("DeviceSummary")},
                    "total": {"type": "integer"}, "page": {"type": "integer"},
                    "per_page": {"type": "integer"}, "pages": {"type": "integer"},
                    "counts": {"type": "object", "properties": {
                        "state": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "lifecycle": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "stalled": {"type": "integer"}, "total": {"type": "integer"}}}}},
                "Device": {"type": "object", "properties": {
                    "serial_number": {"type": "string"}, "summary": _ref("DeviceSummary"),
                    "fields": {"type": "object", "description": "every device_state column"},
                    "inventory": {"type": ["object", "null"]},
                    "events": {"type": "array", "items": _ref("Event")},
                    "exchanges": {"type": "array", "items": _ref("Event")},
                    "day0": {"type": "object", "properties": {
                        "name": {"type": ["string", "null"]}, "source": {"type": ["string", "null"]},
                        "text": {"type": ["string", "null"]}, "md5": {"type": ["string", "null"]},
                        "error": {"type": ["string", "null"]}}}}},
                "ImportResult": {"type": "object", "properties": {
                    "created": {"type": "integer"}, "updated": {"type": "integer"},
                    "errors": {"type": "array", "items": {"type": "string"}}}},
            },
        },
    }
