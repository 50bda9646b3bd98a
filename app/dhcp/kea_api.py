"""Push the helper's items into a running kea-dhcp4 (Kea 2.2 management API).

Flow (docs/protocol.md §17.7, the francoismdj/netbox-kea-dhcp "safe update"):
``config-get`` -> :func:`app.dhcp.kea.kea_merge` in memory -> ``config-test``
(abort on failure, nothing applied) -> ``config-set`` (memory) ->
``config-write`` (persist into the file Kea was started with).

Two transports: the unix control socket of kea-dhcp4 itself (Kea 2.2
``"control-socket": {"socket-type": "unix", ...}``; no kea-ctrl-agent needed)
and the HTTP Control Agent (``http://127.0.0.1:8000/``, ``service: ["dhcp4"]``,
uses ``requests``; HTTP basic authentication of the agent's
``authentication`` map with ``user``/``password``).

Nothing changes, nothing is sent: when the merged config equals the running
one (the merge keeps managed items that already say what the spec says),
push stops after ``config-get``: no config-test, config-set or config-write.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .kea import KeaOptions, kea_diff, kea_merge
from .model import DhcpSpec

__all__ = ["KeaControl", "KeaError", "PushResult", "kea_push"]


class KeaError(RuntimeError):
    """A Kea command failed: ``command``, Kea's ``result`` code (1 error, 2 unsupported, 3 empty) and ``text``."""

    def __init__(self, command: str, result: int | None, text: str) -> None:
        self.command = command
        self.result = result
        self.text = text
        super().__init__(f"Kea {command} failed (result {result}): {text}")


class KeaControl:
    """Sends commands to kea-dhcp4.

    ``target`` is the path of kea-dhcp4's unix control socket, or an
    ``http://``/``https://`` URL of the Kea Control Agent. ``timeout`` is in
    seconds for the whole exchange. ``user``/``password``: HTTP basic
    authentication of the Control Agent (Kea 2.2 ``authentication``
    ``type: basic``); unused for the unix socket. Errors: :class:`KeaError` when Kea answers
    with a non-zero result, ``OSError`` (socket) or ``requests`` exceptions
    when it cannot be reached, ``ValueError`` when the answer is not JSON.
    """

    def __init__(self, target: str, *, timeout: float = 10.0, service: str = "dhcp4",
                 user: str | None = None, password: str | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self.service = service
        self.auth = (user, password or "") if user else None

    @property
    def is_http(self) -> bool:
        """True when ``target`` is a Control Agent URL."""
        return self.target.startswith(("http://", "https://"))

    def _send_unix(self, body: Mapping[str, Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        data = b""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.target)
            sock.sendall(json.dumps(body).encode())
            while True:  # Kea sends one JSON answer; stop when it parses or the peer closes
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                try:
                    return json.loads(data)
                except json.JSONDecodeError:
                    continue
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            raise ValueError(f"Kea answered with something that is not JSON: {data[:200]!r}") from None

    def _send_http(self, body: Mapping[str, Any]) -> Any:
        import requests  # only needed for the Control Agent

        reply = requests.post(self.target, json=body, timeout=self.timeout, auth=self.auth)
        if reply.status_code == 401:
            raise KeaError(str(body.get("command")), None, "the Control Agent refused the credentials (HTTP 401): "
                           "check KEA_API_USER / PNP_KEA_API_PASSWORD")
        try:
            return reply.json()
        except ValueError:
            raise ValueError(f"Kea Control Agent answered HTTP {reply.status_code}: {reply.text[:200]!r}") from None

    def command(self, command: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one command; return Kea's answer map (``result``, ``text``, ``arguments``).

        The Control Agent's one-element list is unwrapped. Raises KeaError
        unless ``result`` is 0.
        """
        body: dict[str, Any] = {"command": command}
        if arguments is not None:
            body["arguments"] = dict(arguments)
        if self.is_http:
            body["service"] = [self.service]
            answer = self._send_http(body)
        else:
            answer = self._send_unix(body)
        if isinstance(answer, list):
            answer = answer[0] if answer else {}
        if not isinstance(answer, dict):
            raise ValueError(f"unexpected Kea answer to {command}: {answer!r}")
        if answer.get("result") != 0:
            raise KeaError(command, answer.get("result"), str(answer.get("text", "")))
        return answer

    def config_get(self) -> dict[str, Any]:
        """The running configuration as ``{"Dhcp4": {...}}`` (Kea's full form, defaults included)."""
        args = self.command("config-get").get("arguments") or {}
        if "Dhcp4" not in args:
            raise ValueError("config-get returned no Dhcp4 map")
        return {"Dhcp4": args["Dhcp4"]}

    def config_test(self, config: Mapping[str, Any]) -> str:
        """Check ``config`` without applying it; return Kea's text. Raises KeaError with Kea's reason."""
        return str(self.command("config-test", {"Dhcp4": config["Dhcp4"]}).get("text", ""))

    def config_set(self, config: Mapping[str, Any]) -> str:
        """Apply ``config`` in memory; return Kea's text. Raises KeaError."""
        return str(self.command("config-set", {"Dhcp4": config["Dhcp4"]}).get("text", ""))

    def config_write(self, filename: str | None = None) -> str:
        """Write the running config to ``filename`` (default: the file Kea was started with). Raises KeaError."""
        return str(self.command("config-write", {"filename": filename} if filename else None).get("text", ""))


@dataclass(frozen=True)
class PushResult:
    """What :func:`kea_push` did: ``before`` (config-get), ``after`` (merged), ``changed``, ``applied``, ``written``."""

    before: dict[str, Any]
    after: dict[str, Any]
    changed: bool
    applied: bool
    written: bool

    def diff(self) -> str:
        """Unified diff of the running config before/after ("" when nothing changed)."""
        return kea_diff(self.before, self.after, "running kea-dhcp4")


def kea_push(
    control: KeaControl | str,
    spec: DhcpSpec,
    options: KeaOptions | None = None,
    *,
    apply: bool = True,
    write: bool = True,
) -> PushResult:
    """Merge ``spec`` into the running Kea config; test it; apply and persist it.

    ``control`` is a :class:`KeaControl` or its target (socket path / URL).
    Steps: ``config-get``, :func:`kea_merge`; when the result equals the
    running config nothing more is sent (``changed`` false). Otherwise
    ``config-test``; then, if ``apply``, ``config-set`` and, if ``write``,
    ``config-write``. A config that ``config-test`` rejects is never applied: a
    :class:`KeaError` carrying Kea's text is raised instead (also for a failing
    set/write). ValueError comes from the merge (see :func:`kea_merge`: an
    operator item conflicting with a managed one). Source: docs/protocol.md §17.7.
    """
    ctl = control if isinstance(control, KeaControl) else KeaControl(control)
    before = ctl.config_get()
    merged = kea_merge(before, spec, options)
    if merged == before:
        return PushResult(before, merged, changed=False, applied=False, written=False)
    ctl.config_test(merged)
    if apply:
        ctl.config_set(merged)
        if write:
            ctl.config_write()
    return PushResult(before, merged, changed=True, applied=apply, written=apply and write)
