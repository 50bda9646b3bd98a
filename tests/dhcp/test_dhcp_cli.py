"""``python3 run.py dhcp kea|dhcpd|push``: output from settings + inventory CSV, checked by the real parsers.

kea-dhcp4 -t and dhcpd -t come from conftest.py here. The push test runs a real
kea-dhcp4 listening on no interface at all (only its unix control socket), so it
needs no network namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.dhcp import KeaControl, kea_loads, parse_option43
from tests.helpers import write_settings

IMAGE_EX4300 = "jinstall-ex-4300-21.4R3.15-signed.tgz"
IMAGE_MX = "junos-vmhost-install-mx-x86-64-23.4R2.tgz"
BASE = {
    "SERVER_IP": "192.0.2.10",
    "PORT": 8080,
    "DHCP_SUBNET": "192.0.2.0/24",
    "DHCP_POOL": "192.0.2.100-192.0.2.199",
    "DHCP_ROUTERS": ["192.0.2.1"],
    "DHCP_DNS": ["192.0.2.53"],
    "DHCP_DOMAIN": "ztp.example.net",
    "JUNIPER_MODELS": {"ex4300-48p": IMAGE_EX4300, "ex4300": "", "mx204": IMAGE_MX, "qfx5100-48s-6q": ""},
}
INVENTORY = ("mac,ip,hostname,serial,pid,model,template,mgmt_ip\n"
             "02-00-00-00-00-01,192.0.2.21,sw-access-01,,,ex4300-48p,access.conf.j2,10.0.0.21\n"
             "02:00:00:00:00:02,192.0.2.22,rtr-01,FGL2231A0BC,C1131-8PWB,,,\n"
             "02:00:00:00:00:03,,,,,,access.conf.j2,10.0.0.23\n")  # no ip/hostname: no reservation
VARIANTS = {
    "default": {},
    "https-and-pids": {"DHCP_PNP_HTTPS": True, "DHCP_PNP_HTTPS_PORT": 8443,
                       "DHCP_PNP_TRUSTPOOL_URL": "https://192.0.2.10/ca.pem", "DHCP_PNP_NTP": "192.0.2.123",
                       "DHCP_CISCO_PIDS": ["C9300", {"pid": "C11", "port": 80, "https": False}]},
    "cisco-only": {"DHCP_JUNIPER": False},
    "juniper-only-tftp": {"DHCP_CISCO": False, "JUNIPER_TRANSFER_MODE": "tftp", "JUNIPER_TFTP_SERVER": "192.0.2.11"},
    "https-options-66-67": {"JUNIPER_TRANSFER_MODE": "https", "HTTPS_PORT": 8443,
                            "JUNIPER_SERVER_OPTIONS": [66, 67, 150], "DHCP_SYSLOG": ["192.0.2.5"],
                            "JUNIPER_MODEL_OPTIONS": {"ex4300-48p": {"image_type": "symlink", "ftp_timeout": 300,
                                                                     "alt_image": "alt.tgz", "proxy": "192.0.2.8"}}},
    "subnets": {"DHCP_SUBNET": "", "DHCP_SUBNETS": [
        {"subnet": "192.0.2.0/24", "id": 1, "pool": "192.0.2.100-192.0.2.199", "routers": ["192.0.2.1"]},
        {"subnet": "198.51.100.0/24", "id": 2, "pools": ["198.51.100.100-198.51.100.150"],
         "routers": ["198.51.100.1"], "relay": "198.51.100.1", "site": "b", "dns": ["198.51.100.53"]}]},
    "no-models": {"JUNIPER_MODELS": {}, "DHCP_NTP": ["192.0.2.123"], "DHCP_SUBNET_ID": 7},
}


@pytest.fixture
def dhcp_lab(tmp_path: Path) -> Path:
    (tmp_path / "configs" / "juniper").mkdir(parents=True)
    (tmp_path / "configs" / "juniper" / "inventory.csv").write_text(INVENTORY)
    return tmp_path


def invoke(lab: Path, *args: str, settings: dict | None = None, **extra):
    values = {**BASE, **(settings or {}), **extra}
    path = write_settings(lab / "settings_dhcp.py", **values)
    env = {"PNP_ROOT": str(lab), "DATABASE_URL": ""}
    return CliRunner().invoke(cli, ["--settings", str(path), "dhcp", *args], env=env, catch_exceptions=False)


def _classes(config: dict) -> dict[str, dict]:
    return {c["name"]: c for c in config["Dhcp4"].get("client-classes", [])}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kea_and_dhcpd_output_pass_the_real_parsers(dhcp_lab, variant, kea_check, dhcpd_check):
    result = invoke(dhcp_lab, "kea", settings=VARIANTS[variant])
    assert result.exit_code == 0, result.output
    kea_check(result.stdout)
    result = invoke(dhcp_lab, "dhcpd", settings=VARIANTS[variant])
    assert result.exit_code == 0, result.output
    dhcpd_check(result.stdout)


def test_kea_output_content(dhcp_lab, kea_check):
    result = invoke(dhcp_lab, "kea", "--out", str(dhcp_lab / "kea.json"))
    assert result.exit_code == 0, result.output
    config = json.loads((dhcp_lab / "kea.json").read_text())
    kea_check(config)
    classes = _classes(config)
    cisco = classes["cisco-pnp"]["option-data"][0]
    assert cisco["data"] == "5A1N;B2;K4;I192.0.2.10;J8080"
    assert list(classes)[:2] == ["cisco-pnp", "juniper-qfx5100-48s-6q"]  # models longest first, generic last
    assert list(classes)[-1] == "juniper"
    ex = {o.get("code"): o.get("data") for o in classes["juniper-ex4300-48p"]["option-data"]}
    assert ex[3] == "http" and ex[5] == "8080"  # transfer mode, port
    assert ex[150] == "192.0.2.10"
    assert f"/' + hexstring(pkt4.mac, '-') + '/{IMAGE_EX4300}'" in json.dumps(config)  # per-MAC image URL
    subnet = config["Dhcp4"]["subnet4"][0]
    assert (subnet["id"], subnet["subnet"]) == (1, "192.0.2.0/24")
    assert [p["pool"] for p in subnet["pools"]] == ["192.0.2.100-192.0.2.199"]
    reservations = {r["hw-address"]: (r["ip-address"], r["hostname"]) for r in subnet["reservations"]}
    assert reservations == {"02:00:00:00:00:01": ("192.0.2.21", "sw-access-01"),
                            "02:00:00:00:00:02": ("192.0.2.22", "rtr-01")}
    flex = [h for h in config["Dhcp4"]["hooks-libraries"] if h["library"].endswith("libdhcp_flex_option.so")]
    assert "ztp_fetch/conf/" in json.dumps(flex)


def test_https_and_pid_classes(dhcp_lab):
    result = invoke(dhcp_lab, "kea", settings=VARIANTS["https-and-pids"])
    assert result.exit_code == 0, result.output
    classes = _classes(json.loads(result.stdout))
    generic = parse_option43(classes["cisco-pnp"]["option-data"][0]["data"])
    assert generic["K"] == "5" and generic["J"] == "8443" and generic["Z"] == "192.0.2.123"
    c11 = parse_option43(classes["cisco-pnp-c11"]["option-data"][0]["data"])
    assert (c11["K"], c11["I"], c11["J"]) == ("4", "192.0.2.10", "80")  # the PID override: plain HTTP
    assert "substring(option[124].hex, 6, 5) == 'C9300'" in classes["cisco-pnp-c9300"]["test"]


def test_kea_merge_keeps_the_rest(dhcp_lab, kea_check):
    existing = dhcp_lab / "kea-dhcp4.conf"
    existing.write_text("""// operator's file
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "*" ] },
    "valid-lifetime": 7200,
    "client-classes": [ { "name": "voip", "test": "substring(option[60].text, 0, 4) == 'VOIP'" } ],
    "subnet4": [ { "id": 9, "subnet": "198.51.100.0/24", "pools": [ { "pool": "198.51.100.10 - 198.51.100.20" } ] } ]
} }
""")
    result = invoke(dhcp_lab, "kea", "--merge", str(existing))
    assert result.exit_code == 0, result.output
    merged = json.loads(result.stdout)
    kea_check(merged)
    d4 = merged["Dhcp4"]
    assert d4["valid-lifetime"] == 7200
    assert "voip" in _classes(merged) and "cisco-pnp" in _classes(merged)
    assert sorted(s["id"] for s in d4["subnet4"]) == [1, 9]
    again = invoke(dhcp_lab, "kea", "--merge", str(existing))
    assert json.loads(again.stdout) == merged  # deterministic


def test_dhcpd_output_content(dhcp_lab, dhcpd_check):
    result = invoke(dhcp_lab, "dhcpd")
    assert result.exit_code == 0, result.output
    text = result.stdout
    dhcpd_check(text)
    assert 'option vendor-encapsulated-options "5A1N;B2;K4;I192.0.2.10;J8080";' in text
    assert "option space juniper;" in text and "vendor-option-space juniper;" in text
    assert 'option juniper.image-file-name = concat("ztp_fetch/image/", option vendor-class-identifier' in text
    assert f'"/{IMAGE_EX4300}");' in text
    assert "hardware ethernet 02:00:00:00:00:01;" in text and "fixed-address 192.0.2.21;" in text


def test_inventory_option(dhcp_lab, dhcpd_check):
    other = dhcp_lab / "other.csv"
    other.write_text("mac,ip,hostname\nAA-BB-CC-00-11-22,192.0.2.50,sw-other\n")
    result = invoke(dhcp_lab, "dhcpd", "--inventory", str(other))
    assert result.exit_code == 0, result.output
    dhcpd_check(result.stdout)
    assert "hardware ethernet aa:bb:cc:00:11:22;" in result.stdout
    assert "sw-access-01" not in result.stdout


@pytest.mark.parametrize("settings, args, message", [
    ({"DHCP_SUBNET": ""}, [], "DHCP_SUBNET is not set"),
    ({"DHCP_POOL": "192.0.2.100"}, [], "DHCP_POOL"),
    ({"JUNIPER_TRANSFER_MODE": "tftp"}, [], "JUNIPER_TRANSFER_MODE='tftp' needs JUNIPER_TFTP_SERVER"),
    ({"JUNIPER_TRANSFER_MODE": "ftp"}, [], "needs JUNIPER_FTP_SERVER"),
    ({"JUNIPER_SERVER_OPTIONS": [67]}, [], "JUNIPER_SERVER_OPTIONS"),
    ({"JUNIPER_MODEL_OPTIONS": {"ex4300": {"colour": "red"}}}, [], "unknown key(s) colour"),
    ({"JUNIPER_MODEL_OPTIONS": {"srx300": {"image_type": "symlink"}}}, [], "which JUNIPER_MODELS does not list"),
    ({"DHCP_SUBNETS": [{"subnet": "198.51.100.0/24", "id": 2}]}, [], "DHCP_SUBNETS or DHCP_SUBNET, not both"),
    ({"DHCP_SUBNET": "", "DHCP_SUBNETS": [{"subnet": "198.51.100.0/24"}]}, [], "needs \"subnet\" and \"id\""),
    ({"DHCP_SUBNET": "", "DHCP_SUBNETS": [{"subnet": "198.51.100.0/24", "id": 2, "vlan": 5}]}, [],
     "unknown key(s) vlan"),
    ({"DHCP_SUBNET": "", "DHCP_SUBNETS": [{"subnet": "198.51.100.0/24", "id": 2, "pool": "198.51.100.10"}]}, [],
     "pool"),
    ({"JUNIPER_MODELS": {"EX4300": ""}}, [], "lower-case"),
    ({"DHCP_CISCO_PIDS": [{"port": 80}]}, [], "DHCP_CISCO_PIDS entry"),
    ({}, ["--inventory", "/nonexistent/inv.csv"], "not found"),
])
def test_errors_are_one_line(dhcp_lab, settings, args, message):
    result = invoke(dhcp_lab, "kea", *args, settings=settings)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_inventory_row(dhcp_lab):
    (dhcp_lab / "configs" / "juniper" / "inventory.csv").write_text("mac,ip\n02-00-00-00-00-zz,192.0.2.21\n")
    result = invoke(dhcp_lab, "dhcpd")
    assert result.exit_code == 1
    assert "line 2" in result.output and "invalid MAC address" in result.output


# --------------------------------------------------------------------------- push to a running Kea


@pytest.fixture
def kea_running(kea_bin):
    """kea-dhcp4 on no interface, with a unix control socket in a short temporary directory."""
    work = Path(tempfile.mkdtemp(prefix="pnpcli-", dir="/tmp"))
    config_file = work / "kea-dhcp4.conf"
    config_file.write_text(json.dumps({"Dhcp4": {
        "interfaces-config": {"interfaces": []},
        "control-socket": {"socket-type": "unix", "socket-name": str(work / "kea.sock")},
        "lease-database": {"type": "memfile", "persist": False},
        "option-data": [{"name": "domain-name", "data": "keep.example"}],
        "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": str(work / "kea.log")}], "severity": "INFO"}],
    }}))
    env = dict(os.environ, KEA_PIDFILE_DIR=str(work), KEA_LOCKFILE_DIR=str(work))
    with (work / "kea.out").open("w") as out:
        proc = subprocess.Popen([kea_bin, "-c", str(config_file)], env=env, stdout=out, stderr=subprocess.STDOUT)
    ctl = KeaControl(str(work / "kea.sock"), timeout=5)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ctl.command("version-get")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("kea-dhcp4 did not start: " + (work / "kea.out").read_text(errors="replace"))
                time.sleep(0.1)
        yield ctl, config_file
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(work, ignore_errors=True)


def test_push_applies_and_writes(dhcp_lab, kea_running):
    ctl, config_file = kea_running
    result = invoke(dhcp_lab, "push", "--socket", ctl.target)
    assert result.exit_code == 0, result.output
    assert "applied and written" in result.output
    running = ctl.config_get()
    assert "cisco-pnp" in _classes(running) and "juniper-ex4300-48p" in _classes(running)
    written = kea_loads(config_file.read_text())
    assert "juniper-mx204" in _classes(written)
    assert {"name": "domain-name", "data": "keep.example"}.items() <= written["Dhcp4"]["option-data"][0].items()


def test_push_refused_by_config_test_applies_nothing(dhcp_lab, kea_running):
    ctl, config_file = kea_running
    before = config_file.read_text()
    result = invoke(dhcp_lab, "push", "--socket", ctl.target, KEA_HOOKS_DIR="/nonexistent")
    assert result.exit_code == 1
    assert "config-test" in result.output and "nothing applied" in result.output
    assert "cisco-pnp" not in _classes(ctl.config_get())
    assert config_file.read_text() == before


def test_push_test_only(dhcp_lab, kea_running):
    ctl, _ = kea_running
    result = invoke(dhcp_lab, "push", "--socket", ctl.target, "--test-only")
    assert result.exit_code == 0, result.output
    assert "tested (not applied)" in result.output
    assert "cisco-pnp" not in _classes(ctl.config_get())


def test_push_unreachable(dhcp_lab, tmp_path):
    result = invoke(dhcp_lab, "push", "--socket", str(tmp_path / "no.sock"))
    assert result.exit_code == 1 and "Kea at" in result.output
