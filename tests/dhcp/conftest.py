"""Fixtures of the DHCP helper tests: the real parsers (kea-dhcp4 -t, dhcpd -t) and sample specs.

The parsers come from Debian 12's ``kea-dhcp4-server`` and ``isc-dhcp-server``
packages. A missing parser FAILS the tests (tests/setup-machine.sh installs
them), and so does the network-namespace test when not root or without
``ip netns`` (deselect it with ``-m 'not netns'``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.dhcp import (
    CiscoPidClass,
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperZtp,
    PnpServer,
    Subnet,
)
from tests.dhcp.netlab import SBIN_PATH

IMAGE_EX4300 = "jinstall-ex-4300-21.4R3.15-signed.tgz"
IMAGE_MX = "junos-vmhost-install-mx-x86-64-23.4R2.tgz"
IMAGE_QFX = "jinstall-host-qfx-5-21.4R3.15-signed.tgz"
TRUST = "https://192.0.2.10/ca/bundle.pem"


def find_binary(name: str) -> str:
    """Path of a system binary, or a test failure naming the Debian package."""
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        package = {"kea-dhcp4": "kea-dhcp4-server", "dhcpd": "isc-dhcp-server", "ip": "iproute2"}.get(name, name)
        pytest.fail(f"{name} not found: apt-get install -y {package}")
    return path


@pytest.fixture(scope="session")
def kea_bin() -> str:
    return find_binary("kea-dhcp4")


@pytest.fixture(scope="session")
def dhcpd_bin() -> str:
    return find_binary("dhcpd")


def _as_text(config: str | dict[str, Any]) -> str:
    return config if isinstance(config, str) else json.dumps(config, indent=2)


@pytest.fixture
def kea_check(kea_bin: str, tmp_path: Path) -> Callable[[str | dict[str, Any]], str]:
    """Run ``kea-dhcp4 -t`` on a config (text or dict); fail on a non-zero exit or any WARN/ERROR line."""
    counter = iter(range(1000))

    def check(config: str | dict[str, Any]) -> str:
        path = tmp_path / f"kea-{next(counter)}.json"
        path.write_text(_as_text(config))
        proc = subprocess.run([kea_bin, "-t", str(path)], capture_output=True, text=True, timeout=30)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"kea-dhcp4 -t rejected {path}:\n{output}"
        bad = [line for line in output.splitlines() if " WARN " in line or " ERROR " in line]
        assert not bad, f"kea-dhcp4 -t warned about {path}:\n" + "\n".join(bad)
        return output

    return check


@pytest.fixture
def kea_reject(kea_bin: str, tmp_path: Path) -> Callable[[str | dict[str, Any]], str]:
    """Run ``kea-dhcp4 -t`` and expect a rejection; return its output."""

    def check(config: str | dict[str, Any]) -> str:
        path = tmp_path / "kea-reject.json"
        path.write_text(_as_text(config))
        proc = subprocess.run([kea_bin, "-t", str(path)], capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0, f"kea-dhcp4 -t accepted {path}"
        return proc.stdout + proc.stderr

    return check


@pytest.fixture
def dhcpd_check(dhcpd_bin: str, tmp_path: Path) -> Callable[[str], str]:
    """Run ``dhcpd -4 -t -cf`` (dhcpd prints its banner even on success: the exit code decides)."""
    counter = iter(range(1000))

    def check(text: str) -> str:
        path = tmp_path / f"dhcpd-{next(counter)}.conf"
        path.write_text(text)
        leases = tmp_path / "dhcpd.leases"
        leases.touch()
        cmd = [dhcpd_bin, "-4", "-t", "-cf", str(path), "-lf", str(leases), "-pf", str(tmp_path / "dhcpd.pid")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"dhcpd -t rejected {path}:\n{output}"
        return output

    return check


def make_spec(**overrides: Any) -> DhcpSpec:
    """The full sample: PnP (HTTP), two PID classes, four Juniper models, two reservations."""
    values: dict[str, Any] = {
        "subnet": Subnet(
            "192.0.2.0/24",
            1,
            "192.0.2.100",
            "192.0.2.199",
            routers=["192.0.2.1"],
            dns=["192.0.2.53"],
            domain="ztp.example.net",
            ntp=["192.0.2.123"],
        ),
        "pnp": PnpServer("192.0.2.10"),
        "cisco_pids": [CiscoPidClass("C11", PnpServer("192.0.2.10", port=8080)), "C9300"],
        "juniper": JuniperZtp(
            JuniperFileServer("192.0.2.10", 8080),
            [
                JuniperModel("ex4300-48p", IMAGE_EX4300),
                JuniperModel("ex4300"),
                JuniperModel("mx204", IMAGE_MX),
                JuniperModel("srx320", config_mode="static", config_file="configs/srx320-base.conf"),
            ],
        ),
        "inventory": [
            InventoryDevice("02:00:00:00:00:01", "192.0.2.21", "sw-access-01", vendor="juniper", model="ex4300-48p"),
            InventoryDevice("02-00-00-00-00-02", "192.0.2.22", "rtr-01", serial="FGL2231A0BC", pid="C1131-8PWB"),
            InventoryDevice(None, "192.0.2.23", "no-mac-yet", serial="FGL0000"),
        ],
    }
    values.update(overrides)
    return DhcpSpec(**values)


#: Spec variants (overrides of :func:`make_spec`) that every generator test runs through the real parsers.
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "http-only": {"cisco_pids": [], "juniper": None, "inventory": []},
    "https": {"pnp": PnpServer("192.0.2.10", https=True, https_port=8443, trustpool_url=TRUST, ntp="192.0.2.123")},
    "hostname": {"pnp": PnpServer(hostname="pnp.ztp.example.net"), "cisco_pids": ["C9300"]},
    "ipv6-server": {"pnp": PnpServer("2001:db8::10", port=8080), "cisco_pids": []},
    "pids": {
        "cisco_pids": [
            "C9300L",
            "C9300",
            CiscoPidClass("ISR4451-X/K9", PnpServer(hostname="pnp2.example.net")),
            CiscoPidClass("C11", PnpServer("192.0.2.10", https=True, trustpool_url=TRUST, ntp="192.0.2.123")),
        ]
    },
    "juniper-only": {"pnp": None, "cisco_pids": []},
    "juniper-dashed-models": {
        "juniper": JuniperZtp(
            JuniperFileServer("192.0.2.10", 80),
            [
                JuniperModel("qfx5100-48s-6q", "jinstall-host-qfx-5-21.4R3.15-signed.tgz"),
                JuniperModel("qfx5100"),
                JuniperModel("ex2300-c-12p", "junos-arm-32-21.4R3.15.tgz"),
                JuniperModel("ptx1000", "junos-evo-install-ptx-x86-64-23.4R2-EVO.iso"),
            ],
        )
    },
    "juniper-tftp": {"juniper": JuniperZtp(JuniperFileServer("192.0.2.10", transfer_mode="tftp"))},
    "juniper-no-models": {"juniper": JuniperZtp(JuniperFileServer("192.0.2.10", 8080, "https"))},
    "no-reservations": {"inventory": []},
    "minimal-subnet": {
        "subnet": Subnet("198.51.100.0/25", 42, "198.51.100.64", "198.51.100.126"),
        "inventory": [InventoryDevice("02:00:00:00:00:05", "198.51.100.5", "sw-5", vendor="juniper")],
    },
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests taking ``variant_spec`` run once per entry of :data:`VARIANTS`."""
    if "variant_spec" in metafunc.fixturenames:
        metafunc.parametrize("variant", sorted(VARIANTS))


