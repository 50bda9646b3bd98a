"""``python3 run.py dhcp kea|dhcpd --merge FILE [--diff] [--dry-run]`` and the settings of several subnets,
Juniper transfer modes, per-model and per-device sub-options; outputs through the real parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.dhcp import kea_loads
from app.dhcp.dhcpd import BEGIN, END
from tests.helpers import write_settings

IMAGE = "jinstall-ex-4300-21.4R3.15-signed.tgz"
BASE = {"SERVER_IP": "192.0.2.10", "PORT": 8080, "JUNIPER_MODELS": {"ex4300-48p": IMAGE, "srx320": ""}}
INVENTORY = ("mac,ip,hostname,model,site,image,image_type,ftp_timeout,syslog,ntp\n"
             "0200.0000.0001,192.0.2.21,sw-01,ex4300-48p,,,,,,\n"
             "02:00:00:00:00:02,198.51.100.22,sw-02,ex4300-48p,,jinstall-own.tgz,symlink,90,198.51.100.5,\n"
             "02:00:00:00:00:03,,sw-03,srx320,b,,,,,198.51.100.123\n"
             "02:00:00:00:00:04,192.0.2.150,sw-04,,,,,,,\n")  # inside the pool: a warning
SUBNETS = [{"subnet": "192.0.2.0/24", "id": 1, "pool": "192.0.2.100-192.0.2.199", "routers": ["192.0.2.1"]},
           {"subnet": "198.51.100.0/24", "id": 2, "pools": ["198.51.100.100-198.51.100.150"],
            "routers": ["198.51.100.1"], "relay": ["10.99.0.2"], "site": "b", "domain": "b.example.net"}]
DHCPD_SUBNETS = [SUBNETS[0], dict(SUBNETS[1], relay=["198.51.100.1"])]  # dhcpd: the giaddr inside the subnet
OPERATOR_KEA = """{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "*" ] },
  "client-classes": [ { "name": "Juniper-srx320", "test": "option[60].text == 'Juniper-srx320-LAB'" } ],
  "subnet4": [ { "id": 9, "subnet": "203.0.113.0/24" } ]
} }
"""
OPERATOR_DHCPD = "# operator\nauthoritative;\nsubnet 203.0.113.0 netmask 255.255.255.0 { }\n"


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "configs" / "juniper").mkdir(parents=True)
    (tmp_path / "configs" / "juniper" / "inventory.csv").write_text(INVENTORY)
    return tmp_path


def invoke(lab: Path, *args: str, **settings):
    settings.setdefault("DHCP_SUBNETS", SUBNETS)
    path = write_settings(lab / "settings_dhcp.py", **{**BASE, **settings})
    return CliRunner().invoke(cli, ["--settings", str(path), "dhcp", *args],
                              env={"PNP_ROOT": str(lab), "DATABASE_URL": ""}, catch_exceptions=False)


def several(**extra):
    return {"DHCP_SUBNETS": SUBNETS, **extra}


def test_several_subnets_from_settings(lab: Path, kea_check, dhcpd_check) -> None:
    result = invoke(lab, "kea", **several())
    assert result.exit_code == 0, result.output
    assert "warning: device 02:00:00:00:00:04: 192.0.2.150 is inside a dynamic pool" in result.stderr
    config = json.loads(result.stdout)
    kea_check(config)
    s1, s2 = config["Dhcp4"]["subnet4"]
    assert [r["hw-address"] for r in s1["reservations"]] == ["02:00:00:00:00:01", "02:00:00:00:00:04"]
    assert [r["hw-address"] for r in s2["reservations"]] == ["02:00:00:00:00:02", "02:00:00:00:00:03"]
    assert s2["relay"] == {"ip-addresses": ["10.99.0.2"]}
    assert {"name": "domain-name", "data": "b.example.net", "user-context": {"managed-by": "pnp-server"}} in \
        s2["option-data"]
    own = s2["reservations"][0]
    codes = {(o.get("code"), o.get("space", "dhcp4")): o.get("data") for o in own["option-data"]}
    vs = "vendor-encapsulated-options-space"
    assert codes[(0, vs)] == "ztp_fetch/image/Juniper-ex4300-48p/02-00-00-00-00-02/jinstall-own.tgz"
    assert codes[(2, vs)] == "symlink" and codes[(7, vs)] == "90"
    assert {"name": "log-servers", "data": "198.51.100.5"} in own["option-data"]
    assert {"name": "ntp-servers", "data": "198.51.100.123"} in s2["reservations"][1]["option-data"]
    result = invoke(lab, "dhcpd", **several(DHCP_SUBNETS=DHCPD_SUBNETS))
    assert result.exit_code == 0, result.output
    dhcpd_check(result.stdout)
    assert "subnet 198.51.100.0 netmask 255.255.255.0 {  # site b" in result.stdout
    assert "host ztp-020000000003 {" in result.stdout


def test_relay_outside_its_subnet_is_kea_only(lab: Path) -> None:
    """dhcpd picks a relayed subnet by giaddr alone: a relay outside the subnet is refused, not ignored."""
    result = invoke(lab, "dhcpd", **several())
    assert result.exit_code == 1
    assert "relay 10.99.0.2 is not (use Kea, or a shared-network by hand)" in result.output


@pytest.mark.parametrize(("settings", "port"), [
    ({}, "8080"),
    ({"JUNIPER_TRANSFER_MODE": "https"}, "443"),
    ({"JUNIPER_TRANSFER_MODE": "https", "HTTPS_PORT": 8443}, "8443"),
    ({"JUNIPER_TRANSFER_MODE": "https", "HTTPS_PORT": 8443, "JUNIPER_FILE_PORT": 9443}, "9443"),
])
def test_transfer_mode_port(lab: Path, settings: dict, port: str) -> None:
    result = invoke(lab, "kea", **settings)
    assert result.exit_code == 0, result.output
    juniper = next(c for c in json.loads(result.stdout)["Dhcp4"]["client-classes"] if c["name"] == "juniper")
    codes = {o.get("code"): o.get("data") for o in juniper["option-data"]}
    assert codes[3] == settings.get("JUNIPER_TRANSFER_MODE", "http") and codes[5] == port


def test_tftp_mode_names_its_server(lab: Path, kea_check) -> None:
    result = invoke(lab, "kea", JUNIPER_TRANSFER_MODE="tftp", JUNIPER_TFTP_SERVER="192.0.2.69",
                    JUNIPER_SERVER_OPTIONS=[66, 150])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    kea_check(config)
    juniper = next(c for c in config["Dhcp4"]["client-classes"] if c["name"] == "juniper")
    data = {o.get("code", o.get("name")): o.get("data") for o in juniper["option-data"]}
    assert data[3] == "tftp" and 5 not in data
    assert data[150] == "192.0.2.69" and data["tftp-server-name"] == "192.0.2.69"


def test_kea_merge_diff_and_dry_run(lab: Path, kea_check) -> None:
    target = lab / "kea-dhcp4.conf"
    target.write_text(OPERATOR_KEA)
    result = invoke(lab, "kea", "--merge", str(target), "--diff", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("--- kea-dhcp4.conf (before)\n+++ kea-dhcp4.conf (after)\n")
    assert "would change" in result.stderr
    assert target.read_text() == OPERATOR_KEA  # dry run: nothing written
    result = invoke(lab, "kea", "--merge", str(target), "--out", str(target), "--interface", "lo")
    assert result.exit_code == 0, result.output
    merged = kea_loads(target.read_text())
    kea_check(merged)
    assert [c["name"] for c in merged["Dhcp4"]["client-classes"]][0] == "Juniper-srx320"
    result = invoke(lab, "kea", "--merge", str(target), "--diff", "--dry-run")
    assert result.exit_code == 0 and result.stdout == "" and "nothing to change" in result.stderr


def test_kea_merge_conflict_is_one_line(lab: Path) -> None:
    target = lab / "kea-dhcp4.conf"
    target.write_text(OPERATOR_KEA.replace("Juniper-srx320", "juniper-srx320"))
    result = invoke(lab, "kea", "--merge", str(target))
    assert result.exit_code == 1
    assert "client class juniper-srx320 exists already and is not managed by pnp-server" in result.output
    assert len([line for line in result.output.splitlines() if not line.startswith("warning: ")]) == 1


def test_dhcpd_merge_diff_and_dry_run(lab: Path, dhcpd_check) -> None:
    target = lab / "dhcpd.conf"
    target.write_text(OPERATOR_DHCPD)
    result = invoke(lab, "dhcpd", "--merge", str(target), "--diff", "--dry-run", DHCP_SUBNETS=DHCPD_SUBNETS)
    assert result.exit_code == 0, result.output
    assert f"+{BEGIN}\n" in result.stdout and target.read_text() == OPERATOR_DHCPD
    result = invoke(lab, "dhcpd", "--merge", str(target), "--out", str(target), DHCP_SUBNETS=DHCPD_SUBNETS)
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert text.startswith(OPERATOR_DHCPD) and text.endswith(END + "\n")
    dhcpd_check(text)
    result = invoke(lab, "dhcpd", "--merge", str(target), "--dry-run", DHCP_SUBNETS=DHCPD_SUBNETS)
    assert result.exit_code == 0 and "nothing to change" in result.stderr


def test_diff_needs_merge(lab: Path) -> None:
    result = invoke(lab, "kea", "--diff")
    assert result.exit_code == 2 and "--merge" in result.output
