"""A NetBox 4.x REST API replayed on 127.0.0.1 for the NetBox source tests (NetBox itself cannot be
installed from the package registries here: it is not on PyPI).

The objects are built from ``tests/sot/netbox/*.json``: responses in the shape of
NetBox 4.x's documented schema (``/api/schema/``: DeviceWithConfigContext,
Interface, RenderedConfig, JournalEntry). This server answers what pynetbox sends
(list with filters and pagination, get, PATCH, POST, the render-config action),
applies PATCHes to its in-memory objects, records every request, checks the
``Authorization: Token`` header and can be told to fail a call (``fail``).
:func:`webhook_body` builds a NetBox webhook payload and its ``X-Hook-Signature``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent / "netbox"
VERSION = "4.2.9"


def template(name: str) -> dict:
    return json.loads((HERE / f"{name}.json").read_text())


class NetboxReplay:
    """``url``, ``token``; ``devices``/``interfaces`` by id; ``journal`` entries; ``requests`` seen."""

    def __init__(self, token: str = "0123456789abcdef0123456789abcdef01234567"):
        self.token = token
        self.devices: dict[int, dict] = {}
        self.interfaces: dict[int, dict] = {}
        self.rendered: dict[int, str] = {}
        self.journal: list[dict] = []
        self.requests: list[tuple[str, str, dict, dict | None]] = []
        self.failures: list[tuple[str, str, int]] = []  # (method, path prefix, status): each used once
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, path_prefix: str, status: int = 503) -> None:
        """The next ``method`` request under ``path_prefix`` answers ``status``."""
        self.failures.append((method, path_prefix, status))

    # --- the lab -------------------------------------------------------------------------
    def add_device(self, device_id: int, name: str | None, serial: str, *, mac: str | None, ip: str | None,
                   status: str = "planned", site: str = "hamburg", tags: tuple[str, ...] = (),
                   context: dict | None = None, custom_fields: dict | None = None, rendered: str | None = None,
                   model: str = "C1131-8PWB", manufacturer: str = "Cisco", role: str = "branch-router") -> dict:
        device = template("device")
        device.update(id=device_id, name=name, display=name or f"device {device_id}", serial=serial,
                      url=f"{self.url}/api/dcim/devices/{device_id}/")
        device["status"] = {"value": status, "label": status.title()}
        device["site"].update(slug=site, name=site.title(), display=site.title())
        device["role"].update(slug=role, name=role)
        device["device_type"].update(model=model, display=model, slug=model.lower())
        device["device_type"]["manufacturer"].update(name=manufacturer, slug=manufacturer.lower(),
                                                     display=manufacturer)
        device["tags"] = [{"id": i + 1, "url": f"{self.url}/api/extras/tags/{i + 1}/", "display": t, "name": t,
                           "slug": t, "color": "9e9e9e"} for i, t in enumerate(tags)]
        if ip:
            for key in ("primary_ip", "primary_ip4"):
                device[key] = dict(device[key], address=f"{ip}/24", display=f"{ip}/24")
        else:
            device["primary_ip"] = device["primary_ip4"] = None
        device["config_context"] = context if context is not None else dict(device["config_context"])
        device["custom_fields"] = {"pnp_template": None, "pnp_image": None, **(custom_fields or {})}
        with self.lock:
            self.devices[device_id] = device
            if mac:
                interface = template("interface")
                interface_id = 500 + device_id
                interface.update(id=interface_id, mac_address=mac.upper(), mgmt_only=True)
                interface["primary_mac_address"] = dict(interface["primary_mac_address"], mac_address=mac.upper())
                interface["device"] = dict(interface["device"], id=device_id, name=name)
                self.interfaces[interface_id] = interface
            if rendered is not None:
                self.rendered[device_id] = rendered
        return device

    def update(self, device_id: int, **fields) -> dict:
        with self.lock:
            device = self.devices[device_id]
            for key, value in fields.items():
                if key == "status":
                    value = {"value": value, "label": value.title()}
                device[key] = value
            return copy.deepcopy(device)

    # --- HTTP -------------------------------------------------------------------------------
    def _list(self, objects: list[dict], query: dict) -> dict:
        offset = int(query.pop("offset", ["0"])[0])
        limit = int(query.pop("limit", ["50"])[0]) or 1000
        query.pop("brief", None)
        query.pop("exclude", None)
        matching = [o for o in objects if all(self._matches(o, k, v) for k, v in query.items())]
        page = matching[offset:offset + limit]
        more = offset + limit < len(matching)
        return {"count": len(matching), "next": f"{self.url}/api/?offset={offset + limit}" if more else None,
                "previous": None, "results": copy.deepcopy(page)}

    @staticmethod
    def _matches(obj: dict, key: str, values: list[str]) -> bool:
        if key == "id":
            return str(obj["id"]) in values
        if key == "device_id":
            return str(obj["device"]["id"]) in values
        if key in ("site", "role"):
            return (obj.get(key) or {}).get("slug") in values
        if key == "tag":
            return bool({t["slug"] for t in obj.get("tags", [])} & set(values))
        if key == "status":
            return obj["status"]["value"] in values
        if key in ("slug", "name", "model", "part_number"):
            return str(obj.get(key)) in values
        raise AssertionError(f"the replay does not know the filter {key}")

    def _answer(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, object]:
        for failure in list(self.failures):
            if failure[0] == method and path.startswith(failure[1]):
                self.failures.remove(failure)
                return failure[2], {"detail": "Service Unavailable (replayed failure)"}
        parts = [p for p in path.split("/") if p][1:]  # after "api"
        if parts in ([], ["status"]):
            return 200, {"netbox-version": VERSION} if parts else {}
        if parts == ["dcim", "devices"] and method == "GET":
            return 200, self._list(list(self.devices.values()), query)
        if parts == ["dcim", "devices"] and method == "POST":
            new_id = max(self.devices, default=100) + 1
            device = self.add_device(new_id, body.get("name"), body["serial"], mac=None, ip=None,
                                     status=body.get("status", "active"))
            return 201, copy.deepcopy(device)
        if len(parts) >= 3 and parts[:2] == ["dcim", "devices"]:
            device = self.devices.get(int(parts[2]))
            if device is None:
                return 404, {"detail": "No Device matches the given query."}
            if parts[3:] == ["render-config"] and method == "POST":
                if int(parts[2]) not in self.rendered:
                    return 400, {"error": "No config template found for this device"}
                return 200, dict(template("render-config"), content=self.rendered[int(parts[2])])
            if method == "PATCH":
                return 200, self.update(device["id"], **body)
            return 200, copy.deepcopy(device)
        if parts == ["dcim", "interfaces"]:
            return 200, self._list(list(self.interfaces.values()), query)
        if parts == ["extras", "journal-entries"] and method == "POST":
            entry = dict(template("journal-entry"), id=len(self.journal) + 1, **body)
            entry["kind"] = {"value": body.get("kind", "info"), "label": body.get("kind", "info").title()}
            self.journal.append(entry)
            return 201, entry
        if parts in (["dcim", "device-types"], ["dcim", "sites"], ["dcim", "device-roles"]):
            objects = {"device-types": [dict(template("device")["device_type"], part_number="C1131-8PWB")],
                       "sites": [dict(template("device")["site"])],
                       "device-roles": [dict(template("device")["role"])]}[parts[1]]
            return 200, self._list(objects, query)
        return 404, {"detail": f"the replay has no {method} {path}"}

    def _handler(self):
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self, method: str) -> None:
                split = urlsplit(self.path)
                query = parse_qs(split.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with replay.lock:
                    replay.requests.append((method, split.path, query, body))
                if self.headers.get("Authorization") != f"Token {replay.token}":
                    status, answer = 403, {"detail": "Invalid token"}
                else:
                    status, answer = replay._answer(method, split.path, query, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("API-Version", VERSION.rsplit(".", 1)[0])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server API
                self._do("GET")

            def do_POST(self):  # noqa: N802
                self._do("POST")

            def do_PATCH(self):  # noqa: N802
                self._do("PATCH")

            def log_message(self, *args):
                pass

        return Handler


def webhook_body(event: str, device: dict, secret: str) -> tuple[bytes, dict]:
    """A NetBox 4.x webhook (event rule, default body) for ``device`` and its headers with the signature."""
    body = json.dumps({"event": event, "timestamp": "2026-12-01T10:00:00.000000+00:00", "model": "device",
                       "username": "admin", "request_id": str(uuid.uuid4()), "data": device,
                       "snapshots": {"prechange": None, "postchange": None}}).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hook-Signature": signature}