@pytest.fixture
def variant_spec(variant: str) -> DhcpSpec:
    return make_spec(**VARIANTS[variant])


@pytest.fixture(name="make_spec")
def make_spec_fixture() -> Callable[..., DhcpSpec]:
    """:func:`make_spec` as a fixture (test modules here are not a package, so they cannot import conftest)."""
    return make_spec


@pytest.fixture
def spec() -> DhcpSpec:
    return make_spec()


class KeaDaemon:
    """A kea-dhcp4 on no interface with a unix control socket (``ctl``), its config file and log."""

    def __init__(self, kea_bin: str, work: Path, dhcp4: dict[str, Any] | None = None) -> None:
        import time

        from app.dhcp import KeaControl

        self.work = work
        self.config_file = work / "kea-dhcp4.conf"
        self.socket = work / "kea.sock"
        self.log = work / "kea.log"
        config = {
            "interfaces-config": {"interfaces": []},
            "control-socket": {"socket-type": "unix", "socket-name": str(self.socket)},
            "lease-database": {"type": "memfile", "persist": False},
            "option-data": [{"name": "domain-name", "data": "keep.example"}],
            "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": str(self.log)}], "severity": "DEBUG",
                         "debuglevel": 10}],
            **(dhcp4 or {}),
        }
        self.config_file.write_text(json.dumps({"Dhcp4": config}))
        env = dict(os.environ, KEA_PIDFILE_DIR=str(work), KEA_LOCKFILE_DIR=str(work))
        with (work / "kea.out").open("w") as out:
            self.proc = subprocess.Popen([kea_bin, "-c", str(self.config_file)], env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.ctl = KeaControl(str(self.socket), timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.ctl.command("version-get")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("kea-dhcp4 did not start: " + (work / "kea.out").read_text(errors="replace"))
                time.sleep(0.1)

    def commands(self) -> list[str]:
        """The control commands kea-dhcp4 received so far, from its log (COMMAND_RECEIVED lines)."""
        import re

        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"COMMAND_RECEIVED Received command '([a-z0-9-]+)'", text)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def kea_daemon(kea_bin: str):
    """A running kea-dhcp4 (:class:`KeaDaemon`) in a short temporary directory (unix socket paths are limited)."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="pnpkea-", dir="/tmp"))
    daemon = KeaDaemon(kea_bin, work)
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short folder under /tmp for the wire tests' servers (unix socket paths are limited to
    ~100 characters, tmp_path is too long)."""
    path = Path(tempfile.mkdtemp(prefix="pnpdhcp-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
