"""Input dataclasses: normalisation and the errors they raise."""

from __future__ import annotations

import ast
from pathlib import Path

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
    normalize_mac,
)

SUBNET = Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"])


@pytest.mark.parametrize(
    "mac", ["02:00:00:00:00:0A", "02-00-00-00-00-0a", "0200.0000.000a", "02000000000A", " 02:00:00:00:00:0a "]
)
def test_mac_forms(mac: str) -> None:
    assert normalize_mac(mac) == "02:00:00:00:00:0a"


@pytest.mark.parametrize("mac", ["", "02:00:00:00:00", "02:00:00:00:00:0g", "02:00:00:00:00:00:00"])
def test_bad_mac(mac: str) -> None:
    with pytest.raises(ValueError, match="invalid MAC"):
        normalize_mac(mac)


def test_subnet_normalises() -> None:
    s = Subnet("192.0.2.0/24", 7, "192.0.2.100", "192.0.2.199", routers=["192.0.2.1"], dns=["192.0.2.53"])
    assert s.routers == ("192.0.2.1",) and s.dns == ("192.0.2.53",) and s.ntp == ()
    assert s.in_pool("192.0.2.150") and not s.in_pool("192.0.2.21")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subnet": "192.0.2.1/24"}, "not an IPv4 CIDR"),
        ({"subnet": "2001:db8::/64"}, "not an IPv4 CIDR"),
        ({"id": 0}, "subnet id"),
        ({"id": True}, "subnet id"),
        ({"pool_start": "198.51.100.10"}, "not in subnet"),
        ({"pool_start": "192.0.2.200"}, "before pool start"),
        ({"pools": [("192.0.2.150", "192.0.2.250")]}, "overlap"),
        ({"pool_end": None}, "both pool_start and pool_end"),
        ({"routers": ["198.51.100.1"]}, "router 198.51.100.1 is not in subnet"),
        ({"routers": "192.0.2.1"}, "must be a list"),
        ({"dns": ["dns.example.net"]}, "must be an IPv4 address"),
        ({"domain": "bad domain"}, "not a valid domain"),
    ],
)
def test_subnet_errors(kwargs: dict, message: str) -> None:
    values = {"subnet": "192.0.2.0/24", "id": 1, "pool_start": "192.0.2.100", "pool_end": "192.0.2.199"}
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Subnet(**values)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "EX4300-48P"}, "lower-case"),
        ({"model": "ex4300_48p"}, "lower-case"),
        ({"model": "ex4300-"}, "lower-case"),
        ({"model": "ex4300", "image": "images/jinstall.tgz"}, "bare file name"),
        ({"model": "ex4300", "image": 'a"b.tgz'}, "not allowed"),
        ({"model": "ex4300", "config_mode": "static"}, "needs config_file"),
        ({"model": "ex4300", "config_file": "x.conf"}, "only used with config_mode 'static'"),
        ({"model": "ex4300", "config_mode": "static", "config_file": "a,b.conf"}, "not allowed"),
        ({"model": "ex4300", "config_mode": "per-serial"}, "config_mode must be"),
    ],
)
def test_juniper_model_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JuniperModel(**kwargs)


def test_juniper_model_names() -> None:
    m = JuniperModel("qfx5100-48s-6q")
    assert m.vci == "Juniper-qfx5100-48s-6q" and m.class_name == "juniper-qfx5100-48s-6q"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ip": "192.0.2.10", "port": 0}, "1-65535"),
        ({"ip": "file.example.net"}, "IPv4"),
        ({"ip": "192.0.2.10", "transfer_mode": "scp"}, "transfer_mode"),
    ],
)
def test_file_server_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JuniperFileServer(**kwargs)


def test_duplicate_model() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        JuniperZtp(JuniperFileServer("192.0.2.10"), [JuniperModel("mx204"), JuniperModel("mx204", "x.tgz")])


