"""Push through a real Kea Control Agent (kea-ctrl-agent, HTTP basic authentication) to a real kea-dhcp4.

kea-dhcp4 listens on no interface (only its unix control socket), the agent on
127.0.0.1 at a free port. What kea-dhcp4 executed is read from its own log
(COMMAND_RECEIVED), so "nothing sent" is proven, not assumed. The unix socket
path without the agent is tested in test_dhcp_wire.py and test_dhcp_cli.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from app.cli import cli
from app.dhcp import (
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperOverrides,
    JuniperZtp,
    KeaControl,
    KeaError,
    KeaOptions,
    PnpServer,
    Subnet,
    kea_loads,
    kea_push,
)
from tests.helpers import write_settings

USER, PASSWORD = "pnp-push", "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def agent_bin() -> str:
    path = shutil.which("kea-ctrl-agent", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if path is None:
        pytest.fail("kea-ctrl-agent not found: apt-get install -y kea-ctrl-agent")
    return path


@pytest.fixture
def agent(kea_daemon, agent_bin) -> Iterator[str]:
    """kea-ctrl-agent in front of ``kea_daemon``; yields its URL."""
    work: Path = kea_daemon.work
    port = free_port()
    config = {"Control-agent": {
        "http-host": "127.0.0.1", "http-port": port,
        "authentication": {"type": "basic", "realm": "pnp-test", "clients": [{"user": USER, "password": PASSWORD}]},
        "control-sockets": {"dhcp4": {"socket-type": "unix", "socket-name": str(kea_daemon.socket)}},
        "loggers": [{"name": "kea-ctrl-agent", "output_options": [{"output": str(work / "agent.log")}],
                     "severity": "INFO"}],
    }}
    (work / "kea-ctrl-agent.conf").write_text(json.dumps(config))
    env = dict(os.environ, KEA_PIDFILE_DIR=str(work), KEA_LOCKFILE_DIR=str(work))
    with (work / "agent.out").open("w") as out:
        proc = subprocess.Popen([agent_bin, "-c", str(work / "kea-ctrl-agent.conf")], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.post(url, json={"command": "version-get"}, timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("kea-ctrl-agent did not start: " + (work / "agent.out").read_text(errors="replace"))
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def control(url: str, password: str = PASSWORD) -> KeaControl:
    return KeaControl(url, user=USER, password=password, timeout=10)


def test_push_through_the_agent_then_nothing_to_do(agent, kea_daemon, spec: DhcpSpec) -> None:
    result = kea_push(control(agent), spec)
    assert result.changed and result.applied and result.written
    assert kea_daemon.commands()[-4:] == ["config-get", "config-test", "config-set", "config-write"]
    running = control(agent).config_get()
    assert "juniper-ex4300-48p" in {c["name"] for c in running["Dhcp4"]["client-classes"]}
    written = kea_daemon.config_file.read_text()
    assert "juniper-ex4300-48p" in written
    mtime = kea_daemon.config_file.stat().st_mtime_ns

    # the same spec again: Kea's config-get form is recognised, nothing is tested, set or written
    before = len(kea_daemon.commands())
    again = kea_push(control(agent), spec)
    assert not again.changed and not again.applied and again.diff() == ""
    assert kea_daemon.commands()[before:] == ["config-get"]
    assert kea_daemon.config_file.stat().st_mtime_ns == mtime

    # one more device: one reservation more, pushed
    bigger = DhcpSpec(subnets=spec.subnets, pnp=spec.pnp, cisco_pids=spec.cisco_pids, juniper=spec.juniper,
                      inventory=[*spec.inventory, InventoryDevice("02:00:00:00:00:03", "192.0.2.23", "leaf-03")])
    third = kea_push(control(agent), bigger)
    assert third.changed
    diff = third.diff()
    assert '+            "hw-address": "02:00:00:00:00:03",' in diff
    assert sum(1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")) <= 1
    assert "02:00:00:00:00:03" in kea_loads(kea_daemon.config_file.read_text())["Dhcp4"]["subnet4"][0][
        "reservations"][-1]["hw-address"]


def test_wrong_password_is_refused(agent, kea_daemon, spec: DhcpSpec) -> None:
    with pytest.raises(KeaError, match="refused the credentials"):
        kea_push(control(agent, "wrong"), spec)
    with pytest.raises(KeaError, match="refused the credentials"):
        KeaControl(agent).config_get()  # no credentials at all
    assert "config-get" not in kea_daemon.commands()


def test_config_test_refusal_applies_nothing(agent, kea_daemon) -> None:
    ctl = control(agent)
    config = ctl.config_get()
    config["Dhcp4"]["subnet4"] = [{"id": 1, "subnet": "192.0.2.0/24",
                                   "reservations": [{"hw-address": "02:00:00:00:00:99", "ip-address": "192.0.2.50"}]}]
    ctl.config_set(config)
    before = ctl.config_get()
    # moving subnet 1 leaves the operator's reservation outside it: refused, but the helper may not move it
    moved = DhcpSpec(subnet=Subnet("198.51.100.0/24", 1, "198.51.100.100", "198.51.100.199"),
                     pnp=PnpServer("192.0.2.10"))
    with pytest.raises(ValueError, match="subnet id 1 is 192.0.2.0/24"):
        kea_push(ctl, moved)
    # a spec Kea itself refuses (flex_option hook at a wrong path): config-test says no, nothing applied
    spec = DhcpSpec(subnet=Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199"), pnp=PnpServer("192.0.2.10"),
                    juniper=JuniperZtp(JuniperFileServer("192.0.2.10")))
    with pytest.raises(KeaError) as err:
        kea_push(ctl, spec, KeaOptions(hooks_dir="/nonexistent"))
    assert err.value.command == "config-test"
    assert ctl.config_get() == before
    assert "config-set" not in kea_daemon.commands()[-2:]


def test_unsupported_command(agent) -> None:
    with pytest.raises(KeaError) as err:
        control(agent).command("no-such-command")
    assert err.value.result == 2


def test_cli_push_with_agent_credentials(agent, kea_daemon, tmp_path: Path) -> None:
    (tmp_path / "configs" / "juniper").mkdir(parents=True)
    (tmp_path / "configs" / "juniper" / "inventory.csv").write_text("mac,ip,hostname\naabb.cc00.0001,192.0.2.21,sw\n")
    path = write_settings(tmp_path / "settings_push.py", SERVER_IP="192.0.2.10", DHCP_SUBNET="192.0.2.0/24",
                          DHCP_POOL="192.0.2.100-192.0.2.199", JUNIPER_MODELS={"ex4300-48p": ""},
                          KEA_API_USER=USER)
    env = {"PNP_ROOT": str(tmp_path), "DATABASE_URL": "", "PNP_KEA_API_PASSWORD": PASSWORD}

    def push(*args: str):
        return CliRunner().invoke(cli, ["--settings", str(path), "dhcp", "push", "--socket", agent, *args], env=env,
                                  catch_exceptions=False)

    result = push("--dry-run", "--diff")
    assert result.exit_code == 0, result.output
    assert "tested (not applied)" in result.output
    assert '+            "hw-address": "aa:bb:cc:00:00:01",' in result.output
    assert "config-set" not in kea_daemon.commands()
    result = push()
    assert result.exit_code == 0 and "applied and written" in result.output
    result = push("--diff")
    assert result.exit_code == 0 and "nothing to change (no config-set, no config-write)" in result.output
    assert kea_daemon.commands()[-1] == "config-get"
    env["PNP_KEA_API_PASSWORD"] = "nope"
    result = push()
    assert result.exit_code == 1 and "refused the credentials" in result.output


def test_unreachable_socket(tmp_path) -> None:
    with pytest.raises(OSError):
        KeaControl(str(tmp_path / "missing.sock"), timeout=1).config_get()


def test_push_of_several_subnets_is_a_noop_the_second_time(kea_daemon) -> None:
    """Relays, an interface, a subnet without pool, a device with its own sub-options: Kea's config-get
    form of all of it is recognised (over the unix socket here)."""
    spec = DhcpSpec(
        subnets=[Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"], site="a"),
                 Subnet("203.0.113.0/24", 3, "203.0.113.100", "203.0.113.150", relay=["10.99.0.2"],
                        pools=[("203.0.113.200", "203.0.113.210")], syslog=["10.99.0.1"]),
                 Subnet("10.99.0.0/30", 4, interface="lo")],
        pnp=PnpServer("192.0.2.10"),
        juniper=JuniperZtp(JuniperFileServer("192.0.2.10", 8443, "https", server_options=(66, 150), boot_file=True),
                           [JuniperModel("ex4300-48p", "junos.tgz", image_type="symlink")]),
        inventory=[InventoryDevice("02:00:00:00:00:61", "192.0.2.61", "own", vendor="juniper", model="ex4300-48p",
                                   syslog=["192.0.2.5"],
                                   juniper=JuniperOverrides(image="x.tgz", alt_image="y.tgz", ftp_timeout=5)),
                   InventoryDevice("0200.0000.0062", hostname="by-site", subnet="a", vendor="juniper")],
    )
    assert kea_push(kea_daemon.ctl, spec).changed
    before = len(kea_daemon.commands())
    again = kea_push(kea_daemon.ctl, spec)
    assert not again.changed, again.diff()
    assert kea_daemon.commands()[before:] == ["config-get"]
