"""Real DHCP exchanges: kea-dhcp4 / dhcpd with the generated configs, in network namespaces of our own.

Topology (created here, removed in the fixture finalizer even on failure):
``pnptest-srv-<pid>`` holds ``veth-srv`` 192.0.2.1/24 (TEST-NET-1) and the
server; ``pnptest-cli-<pid>`` holds the peer ``veth-cli`` and the scapy client
(``dhcp_client.py``), set up by tests/dhcp/netlab.py. No traffic leaves the veth
pair. Not root, no ``ip netns`` or a missing kea-dhcp4/dhcpd fails the test
(deselect with ``-m 'not netns'``).

Also here: :mod:`app.dhcp.kea_api` against the running kea-dhcp4 through its
unix control socket (config-get, merge, config-test, config-set, config-write).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.dhcp import (
    CiscoPidClass,
    DhcpdOptions,
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
    dhcpd_config,
    kea_config,
    kea_dumps,
    kea_loads,
    kea_push,
)
from tests.dhcp.netlab import NetLab, background, netlab, text_of

pytestmark = pytest.mark.netns

IMAGE_EX4300 = "jinstall-ex-4300-21.4R3.15-signed.tgz"
IMAGE_MX = "junos-vmhost-install-mx-x86-64-23.4R2.tgz"
IMAGE_QFX = "jinstall-host-qfx-5-21.4R3.15-signed.tgz"
OPT150 = bytes([192, 0, 2, 10]).hex()


def wire_spec(extra_models: tuple[JuniperModel, ...] = ()) -> DhcpSpec:
    return DhcpSpec(
        subnet=Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"]),
        pnp=PnpServer("192.0.2.10"),
        # C11 gets another port, so an OFFER with J8080 proves the option-124 PID class matched
        cisco_pids=[CiscoPidClass("C11", PnpServer("192.0.2.10", port=8080)), "C9300"],
        juniper=JuniperZtp(
            JuniperFileServer("192.0.2.10", 8080),
            [
                JuniperModel("ex4300-48p", IMAGE_EX4300),
                JuniperModel("ex4300"),
                JuniperModel("mx204", IMAGE_MX),
                JuniperModel("srx320", config_mode="static", config_file="configs/srx320-base.conf"),
                *extra_models,
            ],
        ),
        inventory=[
            InventoryDevice("02:00:00:00:00:01", "192.0.2.21", "sw-access-01", vendor="juniper", model="ex4300-48p"),
            InventoryDevice("02:00:00:00:00:02", "192.0.2.22", "rtr-01", pid="C1131-8PWB"),
            OWN,
        ],
    )


#: A device with every per-device option: its own image and sub-options 2/4/7/8, syslog (7), NTP (42).
OWN = InventoryDevice("02:00:00:00:00:61", "192.0.2.61", "sw-own-61", vendor="juniper", model="ex4300-48p",
                      syslog=["192.0.2.5"], ntp=["192.0.2.123"],
                      juniper=JuniperOverrides(image="jinstall-own.tgz", image_type="symlink", alt_image="alt.tgz",
                                               ftp_timeout=120, proxy="192.0.2.8"))


def per_mac(vci: str, mac: str) -> str:
    return f"ztp_fetch/conf/{vci}/{mac.replace(':', '-')}.conf"


def juniper(mac: str, vci: str, image: str | None = None, config: str | None = None) -> dict[int, str]:
    subs = {1: config or per_mac(vci, mac), 3: "http", 5: "8080"}
    if image:  # per MAC, so the download lands in the device's history
        subs[0] = f"ztp_fetch/image/{vci}/{mac.replace(':', '-')}/{image}"
    return subs


# (client, expected yiaddr or None for "any pool address", expected option 43, option 150 expected)
# option 43: str = raw Cisco PnP string, dict = Juniper sub-options, None = absent
CASES: list[tuple[dict[str, str], str | None, Any, bool]] = [
    ({"mac": "02:00:00:00:00:31", "vci": "ciscopnp", "pid": "C1131-8PWB"}, None, "5A1N;B2;K4;I192.0.2.10;J8080", False),
    ({"mac": "02:00:00:00:00:32", "vci": "ciscopnp", "pid": "C9300-48P"}, None, "5A1N;B2;K4;I192.0.2.10;J80", False),
    ({"mac": "02:00:00:00:00:33", "vci": "ciscopnp"}, None, "5A1N;B2;K4;I192.0.2.10;J80", False),
    (
        {"mac": "02:00:00:00:00:02", "vci": "ciscopnp", "pid": "C1131-8PWB"},
        "192.0.2.22",
        "5A1N;B2;K4;I192.0.2.10;J8080",
        False,
    ),
    (
        {"mac": "0a:1b:2c:3d:4e:5f", "vci": "Juniper-ex4300-48p"},
        None,
        juniper("0a:1b:2c:3d:4e:5f", "Juniper-ex4300-48p", IMAGE_EX4300),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:41", "vci": "Juniper-ex4300-48p-PE3714AB0001"},
        None,
        juniper("02:00:00:00:00:41", "Juniper-ex4300-48p-PE3714AB0001", IMAGE_EX4300),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:42", "vci": "Juniper-ex4300-24t"},
        None,
        juniper("02:00:00:00:00:42", "Juniper-ex4300-24t"),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:43", "vci": "Juniper-mx204-DD123"},
        None,
        juniper("02:00:00:00:00:43", "Juniper-mx204-DD123", IMAGE_MX),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:44", "vci": "Juniper-srx320"},
        None,
        juniper("02:00:00:00:00:44", "Juniper-srx320", config="configs/srx320-base.conf"),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:45", "vci": "Juniper-mx10003"},
        None,
        juniper("02:00:00:00:00:45", "Juniper-mx10003"),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:01", "vci": "Juniper-ex4300-48p"},
        "192.0.2.21",
        juniper("02:00:00:00:00:01", "Juniper-ex4300-48p", IMAGE_EX4300),
        True,
    ),
    ({"mac": "02:00:00:00:00:51", "vci": "MSFT 5.0"}, None, None, False),
    # option 60 in another case: same classes (the URL keeps the VCI as sent; /ztp_fetch reads any case)
    (
        {"mac": "02:00:00:00:00:46", "vci": "Juniper-EX4300-48P-PE3714AB0002"},
        None,
        juniper("02:00:00:00:00:46", "Juniper-EX4300-48P-PE3714AB0002", IMAGE_EX4300),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:47", "vci": "JUNIPER-MX204"},
        None,
        juniper("02:00:00:00:00:47", "JUNIPER-MX204", IMAGE_MX),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:48", "vci": "juniper-srx320"},
        None,
        juniper("02:00:00:00:00:48", "juniper-srx320", config="configs/srx320-base.conf"),
        True,
    ),
    (
        {"mac": "02:00:00:00:00:61", "vci": "Juniper-ex4300-48p-PE3714AB0061"},
        "192.0.2.61",
        {0: "ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-61/jinstall-own.tgz",
         1: per_mac("Juniper-ex4300-48p-PE3714AB0061", "02:00:00:00:00:61"), 2: "symlink", 3: "http",
         4: "alt.tgz", 5: "8080", 7: "120", 8: "192.0.2.8"},
        True,
    ),
]


def parse_tlv(data: bytes) -> dict[int, str]:
    """Juniper option-43 sub-options; every byte must belong to a TLV."""
    subs: dict[int, str] = {}
    i = 0
    while i < len(data):
        code, length = data[i], data[i + 1]
        assert i + 2 + length <= len(data), f"truncated sub-option {code} in {data!r}"
        assert code not in subs, f"sub-option {code} twice"
        subs[code] = data[i + 2 : i + 2 + length].decode()
        i += 2 + length
    return subs


def check_offers(cases: list[tuple[dict[str, str], str | None, Any, bool]], offers: list[Any], server: str) -> None:
    for (client, yiaddr, option43, has150), offer in zip(cases, offers, strict=True):
        who = f"{server}: {client}"
        assert offer is not None, f"{who}: no OFFER"
        opts = offer["options"]
        if yiaddr is not None:
            assert offer["yiaddr"] == yiaddr, who
        else:
            assert 100 <= int(offer["yiaddr"].split(".")[-1]) <= 199, who
        raw43 = bytes.fromhex(opts["43"]) if "43" in opts else None
        if option43 is None:
            assert raw43 is None, f"{who}: unexpected option 43 {raw43!r}"
        elif isinstance(option43, str):
            assert raw43 == option43.encode("ascii"), f"{who}: option 43 {raw43!r}"  # exactly the raw string
        else:
            assert raw43 is not None, f"{who}: no option 43"
            assert parse_tlv(raw43) == option43, who
        assert (opts.get("150") == OPT150) if has150 else ("150" not in opts), f"{who}: option 150 {opts.get('150')}"
        if client["mac"] == OWN.mac:  # per-device options 7 (syslog), 42 (NTP), 12 (host name)
            assert opts.get("7") == bytes([192, 0, 2, 5]).hex(), f"{who}: option 7 {opts.get('7')}"
            assert opts.get("42") == bytes([192, 0, 2, 123]).hex(), f"{who}: option 42 {opts.get('42')}"
            assert bytes.fromhex(opts.get("12", "")) == b"sw-own-61", f"{who}: option 12 {opts.get('12')}"


# --------------------------------------------------------------------------- namespaces and servers


@pytest.fixture(scope="module")
def netns() -> Iterator[NetLab]:
    """``srv`` holds veth-srv 192.0.2.1/24 and the server, ``cli`` the peer veth-cli and the client."""
    with netlab("pnptest", "srv", "cli") as lab:
        lab.veth("srv", "veth-srv", "cli", "veth-cli")
        lab.addr("srv", "192.0.2.1/24", "veth-srv")
        lab.up("srv", "veth-srv")
        lab.up("cli", "veth-cli")
        yield lab


def offers_for(lab: NetLab, clients: list[dict[str, str]]) -> list[Any]:
    return lab.dhcp_clients("cli", "veth-cli", clients)


@dataclass
class KeaRun:
    ctl: KeaControl
    config_file: Path
    log: Path


@pytest.fixture
def kea_server(netns: NetLab, kea_bin: str, workdir: Path) -> Iterator[KeaRun]:
    config_file = workdir / "kea-dhcp4.conf"
    options = KeaOptions(
        interfaces=["veth-srv"],
        control_socket=str(workdir / "kea4.sock"),
        lease_file=str(workdir / "leases4.csv"),
        log_output=str(workdir / "kea.log"),
    )
    config_file.write_text(kea_dumps(kea_config(wire_spec(), options)))
    env = dict(os.environ, KEA_PIDFILE_DIR=str(workdir), KEA_LOCKFILE_DIR=str(workdir))
    ctl = KeaControl(str(workdir / "kea4.sock"), timeout=5)

    def answers() -> bool:
        try:
            ctl.command("version-get")
        except OSError:
            return False
        return True

    cmd = netns.in_ns("srv", kea_bin, "-c", str(config_file))
    with background(cmd, workdir / "kea.out", answers, env, timeout=15):
        yield KeaRun(ctl, config_file, workdir / "kea.log")


@pytest.fixture
def dhcpd_server(netns: NetLab, dhcpd_bin: str, workdir: Path) -> Iterator[None]:
    config_file = workdir / "dhcpd.conf"
    config_file.write_text(dhcpd_config(wire_spec(), DhcpdOptions(ping_check=False)))
    leases = workdir / "dhcpd.leases"
    leases.touch()
    log = workdir / "dhcpd.out"
    cmd = netns.in_ns("srv", dhcpd_bin, "-4", "-f", "-d", "-cf", str(config_file), "-lf", str(leases),
                      "-pf", str(workdir / "dhcpd.pid"), "veth-srv")
    with background(cmd, log, lambda: "Server starting service." in text_of(log), timeout=15):
        yield


# --------------------------------------------------------------------------- tests


def test_kea_offers(netns: NetLab, kea_server: KeaRun) -> None:
    offers = offers_for(netns, [c for c, *_ in CASES])
    check_offers(CASES, offers, "kea")


def test_dhcpd_offers(netns: NetLab, dhcpd_server: None) -> None:
    offers = offers_for(netns, [c for c, *_ in CASES])
    check_offers(CASES, offers, "dhcpd")


def test_kea_push_over_unix_socket(netns: NetLab, kea_server: KeaRun, kea_check) -> None:
    ctl = kea_server.ctl
    running = ctl.config_get()
    assert "juniper-qfx5100-48s-6q" not in {c["name"] for c in running["Dhcp4"]["client-classes"]}

    # add a model and a device, push: config-get -> merge -> config-test -> config-set -> config-write
    qfx = JuniperModel("qfx5100-48s-6q", IMAGE_QFX)
    spec = DhcpSpec(
        subnet=wire_spec().subnet,
        pnp=wire_spec().pnp,
        cisco_pids=wire_spec().cisco_pids,
        juniper=wire_spec((qfx,)).juniper,
        inventory=[
            *wire_spec().inventory,
            InventoryDevice("02:00:00:00:00:03", "192.0.2.23", "leaf-01", vendor="juniper"),
        ],
    )
    merged = kea_push(ctl, spec).after
    assert "juniper-qfx5100-48s-6q" in {c["name"] for c in merged["Dhcp4"]["client-classes"]}

    live = ctl.config_get()["Dhcp4"]
    assert "juniper-qfx5100-48s-6q" in {c["name"] for c in live["client-classes"]}
    assert "02:00:00:00:00:03" in {r["hw-address"] for r in live["subnet4"][0]["reservations"]}

    # config-write persisted it into the file Kea was started with; the file passes -t
    written = kea_loads(kea_server.config_file.read_text())
    assert "juniper-qfx5100-48s-6q" in {c["name"] for c in written["Dhcp4"]["client-classes"]}
    written["Dhcp4"]["interfaces-config"]["interfaces"] = ["*"]  # -t checks named interfaces on this host
    written["Dhcp4"].pop("control-socket", None)
    kea_check(written)

    # the running server uses it: a qfx gets its image, the new reservation holds
    cases = [
        (
            {"mac": "02:00:00:00:00:03", "vci": "Juniper-qfx5100-48s-6q-WS3718350001"},
            "192.0.2.23",
            juniper("02:00:00:00:00:03", "Juniper-qfx5100-48s-6q-WS3718350001", IMAGE_QFX),
            True,
        )
    ]
    check_offers(cases, offers_for(netns, [c for c, *_ in cases]), "kea after push")

    # pushing again changes nothing: Kea's own canonical form is recognised, nothing is sent
    again = kea_push(ctl, spec)
    assert not again.changed and again.before == again.after


def test_kea_push_refuses_what_config_test_rejects(kea_server: KeaRun) -> None:
    ctl = kea_server.ctl
    # a hand-made reservation (not ours) at 192.0.2.50 in subnet 1
    config = ctl.config_get()
    config["Dhcp4"]["subnet4"][0]["reservations"].append(
        {"hw-address": "02:00:00:00:00:99", "ip-address": "192.0.2.50"}
    )
    ctl.config_set(config)
    before = ctl.config_get()

    # moving subnet 1 elsewhere leaves that reservation outside it: Kea's config-test says no
    moved = DhcpSpec(
        subnet=Subnet("198.51.100.0/24", 1, "198.51.100.100", "198.51.100.199"), pnp=PnpServer("192.0.2.10")
    )
    with pytest.raises(KeaError, match="not within the IPv4 subnet") as err:
        kea_push(ctl, moved)
    assert err.value.command == "config-test" and err.value.result == 1
    assert ctl.config_get() == before  # nothing applied
    with pytest.raises(KeaError, match="unknown command|not supported|not implemented"):
        ctl.command("no-such-command")
