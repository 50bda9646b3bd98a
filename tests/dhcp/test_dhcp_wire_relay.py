"""Two relayed subnets on the wire: a DHCP relay (ISC ``dhcrelay``) between the clients and the server.

Topology, in network namespaces of our own (removed in the finalizer):

    pnprl-cli-<pid>                 pnprl-rly-<pid>                        pnprl-srv-<pid>
    cli-a  ---------------  vlan-a 192.0.2.1/24
                                       dhcrelay  up-rly 10.99.0.2/30 ---- up-srv 10.99.0.1/30  kea-dhcp4 | dhcpd
    cli-b  ---------------  vlan-b 198.51.100.1/24

The relay puts its downstream address in giaddr, so the server picks the
subnet of each client from it. Juniper runs in ``https`` transfer mode (sub-option
5 is the HTTPS port) and announces its file server in options 150 and 66, the
config name in 67 as well. The namespaces come from tests/dhcp/netlab.py; not root, no
``ip netns`` or a missing kea-dhcp4, dhcpd or dhcrelay fails the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.dhcp import (
    DhcpdOptions,
    DhcpSpec,
    InventoryDevice,
    JuniperFileServer,
    JuniperModel,
    JuniperZtp,
    KeaOptions,
    PnpServer,
    Subnet,
    dhcpd_config,
    kea_config,
    kea_dumps,
)
from tests.dhcp.netlab import SBIN_PATH, NetLab, background, netlab, text_of

IMAGE = "jinstall-ex-4300-21.4R3.15-signed.tgz"

pytestmark = pytest.mark.netns


def relay_spec() -> DhcpSpec:
    return DhcpSpec(
        subnets=[
            Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"], site="site-a"),
            Subnet("198.51.100.0/24", 2, "198.51.100.100", "198.51.100.149", routers=["198.51.100.1"],
                   pools=[("198.51.100.200", "198.51.100.209")], syslog=["198.51.100.5"], site="site-b"),
            Subnet("10.99.0.0/30", 3, interface="up-srv"),  # the server's own link: no pool
        ],
        pnp=PnpServer("192.0.2.10"),
        juniper=JuniperZtp(JuniperFileServer("192.0.2.10", 8443, "https", server_options=(66, 150), boot_file=True),
                           [JuniperModel("ex4300-48p", IMAGE)]),
        inventory=[
            InventoryDevice("02:00:00:00:0b:21", "198.51.100.21", "sw-b-21", vendor="juniper"),
            InventoryDevice("02:00:00:00:0a:22", hostname="sw-a-22", subnet="site-a", vendor="juniper"),
        ],
    )


def sub43(data: bytes) -> dict[int, str]:
    subs: dict[int, str] = {}
    i = 0
    while i < len(data):
        code, length = data[i], data[i + 1]
        subs[code] = data[i + 2 : i + 2 + length].decode()
        i += 2 + length
    return subs


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    with netlab("pnprl", "srv", "rly", "cli") as net:
        net.veth("srv", "up-srv", "rly", "up-rly")
        for vlan, cli in (("vlan-a", "cli-a"), ("vlan-b", "cli-b")):
            net.veth("rly", vlan, "cli", cli)
        net.addr("srv", "10.99.0.1/30", "up-srv")
        net.addr("rly", "10.99.0.2/30", "up-rly")
        net.addr("rly", "192.0.2.1/24", "vlan-a")
        net.addr("rly", "198.51.100.1/24", "vlan-b")
        net.up("srv", "up-srv")
        net.up("rly", "up-rly", "vlan-a", "vlan-b")
        net.up("cli", "cli-a", "cli-b")
        for prefix in ("192.0.2.0/24", "198.51.100.0/24"):  # answers go back to the relay's giaddr
            net.run("-n", net.ns["srv"], "route", "add", prefix, "via", "10.99.0.2")
        yield net


@pytest.fixture
def relay(lab: NetLab, workdir: Path) -> Iterator[None]:
    binary = shutil.which("dhcrelay", path=SBIN_PATH)
    if binary is None:
        pytest.fail("dhcrelay not found: apt-get install -y isc-dhcp-relay")
    log = workdir / "dhcrelay.out"
    cmd = lab.in_ns("rly", binary, "-4", "-d", "-pf", str(workdir / "dhcrelay.pid"),
                    "-iu", "up-rly", "-id", "vlan-a", "-id", "vlan-b", "10.99.0.1")
    with background(cmd, log, lambda: "Sending on" in text_of(log)):
        yield


@pytest.fixture(params=["kea", "dhcpd"])
def server(request, lab: NetLab, workdir: Path, kea_bin: str, dhcpd_bin: str) -> Iterator[str]:
    spec = relay_spec()
    if request.param == "kea":
        config = workdir / "kea.conf"
        options = KeaOptions(interfaces=["up-srv"], control_socket=None, lease_file=str(workdir / "leases.csv"),
                             log_output=str(workdir / "kea.log"))
        config.write_text(kea_dumps(kea_config(spec, options)))
        env = dict(os.environ, KEA_PIDFILE_DIR=str(workdir), KEA_LOCKFILE_DIR=str(workdir))
        log = workdir / "kea.log"
        with background(lab.in_ns("srv", kea_bin, "-c", str(config)), workdir / "kea.out",
                        lambda: "DHCP4_STARTED" in text_of(log), env):
            yield "kea"
    else:
        config = workdir / "dhcpd.conf"
        config.write_text(dhcpd_config(spec, DhcpdOptions(ping_check=False)))
        (workdir / "dhcpd.leases").touch()
        log = workdir / "dhcpd.out"
        cmd = lab.in_ns("srv", dhcpd_bin, "-4", "-f", "-d", "-cf", str(config), "-lf", str(workdir / "dhcpd.leases"),
                        "-pf", str(workdir / "dhcpd.pid"), "up-srv")
        with background(cmd, log, lambda: "Server starting service." in text_of(log)):
            yield "dhcpd"


def in_range(addr: str, first: str, last: str) -> bool:
    def num(a: str) -> int:
        return int.from_bytes(bytes(int(x) for x in a.split(".")), "big")

    return num(first) <= num(addr) <= num(last)


def test_two_relayed_subnets(lab: NetLab, relay: None, server: str) -> None:
    a = lab.dhcp_clients("cli", "cli-a", [{"mac": "02:00:00:00:0a:01", "vci": "Juniper-ex4300-48p"},
                              {"mac": "02:00:00:00:0a:22", "vci": "Juniper-EX4300-48P-PE3714AB0022"},
                              {"mac": "02:00:00:00:0a:03", "vci": "ciscopnp"}])
    b = lab.dhcp_clients("cli", "cli-b", [{"mac": "02:00:00:00:0b:01", "vci": "JUNIPER-ex4300-48p-WS0001"},
                              {"mac": "02:00:00:00:0b:21", "vci": "Juniper-ex4300-48p"}])
    assert all(a) and all(b), f"{server}: no OFFER for some client: {a} {b}"
    router_a, router_b = bytes([192, 0, 2, 1]).hex(), bytes([198, 51, 100, 1]).hex()

    # subnet A (giaddr 192.0.2.1): pool addresses, its router; sw-a-22 reserved by site, hostname only
    assert in_range(a[0]["yiaddr"], "192.0.2.100", "192.0.2.199") and a[0]["options"]["3"] == router_a
    assert in_range(a[1]["yiaddr"], "192.0.2.100", "192.0.2.199")
    assert bytes.fromhex(a[1]["options"]["12"]) == b"sw-a-22"
    assert bytes.fromhex(a[2]["options"]["43"]) == b"5A1N;B2;K4;I192.0.2.10;J80"
    # subnet B (giaddr 198.51.100.1): its router, its syslog server, the reservation
    assert in_range(b[0]["yiaddr"], "198.51.100.100", "198.51.100.149") and b[0]["options"]["3"] == router_b
    assert b[0]["options"]["7"] == bytes([198, 51, 100, 5]).hex()
    assert b[1]["yiaddr"] == "198.51.100.21"

    # https transfer mode: sub-option 3 https, 5 the HTTPS port; the image per MAC, any VCI case
    for offer, mac, vci in ((a[0], "02-00-00-00-0a-01", "Juniper-ex4300-48p"),
                            (a[1], "02-00-00-00-0a-22", "Juniper-EX4300-48P-PE3714AB0022"),
                            (b[0], "02-00-00-00-0b-01", "JUNIPER-ex4300-48p-WS0001")):
        subs = sub43(bytes.fromhex(offer["options"]["43"]))
        assert subs == {0: f"ztp_fetch/image/{vci}/{mac}/{IMAGE}", 1: f"ztp_fetch/conf/{vci}/{mac}.conf",
                        3: "https", 5: "8443"}, f"{server}: {vci}"
        assert offer["options"]["150"] == bytes([192, 0, 2, 10]).hex()
        assert bytes.fromhex(offer["options"]["66"]) == b"192.0.2.10"  # the file server by name as well
        assert bytes.fromhex(offer["options"]["67"]).rstrip(b"\0") == f"ztp_fetch/conf/{vci}/{mac}.conf".encode()
