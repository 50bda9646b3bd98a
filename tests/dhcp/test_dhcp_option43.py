"""Cisco PnP option-43 builder and validator (docs/protocol.md §1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.dhcp import PnpServer, parse_option43, pnp_option43

TRUST = "http://192.0.2.10/ca/bundle.pem"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (PnpServer("192.0.2.10"), "5A1N;B2;K4;I192.0.2.10;J80"),
        (PnpServer("192.0.2.10", port=8080), "5A1N;B2;K4;I192.0.2.10;J8080"),
        (
            PnpServer("192.0.2.10", https=True, trustpool_url=TRUST, ntp="192.0.2.1"),
            f"5A1N;B2;K5;I192.0.2.10;J443;T{TRUST};Z192.0.2.1",
        ),
        (
            PnpServer("192.0.2.10", https=True, https_port=8443, trustpool_url=TRUST, ntp="192.0.2.1"),
            f"5A1N;B2;K5;I192.0.2.10;J8443;T{TRUST};Z192.0.2.1",
        ),
        (PnpServer(hostname="pnp.example.net"), "5A1N;B1;K4;Ipnp.example.net;J80"),
        (PnpServer("192.0.2.10", hostname="pnp.example.net"), "5A1N;B1;K4;Ipnp.example.net;J80"),
        (PnpServer("2001:DB8:0::10", port=5000), "5A1N;B3;K4;I2001:db8::10;J5000"),
        (PnpServer("192.0.2.10", debug=True), "5A1D;B2;K4;I192.0.2.10;J80"),
        (PnpServer("192.0.2.10", ntp="192.0.2.1"), "5A1N;B2;K4;I192.0.2.10;J80;Z192.0.2.1"),
    ],
)
def test_builder(server: PnpServer, expected: str) -> None:
    assert pnp_option43(server) == expected
    assert parse_option43(expected)["I"] in expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "token I is required"),
        ({"ip": "192.0.2.10", "port": 0}, "1-65535"),
        ({"ip": "192.0.2.10", "port": 65536}, "1-65535"),
        ({"ip": "192.0.2.10", "port": True}, "1-65535"),
        ({"ip": "192.0.2.10", "https": True, "https_port": 70000, "trustpool_url": TRUST, "ntp": "192.0.2.1"}, "65535"),
        ({"ip": "192.0.2.10", "https": True}, r"K5\) needs trustpool_url \(T\) and ntp \(Z\)"),
        ({"ip": "192.0.2.10", "https": True, "trustpool_url": TRUST}, "needs trustpool_url"),
        ({"ip": "192.0.2.10", "https": True, "ntp": "192.0.2.1"}, "needs trustpool_url"),
        ({"ip": "192.0.2.10", "trustpool_url": TRUST}, "needs Z"),
        (
            {"ip": "192.0.2.10", "https": True, "trustpool_url": "ftp://x/ca.pem", "ntp": "192.0.2.1"},
            "http:// or https://",
        ),
        ({"ip": "192.0.2.10", "https": True, "trustpool_url": "http://x/a;b", "ntp": "192.0.2.1"}, "not allowed"),
        ({"ip": "192.0.2.10", "https": True, "trustpool_url": TRUST, "ntp": "ntp.example.net"}, "IP address"),
        ({"ip": "192.0.2.300"}, "not an IPv4/IPv6 address nor a valid host name"),
        ({"ip": "pnp server"}, "not an IPv4/IPv6 address"),
        ({"hostname": "192.0.2.10"}, "is an address: pass it as ip"),
        ({"hostname": "-bad-.example.net"}, "not an IPv4/IPv6 address nor a valid host name"),
        ({"ip": "not-an-ip", "hostname": "pnp.example.net"}, "is not an IP address"),
    ],
)
def test_builder_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PnpServer(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5A1N;B2;K4;I192.0.2.10;J80", {"B": "2", "K": "4", "I": "192.0.2.10", "J": "80"}),
        ("5A1N;B2;K4;I192.0.2.10;J80;", {"J": "80"}),  # trailing ';'
        ("5A;B2;K4;I10.2.3.4;J80", {"header": "5A"}),  # 1N left out (ISR1k)
        ("5A1D;K4;B2;I198.18.168.3;J8080", {"header": "5A1D", "J": "8080"}),  # free order
        ("5A1D;K4;B2;I192.0.2.16", {"J": "80"}),  # J defaulted for K4
        ("5A1N;I192.0.2.16", {"B": "2", "K": "4", "J": "80"}),
        (f"5A1N;K5;I192.0.2.10;T{TRUST};Z192.0.2.1", {"J": "443"}),  # J defaulted for K5
        ("5A1N;B1;K4;Ipnp.example.net;J80", {"B": "1"}),
        ("5A1N;B3;K4;I2001:db8::10;J80", {"B": "3"}),
    ],
)
def test_parse(text: str, expected: dict[str, str]) -> None:
    tokens = parse_option43(text)
    for key, value in expected.items():
        assert tokens[key] == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("5P1N;B2;K4;I192.0.2.10;J80", "passive"),
        ("6A1N;I192.0.2.10", "must start with 5A1N"),
        ("5A1N;B2;K4;J80", "needs I"),
        ("5A1N;B2;K1;I192.0.2.10;J80", "obsolete XMPP"),
        ("5A1N;B2;K4;I192.0.2.10;J80;J81", "twice"),
        ("5A1N;B2;K4;I192.0.2.10;X1", "unknown option 43 token"),
        ("5A1N;B2;;I192.0.2.10", "empty token"),
        ("5A1N;B2;K4;I", "no value"),
        ("5A1N;B2;K4;I192.0.2.10;J0", "1-65535"),
        ("5A1N;B2;K4;I192.0.2.10;J65536", "1-65535"),
        ("5A1N;B2;K4;I192.0.2.10;J0080", "leading zeros"),
        ("5A1N;B2;K4;I192.0.2.10;Jhttp", "1-65535"),
        ("5A1N;B2;K4;Ipnp.example.net;J80", "B2 says an IPv4 address but Ipnp.example.net is a host name"),
        ("5A1N;B1;K4;I192.0.2.10;J80", "B1 says a host name but I192.0.2.10 is an IPv4 address"),
        ("5A1N;B3;K4;I192.0.2.10;J80", "B3 says an IPv6 address"),
        ("5A1N;B4;K4;I192.0.2.10;J80", "B1 \\(hostname\\), B2"),
        ("5A1N;B2;K5;I192.0.2.10;J443", "K5 \\(HTTPS\\) needs T"),
        (f"5A1N;B2;K5;I192.0.2.10;J443;T{TRUST}", "K5 \\(HTTPS\\) needs T"),
        (f"5A1N;B2;K4;I192.0.2.10;J80;T{TRUST}", "needs Z"),
        ("5A1N;B2;K4;I192.0.2.10;J80;Zntp", "NTP server must be an IP"),
        ("5A1N;B2;K4;I192.0.2.10;J80;T" + "http://x/" + "a" * 250 + ";Z192.0.2.1", "at most 255"),
        ("5A1N;B2;K4;Ipnp.exämple.net;J80", "ASCII"),
        ('5A1N;B2;K4;I192.0.2.10;J80;T"http://x/";Z192.0.2.1', "not allowed"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_option43(text)


@given(
    ip=st.ip_addresses(v=4).map(str),
    port=st.integers(1, 65535),
    https=st.booleans(),
    debug=st.booleans(),
)
def test_round_trip(ip: str, port: int, https: bool, debug: bool) -> None:
    extra = {"trustpool_url": f"https://{ip}/ca.pem", "ntp": ip} if https else {}
    server = PnpServer(ip, port=port, https=https, https_port=port, debug=debug, **extra)
    text = pnp_option43(server)
    tokens = parse_option43(text)
    assert tokens["I"] == ip and tokens["J"] == str(port) and tokens["B"] == "2"
    assert tokens["K"] == ("5" if https else "4")
    assert text.startswith("5A1D;" if debug else "5A1N;")
    assert pnp_option43(server) == text  # deterministic