def test_pid_class_names() -> None:
    assert CiscoPidClass("C11").class_name == "cisco-pnp-c11"
    assert CiscoPidClass("ISR4451-X/K9").class_name == "cisco-pnp-isr4451-x-k9"
    with pytest.raises(ValueError, match="invalid Cisco PID"):
        CiscoPidClass("C9300'")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pnp": None, "cisco_pids": ["C11"]}, "need a default PnP server"),
        ({"cisco_pids": ["C9300/X", "C9300-X"]}, "collide"),
        ({"cisco_pids": ["C11", "C11"]}, "collide"),
        (
            {"inventory": [InventoryDevice("02:00:00:00:00:01", "192.0.2.21"), InventoryDevice("02-00-00-00-00-01")]},
            "appears twice",
        ),
        (
            {
                "inventory": [
                    InventoryDevice("02:00:00:00:00:01", "192.0.2.21"),
                    InventoryDevice("02:00:00:00:00:02", "192.0.2.21"),
                ]
            },
            "reserved twice",
        ),
        (
            {
                "inventory": [
                    InventoryDevice("02:00:00:00:00:01", hostname="a"),
                    InventoryDevice("02:00:00:00:00:02", hostname="A"),
                ]
            },
            "hostname 'A' appears twice",
        ),
        ({"inventory": [InventoryDevice("02:00:00:00:00:01", "198.51.100.5")]}, "in none of the subnets"),
        ({"inventory": [InventoryDevice("02:00:00:00:00:01", "192.0.2.5", subnet="site-x")]}, "not in 'site-x'"),
        ({"inventory": [InventoryDevice("02:00:00:00:00:01", hostname="a", subnet="site-x")]}, "names none"),
        ({"inventory": [InventoryDevice("02:00:00:00:00:01", "192.0.2.1")]}, "router address"),
        ({"inventory": [InventoryDevice("02:00:00:00:00:01", "192.0.2.255")]}, "broadcast"),
        ({"inventory": [InventoryDevice("02:00:00:00:00:01")]}, "needs ip or hostname"),
    ],
)
def test_spec_errors(make_spec, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mac": "xx"}, "invalid MAC"),
        ({"ip": "192.0.2"}, "IPv4"),
        ({"hostname": "sw_01"}, "not a valid host name"),
        ({"vendor": "arista"}, "vendor must be"),
        ({"serial": "FGL\n1"}, "not allowed"),
    ],
)
def test_inventory_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InventoryDevice(**kwargs)


def test_spec_orders(make_spec) -> None:
    spec = make_spec(
        cisco_pids=["C9300", "C11", "C9300L"],
        juniper=JuniperZtp(
            JuniperFileServer("192.0.2.10"),
            [JuniperModel("mx204"), JuniperModel("ex4300"), JuniperModel("ex4300-48p"), JuniperModel("ex2300")],
        ),
    )
    assert [p.pid_prefix for p in spec.pid_classes()] == ["C9300L", "C9300", "C11"]
    assert [m.model for m in spec.juniper_models()] == ["ex4300-48p", "ex2300", "ex4300", "mx204"]
    assert [d.mac for d in spec.reservations()] == ["02:00:00:00:00:01", "02:00:00:00:00:02"]  # no-MAC device left out
    assert all(isinstance(p, CiscoPidClass) for p in spec.cisco_pids)


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        PnpServer("192.0.2.10").port = 81  # type: ignore[misc]
    assert DhcpSpec(SUBNET).inventory == ()


def test_module_imports_only_stdlib() -> None:
    """The helper must not import Flask or the rest of app/ but the pure helpers of app/common
    (which import only the standard library themselves)."""
    allowed = {"__future__", "collections", "copy", "dataclasses", "difflib", "glob", "ipaddress", "json", "os", "re"}
    allowed |= {"socket", "sysconfig", "time", "typing", "urllib", "requests"}
    for path in sorted((Path(__file__).parents[2] / "app" / "dhcp").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith("app.common."):
                    continue
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
    for path in sorted((Path(__file__).parents[2] / "app" / "common").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("app."):
                assert (node.module or "").startswith("app.common."), f"common/{path.name} imports {node.module}"


def test_reservation_inside_a_pool_is_a_warning() -> None:
    """Kea and dhcpd both accept a reservation inside a pool (never leased to another client)."""
    subnet = Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199")
    spec = DhcpSpec(subnet=subnet, inventory=[InventoryDevice("02:00:00:00:00:01", "192.0.2.150")])
    (warning,) = spec.warnings
    assert "192.0.2.150 is inside a dynamic pool of subnet 192.0.2.0/24" in warning
    assert spec.reservations(1)[0].ip == "192.0.2.150"


def test_devices_are_placed_by_ip_or_subnet_column() -> None:
    a = Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199", site="Lab")
    b = Subnet("198.51.100.0/24", 7, "198.51.100.100", "198.51.100.199")
    devices = [InventoryDevice("02:00:00:00:00:01", "198.51.100.5"),
               InventoryDevice("aabb.ccdd.eeff", hostname="by-site", subnet="lab"),
               InventoryDevice("02:00:00:00:00:03", hostname="by-id", subnet="7"),
               InventoryDevice("02:00:00:00:00:04", hostname="by-cidr", subnet="192.0.2.0/24")]
    spec = DhcpSpec(subnets=[a, b], inventory=devices)
    assert [d.hostname or d.ip for d in spec.reservations(1)] == ["by-cidr", "by-site"]
    assert [d.hostname or d.ip for d in spec.reservations(7)] == ["198.51.100.5", "by-id"]
    assert spec.reservations(1)[1].mac == "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ValueError, match="which subnet"):
        DhcpSpec(subnets=[a, b], inventory=[InventoryDevice("02:00:00:00:00:09", hostname="x")])
    with pytest.raises(ValueError, match="overlap"):
        DhcpSpec(subnets=[a, Subnet("192.0.2.128/25", 2, "192.0.2.130", "192.0.2.140")])
    with pytest.raises(ValueError, match="id 1 is used twice"):
        DhcpSpec(subnets=[a, Subnet("198.51.100.0/24", 1, "198.51.100.100", "198.51.100.199")])
