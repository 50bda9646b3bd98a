"""Who may be a device: DEVICE_NETWORKS, a serial driven from a new address, ZTP tokens.

* DEVICE_NETWORKS limits /pnp/*, /ztp_fetch, /images, /configs and /files to
  the listed source networks (403 with the reason); X-Forwarded-For counts
  only with PROXY_HOPS.
* A host that answers the jobs of a serial whose flow started elsewhere is
  held: backoff/bye, nothing advanced, no config URL handed out, one history
  event, visible on the dashboard, until an operator accepts the address.
* With ZTP_TOKEN_SECRET a Juniper config needs the per-device token the DHCP
  helper announces; a known MAC alone gets 403.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from app.cli.dhcp import inventory_devices, spec_from_config
from app.dhcp.dhcpd import dhcpd_config
from app.dhcp.kea import kea_config, kea_dumps
from app.ztp.token import config_file_name, ztp_token
from simulator import SimulatedDevice
from tests.helpers import IMAGE_NAME, ROOT, write_settings

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEVICE = "10.9.1.2"
OTHER = "10.77.0.5"


def _row(app, serial: str):
    with app.extensions["pnp_engine"].connect() as conn:
        return conn.execute(text("SELECT * FROM device_state WHERE serial_number = :s"), {"s": serial}).mappings().one()


def _events(app, serial: str) -> list:
    with app.extensions["pnp_engine"].connect() as conn:
        return conn.execute(text("SELECT e.kind, e.error_code, e.message FROM device_event e JOIN device_state d "
                                 "ON d.id = e.device_id WHERE d.serial_number = :s ORDER BY e.id"),
                            {"s": serial}).all()


# --- DEVICE_NETWORKS ---------------------------------------------------------------------------

DEVICE_URLS = ["/pnp/HELLO", f"/images/{IMAGE_NAME}", "/configs/default.cfg", "/files/pxs.py",
               "/ztp_fetch/conf/Juniper-ex4300-48p/aa-bb-cc-dd-ee-ff.conf"]


@pytest.mark.parametrize("url", DEVICE_URLS)
def test_outside_device_networks_is_403(make_app, url):
    client = make_app(device_networks=["10.9.0.0/16"], juniper_models={"ex4300-48p": ""}).test_client()
    resp = client.get(url, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert resp.status_code == 403
    assert b"not in DEVICE_NETWORKS" in resp.data
    assert client.get(url, environ_base={"REMOTE_ADDR": DEVICE}).status_code in (200, 404)


def test_work_request_from_outside_creates_nothing(make_app):
    app = make_app(device_networks=["10.9.0.0/16", "2001:db8::/32"])
    client = app.test_client()
    wr = SimulatedDevice("http://127.0.0.1:9", "FGL0NET0001").work_request_xml("C-1")
    assert client.post("/pnp/WORK-REQUEST", data=wr, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 403
    with app.extensions["pnp_engine"].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM device_state")).scalar_one() == 0
    assert client.post("/pnp/WORK-REQUEST", data=wr, environ_base={"REMOTE_ADDR": "2001:db8::7"}).status_code == 200


def test_forwarded_for_counts_only_with_proxy_hops(make_app):
    headers = {"X-Forwarded-For": DEVICE}
    direct = make_app(device_networks=["10.9.0.0/16"]).test_client()
    assert direct.get("/pnp/HELLO", headers=headers).status_code == 403  # spoofed header ignored
    proxied = make_app(device_networks=["10.9.0.0/16"], proxy_hops=1).test_client()
    assert proxied.get("/pnp/HELLO", headers=headers).status_code == 200
    assert proxied.get("/pnp/HELLO", headers={"X-Forwarded-For": OTHER}).status_code == 403


def test_bad_network_is_a_config_error(make_config):
    from app.config import ConfigError

    with pytest.raises(ConfigError):
        make_config(device_networks=["10.9.0.0/33"])


def _check(lab, **settings) -> str:
    """``run.py --check`` with these settings (as tests/cli/test_server.py runs it); its stdout."""
    path = write_settings(lab / "s.py", SERVER_IP="192.0.2.10", PORT=8080, **settings)
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PNP_") and k != "PNP_NO_VENV") and k != "DATABASE_URL"}
    env["PNP_ROOT"] = str(lab)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(path), "--check"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_banner_warns_when_any_host_is_a_device(lab):
    assert "Device networks         : any -- WARNING" in _check(lab)
    assert "Device networks         : 192.0.2.0/24" in _check(lab, DEVICE_NETWORKS=["192.0.2.0/24"])


# --- a serial driven from a new address ------------------------------------------------------


def test_another_host_answering_a_serials_jobs_is_held(make_app):
    app = make_app(admin_token=TOKEN)
    client = app.test_client()
    dev = SimulatedDevice("http://127.0.0.1:9", "FGL0HOLD001")
    first = client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1"), environ_base={"REMOTE_ADDR": DEVICE})
    assert first.status_code == 200 and b"<request" in first.data
    before = _row(app, dev.serial)
    assert before["pending_service"]
    assert before["ip_address"] == DEVICE

    # The intruder knows the serial: it asks for work and answers the pending job with success.
    for i in range(3):
        resp = client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml(f"X-{i}"),
                           environ_base={"REMOTE_ADDR": OTHER})
        assert resp.status_code == 200 and b"backoff" in resp.data and b"held" in resp.data
        assert b"/configs/" not in resp.data  # no job, so no (signed) config URL
    ok = dev._response(before["pending_service"], before["pending_correlator"], True)
    resp = client.post("/pnp/WORK-RESPONSE", data=ok, environ_base={"REMOTE_ADDR": OTHER})
    assert resp.status_code == 200 and b"bye" in resp.data
    after = _row(app, dev.serial)
    for column in ("state", "pending_service", "pending_correlator", "attempts", "ip_address", "configured"):
        assert after[column] == before[column], column
    assert (after["source_hold"], after["last_error_code"]) == (OTHER, "SOURCE_CHANGED")
    held = [e for e in _events(app, dev.serial) if e.error_code == "SOURCE_CHANGED"]
    assert len(held) == 1 and OTHER in held[0].message and DEVICE in held[0].message

    listing = client.get("/api/v1/devices", headers=AUTH).get_json()["items"]
    assert [d["source_hold"] for d in listing if d["serial_number"] == dev.serial] == [OTHER]

    # The real device goes on from its own address.
    assert b"held" not in client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-2"),
                                      environ_base={"REMOTE_ADDR": DEVICE}).data

    # The operator accepts the move: the new address drives the device from now on.
    resp = client.post(f"/api/v1/devices/{dev.serial}/accept-source", headers=AUTH)
    assert resp.status_code == 200, resp.data
    accepted = _row(app, dev.serial)
    assert (accepted["ip_address"], accepted["source_hold"], accepted["last_error_code"]) == (OTHER, None, None)
    resp = client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-3"), environ_base={"REMOTE_ADDR": OTHER})
    assert b"held" not in resp.data
    assert client.post(f"/api/v1/devices/{dev.serial}/accept-source", headers=AUTH).status_code == 400


def test_hold_shows_on_the_dashboard(make_app):
    app = make_app(admin_password="pw-for-tests", dashboard_public=True)
    client = app.test_client()
    dev = SimulatedDevice("http://127.0.0.1:9", "FGL0HOLD002")
    client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1"), environ_base={"REMOTE_ADDR": DEVICE})
    client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-2"), environ_base={"REMOTE_ADDR": OTHER})
    page = client.get("/dashboard").get_data(as_text=True)
    assert f"held: {OTHER}" in page
    assert "SOURCE_CHANGED" in client.get(f"/devices/{dev.serial}").get_data(as_text=True)


def test_allow_source_change_turns_the_hold_off(make_app):
    app = make_app(allow_source_change=True)
    client = app.test_client()
    dev = SimulatedDevice("http://127.0.0.1:9", "FGL0HOLD003")
    client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-1"), environ_base={"REMOTE_ADDR": DEVICE})
    resp = client.post("/pnp/WORK-REQUEST", data=dev.work_request_xml("C-2"), environ_base={"REMOTE_ADDR": OTHER})
    assert b"held" not in resp.data
    assert _row(app, dev.serial)["source_hold"] is None


# --- per-device ZTP token -------------------------------------------------------------------

SECRET = "ztp-secret-for-tests-0123456789"
MAC = "aa:bb:cc:dd:ee:01"


@pytest.fixture
def ztp_app(make_app, lab):
    (lab / "configs" / "juniper").mkdir()
    (lab / "configs" / "juniper" / "aa-bb-cc-dd-ee-01.conf").write_text(
        'system { root-authentication { encrypted-password "$6$secret"; } }\n')
    return make_app(juniper_models={"ex4300-48p": ""}, ztp_token_secret=SECRET)


def test_ztp_config_needs_the_device_token(ztp_app):
    client = ztp_app.test_client()
    for url in ("/ztp_fetch/conf/Juniper-ex4300-48p/aa-bb-cc-dd-ee-01.conf",
                "/ztp_fetch/conf/Juniper-ex4300-48p/aa-bb-cc-dd-ee-01/" + "0" * 32 + ".conf",
                f"/ztp_fetch/conf/Juniper-ex4300-48p/aa-bb-cc-dd-ee-02/{ztp_token(SECRET, MAC)}.conf"):
        resp = client.get(url)
        assert resp.status_code == 403, url
        assert b"$6$secret" not in resp.data
    resp = client.get("/" + config_file_name(SECRET, MAC, "ex4300-48p"))
    assert resp.status_code == 200 and b"$6$secret" in resp.data
    assert client.get("/" + config_file_name(SECRET, MAC)).status_code == 200  # no model in the inventory


def test_dhcp_helper_announces_the_token_name(make_config):
    rows = [{"mac": MAC, "model": "ex4300-48p", "hostname": "sw1", "ip": "192.0.2.21"},
            {"mac": "aa:bb:cc:dd:ee:09", "model": "ex4300-48p", "hostname": "sw9",
             "config_file": "ztp_fetch/conf/own.conf"},
            {"mac": "00:11:22:33:44:55", "hostname": "r1", "vendor": "cisco"}]
    by_mac = {d.mac: d for d in inventory_devices(rows, SECRET)}
    name = config_file_name(SECRET, MAC, "ex4300-48p")
    assert by_mac[MAC].juniper.config_file == name and ztp_token(SECRET, MAC) in name
    assert by_mac["aa:bb:cc:dd:ee:09"].juniper.config_file == "ztp_fetch/conf/own.conf"  # the row's own wins
    assert not by_mac["00:11:22:33:44:55"].juniper
    assert all(not d.juniper for d in inventory_devices(rows[:1]))  # no secret, no token
    config = make_config(dhcp_subnet="192.0.2.0/24", dhcp_pool="192.0.2.100-192.0.2.199",
                         juniper_models={"ex4300-48p": ""}, ztp_token_secret=SECRET)
    spec = spec_from_config(config, rows)
    assert name in kea_dumps(kea_config(spec))
    assert name in dhcpd_config(spec)
