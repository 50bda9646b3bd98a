"""Network namespaces of a test's own for the DHCP wire tests, and the servers run in them.

:func:`netlab` creates the namespaces (``ip netns add``) and removes them at the end, even
on failure (deleting a namespace removes its veth ends); a test without root or without a
usable ``ip netns`` fails with the reason (deselect with ``-m 'not netns'``).
:func:`background` runs a server (kea-dhcp4, dhcpd, dhcrelay) until the block ends.
No traffic leaves the veth pairs made here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CLIENT = Path(__file__).with_name("dhcp_client.py")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])


class NetLab:
    """Namespaces named ``<prefix>-<role>-<pid>``: ``lab.ns["srv"]`` is the name of role ``srv``."""

    def __init__(self, ip: str, prefix: str, roles: tuple[str, ...]) -> None:
        self.ip = ip
        self.ns = {role: f"{prefix}-{role}-{os.getpid()}" for role in roles}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip <args>``; raises CalledProcessError when ``check`` and it fails."""
        return subprocess.run([self.ip, *args], capture_output=True, text=True, timeout=30, check=check)

    def in_ns(self, role: str, *cmd: str) -> list[str]:
        """The command line running ``cmd`` inside the namespace of ``role``."""
        return [self.ip, "netns", "exec", self.ns[role], *cmd]

    def veth(self, role_a: str, dev_a: str, role_b: str, dev_b: str) -> None:
        """A veth pair: ``dev_a`` in ``role_a``'s namespace, its peer ``dev_b`` in ``role_b``'s."""
        self.run("-n", self.ns[role_a], "link", "add", dev_a, "type", "veth", "peer", "name", dev_b,
                 "netns", self.ns[role_b])

    def addr(self, role: str, cidr: str, dev: str) -> None:
        self.run("-n", self.ns[role], "addr", "add", cidr, "dev", dev)

    def up(self, role: str, *devs: str) -> None:
        """Loopback and ``devs`` up in ``role``'s namespace."""
        for dev in ("lo", *devs):
            self.run("-n", self.ns[role], "link", "set", dev, "up")

    def dhcp_clients(self, role: str, iface: str, clients: list[dict[str, str]]) -> list[Any]:
        """Run the scapy client (dhcp_client.py) on ``iface`` of ``role``: one OFFER (dict) or None
        per client, in order."""
        proc = subprocess.run(self.in_ns(role, sys.executable, str(CLIENT), iface, json.dumps(clients)),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"DHCP client failed:\n{proc.stderr}"
        return json.loads(proc.stdout)


@contextlib.contextmanager
def netlab(prefix: str, *roles: str) -> Iterator[NetLab]:
    """Empty namespaces for ``roles``, removed when the block ends; fails the test without root
    or without ``ip netns``."""
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (or deselect: -m 'not netns')")
    ip = shutil.which("ip", path=SBIN_PATH)
    if ip is None:
        pytest.fail("iproute2 'ip' is not installed: apt-get install -y iproute2")
    lab = NetLab(ip, prefix, roles)
    try:
        first, *others = lab.ns.values()
        probe = lab.run("netns", "add", first, check=False)
        if probe.returncode != 0:
            pytest.fail(f"ip netns is not available here: {probe.stderr.strip()} (or deselect: -m 'not netns')")
        for name in others:
            lab.run("netns", "add", name)
        yield lab
    finally:
        for name in reversed(lab.ns.values()):
            lab.run("netns", "del", name, check=False)


@contextlib.contextmanager
def background(cmd: list[str], log: Path, ready: Callable[[], bool], env: dict[str, str] | None = None,
               timeout: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output to ``log``) until ``ready()`` is true, yield it, then stop it (SIGTERM,
    SIGKILL after 10 s). Fails the test with the log when it exits or is not ready in time."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ))
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"{cmd}: exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd}: not ready after {timeout} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def text_of(path: Path) -> str:
    """The file's text, "" while it does not exist yet."""
    return path.read_text(errors="replace") if path.exists() else ""

