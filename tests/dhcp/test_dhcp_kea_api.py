"""kea_api over HTTP against a stub Control Agent on 127.0.0.1 (the unix socket is tested for real in test_dhcp_wire).

The stub only mimics the Control Agent's envelope (list answer, ``service``);
it checks what the client sends and that a rejected ``config-test`` stops the push.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.dhcp import KeaControl, KeaError, kea_push


class StubAgent:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.test_result = 0
        self.config: dict[str, Any] = {"Dhcp4": {"interfaces-config": {"interfaces": ["*"]}, "subnet4": []}}

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        self.requests.append(body)
        command = body["command"]
        if command == "config-get":
            return [{"result": 0, "arguments": {**self.config, "hash": "abc"}}]
        if command == "config-test":
            if self.test_result:
                return [{"result": 1, "text": "specified reservation '192.0.2.50' is not within the IPv4 subnet"}]
            return [{"result": 0, "text": "Configuration seems sane."}]
        if command in ("config-set", "config-write"):
            return [{"result": 0, "text": f"{command} done"}]
        return [{"result": 2, "text": f"'{command}' command not supported."}]


@pytest.fixture
def agent() -> Iterator[tuple[StubAgent, str]]:
    stub = StubAgent()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(stub.answer(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_push(agent, spec) -> None:
    stub, url = agent
    merged = kea_push(url, spec)
    assert [r["command"] for r in stub.requests] == ["config-get", "config-test", "config-set", "config-write"]
    assert all(r["service"] == ["dhcp4"] for r in stub.requests)
    assert stub.requests[1]["arguments"] == {"Dhcp4": merged["Dhcp4"]}  # "hash" of config-get not sent back
    assert "arguments" not in stub.requests[3]  # config-write into Kea's own file
    assert merged["Dhcp4"]["subnet4"][0]["id"] == 1


def test_http_push_refused(agent, spec) -> None:
    stub, url = agent
    stub.test_result = 1
    with pytest.raises(KeaError, match="not within the IPv4 subnet") as err:
        kea_push(KeaControl(url), spec)
    assert err.value.command == "config-test" and err.value.result == 1
    assert [r["command"] for r in stub.requests] == ["config-get", "config-test"]  # never set


def test_http_check_only(agent, spec) -> None:
    stub, url = agent
    kea_push(url, spec, apply=False)
    assert [r["command"] for r in stub.requests] == ["config-get", "config-test"]
    kea_push(url, spec, write=False)
    assert [r["command"] for r in stub.requests][2:] == ["config-get", "config-test", "config-set"]


def test_unsupported_command(agent) -> None:
    _stub, url = agent
    with pytest.raises(KeaError, match="not supported") as err:
        KeaControl(url).command("reservation-add", {"reservation": {}})
    assert err.value.result == 2


def test_unreachable_socket(tmp_path) -> None:
    with pytest.raises(OSError):
        KeaControl(str(tmp_path / "missing.sock"), timeout=1).config_get()
