"""The NetBox source through the real pynetbox, against a NetBox 4.x API replayed on loopback.

NetBox cannot be installed here (it is not on PyPI): tests/sot/netbox_replay.py
answers with objects in the shape of NetBox 4.x's documented schema
(tests/sot/netbox/*.json) and records what pynetbox sent. Everything on our
side is real: pynetbox, the sync into SQLite, the server under gunicorn, the
simulated device, the webhook signature.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import select

from app.config import validate_sot
from app.files.day0 import InventoryView, resolve
from app.sot.sources import NetboxSource, SourceError, make_source
from app.sot.sync import sync
from app.storage.models import DeviceEvent, DeviceState, InventoryItem, SotChange
from simulator import SimulatedDevice
from tests.helpers import IMAGE_NAME, IMAGE_VERSION, ROOT
from tests.sot.netbox_replay import NetboxReplay, webhook_body

pytestmark = pytest.mark.sot
TOKEN = "netbox-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BRANCH = "hostname {{ hostname }}\nsnmp-server location {{ snmp_location }}\n"


@pytest.fixture
def netbox():
    replay = NetboxReplay()
    yield replay
    replay.close()


def netbox_settings(netbox: NetboxReplay, **extra) -> dict:
    return {"inventory_source": "netbox", "sot_url": netbox.url, "sot_token": netbox.token,
            "sot_sites": ["hamburg"], "sot_render_config": ["pnp-rendered"], **extra}


def hamburg(netbox: NetboxReplay) -> None:
    netbox.add_device(101, "br-hamburg-1", "FGL2548HH01", mac="00:53:00:00:21:01", ip="192.0.2.21",
                      custom_fields={"pnp_template": "branch.j2", "pnp_image": "c1100-universalk9.17.15.01.SPA.bin"})
    netbox.add_device(102, "br-hamburg-2", "FGL2548HH02", mac="00:53:00:00:21:02", ip="192.0.2.22",
                      tags=("pnp-rendered",), rendered="hostname br-hamburg-2\n! rendered by NetBox\n")
    netbox.add_device(103, "br-munich-1", "FGL2548MU01", mac="00:53:00:00:31:01", ip="192.0.2.31", site="munich")
    netbox.add_device(104, "no-serial-yet", "", mac=None, ip=None)
    netbox.add_device(105, "ex-hamburg-1", "JN1234567890", mac="00:53:00:00:21:05", ip="192.0.2.25",
                      model="EX4300-48P", manufacturer="Juniper Networks", custom_fields={"pnp_template": "ex.j2"})


def rows(app) -> dict[str, InventoryItem]:
    with app.extensions["pnp_sessions"]() as session:
        return {i.serial_number: i for i in session.scalars(select(InventoryItem))}


def changes(app, serial: str) -> list[str]:
    with app.extensions["pnp_sessions"]() as session:
        return list(session.scalars(select(SotChange.message).where(SotChange.serial_number == serial)
                                    .order_by(SotChange.id)))


def test_sync_reads_netbox_through_pynetbox(make_app, netbox, lab):
    hamburg(netbox)
    app = make_app(**netbox_settings(netbox))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    source = make_source(config)
    assert isinstance(source, NetboxSource)

    preview = sync(sessions, config, source, dry_run=True)
    assert preview.created == ["FGL2548HH01", "FGL2548HH02", "JN1234567890"] and rows(app) == {}
    result = sync(sessions, config, source)
    assert sorted(result.created) == ["FGL2548HH01", "FGL2548HH02", "JN1234567890"]
    assert "FGL2548HH01: planned in NetBox (status planned, site Hamburg)" in result.lines()
    assert result.problems == ["FGL2548HH01: image 'c1100-universalk9.17.15.01.SPA.bin' (pnp_image) is not in "
                               "IMAGES: the catalogue image for its PID is used"]
    listed = [r for r in netbox.requests if r[1] == "/api/dcim/devices/" and r[0] == "GET"]
    assert listed[0][2]["site"] == ["hamburg"]  # the filter is NetBox's, not ours
    assert [r[1] for r in netbox.requests if r[0] == "POST"] == ["/api/dcim/devices/102/render-config/"] * 2

    items = rows(app)
    branch = items["FGL2548HH01"]
    assert (branch.hostname, branch.pid, branch.template, branch.site) == ("br-hamburg-1", "C1131-8PWB",
                                                                           "branch.j2", "Hamburg")
    assert (branch.mac_address, branch.ip_address, branch.sot_id) == ("00:53:00:00:21:01", "192.0.2.21", "101")
    assert branch.variables["snmp_location"] == "Hamburg HQ" and branch.variables["primary_ip4"] == "192.0.2.21"
    assert branch.image == "c1100-universalk9.17.15.01.SPA.bin"
    assert items["JN1234567890"].vendor == "juniper" and items["JN1234567890"].model == "ex4300-48p"

    (lab / "configs" / "branch.j2").write_text(BRANCH)
    day0 = resolve(config, "FGL2548HH01", InventoryView.from_row(branch))
    assert day0.source == "template" and day0.text == "hostname br-hamburg-1\nsnmp-server location Hamburg HQ\n"
    rendered = resolve(config, "FGL2548HH02", InventoryView.from_row(items["FGL2548HH02"]))
    assert rendered.source == "netbox" and "! rendered by NetBox" in rendered.text

    again = sync(sessions, config, source)
    assert (again.created, again.updated, again.removed, again.unchanged) == ([], [], [], 3)

    netbox.update(101, name="br-hamburg-1a")
    netbox.update(102, config_context={"snmp_location": "Hamburg HQ", "new": "x"})
    del netbox.devices[105]
    updated = sync(sessions, config, source)
    assert updated.updated == ["FGL2548HH01", "FGL2548HH02"] and updated.removed == ["JN1234567890"]
    assert changes(app, "FGL2548HH01") == ["planned in NetBox (status planned, site Hamburg)",
                                           "hostname changed: br-hamburg-1 → br-hamburg-1a"]
    assert "variables changed (config context)" in changes(app, "FGL2548HH02")
    assert changes(app, "JN1234567890")[-1] == "removed from NetBox (or filtered out)"


def test_a_device_mid_provisioning_is_never_removed(make_app, netbox):
    hamburg(netbox)
    app = make_app(**netbox_settings(netbox))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    source = make_source(config)
    sync(sessions, config, source)
    device = SimulatedDevice("http://unused", "FGL2548HH01")
    client = app.test_client()
    answer = client.post("/pnp/WORK-REQUEST", data=device.work_request_xml("c-1"), content_type="text/xml")
    assert answer.status_code == 200
    netbox.devices.clear()
    result = sync(sessions, config, source)
    assert result.kept == ["FGL2548HH01"] and sorted(result.removed) == ["FGL2548HH02", "JN1234567890"]
    assert set(rows(app)) == {"FGL2548HH01"}
    with sessions() as session:
        history = session.scalars(select(DeviceEvent.message).join(DeviceState)
                                  .where(DeviceState.serial_number == "FGL2548HH01")).all()
    assert "source of truth: gone from NetBox but mid-provisioning: kept" in history
    with sessions() as session, session.begin():  # once it is done, it may go
        session.execute(DeviceState.__table__.update().values(state="FINISHED"))
    assert sync(sessions, config, source).removed == ["FGL2548HH01"]


def test_netbox_down_changes_nothing(make_app, netbox):
    hamburg(netbox)
    app = make_app(**netbox_settings(netbox))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    before = {k: (v.hostname, v.updated_at) for k, v in rows(app).items()}
    netbox.fail("GET", "/api/dcim/devices/", 503)
    with pytest.raises(SourceError, match="netbox at http://127.0.0.1:.*listing devices"):
        sync(sessions, config, make_source(config))
    wrong = make_app(**netbox_settings(netbox, sot_token="wrong"))
    with pytest.raises(SourceError, match="Invalid token"):
        sync(wrong.extensions["pnp_sessions"], wrong.config["PNP"], make_source(wrong.config["PNP"]))
    assert {k: (v.hostname, v.updated_at) for k, v in rows(app).items()} == before


def test_one_unusable_device_does_not_stop_the_sync(make_app, netbox):
    hamburg(netbox)
    app = make_app(**netbox_settings(netbox))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    netbox.update(101, primary_ip4={"address": "2001:db8::21/64"})  # an IPv6 address in the IPv4 field
    netbox.add_device(106, "br-hamburg-6", "FGL 2548", mac=None, ip=None)
    netbox.add_device(107, "br-hamburg-7", "FGL2548HH02", mac=None, ip=None)  # a serial typed twice
    result = sync(sessions, config, make_source(config))
    assert result.problems == [
        "FGL2548HH02: serial also on br-hamburg-2 (id 102): device 107 not synced",
        "device 101: not synced: netbox: device br-hamburg-1: primary IPv4 '2001:db8::21/64' is not IPv4",
        "device 106: not synced: netbox: device br-hamburg-6: serial 'FGL 2548' is not a serial number "
        "(letters, digits, . _ -)"]
    assert result.removed == [] and "FGL2548HH01" in rows(app), "still in NetBox: kept as last synced"
    interface_calls = [r for r in netbox.requests if r[1] == "/api/dcim/interfaces/"]
    assert len(interface_calls) == 2 and len(interface_calls[-1][2]["device_id"]) == 6  # one call per batch


def test_render_failure_keeps_that_device_out_and_reports_it(make_app, netbox):
    netbox.add_device(102, "br-hamburg-2", "FGL2548HH02", mac=None, ip=None, tags=("pnp-rendered",))
    app = make_app(**netbox_settings(netbox))
    result = sync(app.extensions["pnp_sessions"], app.config["PNP"], make_source(app.config["PNP"]))
    assert result.created == [] and "No config template found" in result.problems[0]
    assert result.problems[0].startswith("FGL2548HH02: not synced: netbox")


def test_webhook_is_verified_and_resyncs_the_device(make_app, netbox):
    hamburg(netbox)
    secret = "webhook-secret-of-netbox"
    app = make_app(**netbox_settings(netbox, sot_webhook_secret=secret))
    config, sessions = app.config["PNP"], app.extensions["pnp_sessions"]
    sync(sessions, config, make_source(config))
    client = app.test_client()
    device = netbox.update(101, name="br-hamburg-renamed")
    body, headers = webhook_body("updated", device, secret)
    assert client.post("/api/v1/sot/webhook", data=body,
                       headers={**headers, "X-Hook-Signature": "00" * 64}).status_code == 403
    assert client.post("/api/v1/sot/webhook", data=body, headers={"Content-Type": "application/json"}
                       ).status_code == 403
    assert client.post("/api/v1/sot/webhook", data=b"{not json",
                       headers=webhook_body("updated", device, secret)[1]).status_code == 403
    assert rows(app)["FGL2548HH01"].hostname == "br-hamburg-1"
    answer = client.post("/api/v1/sot/webhook", data=body, headers=headers)
    assert answer.status_code == 200 and answer.json["updated"] == ["FGL2548HH01"]
    assert rows(app)["FGL2548HH01"].hostname == "br-hamburg-renamed"
    fetched = [r for r in netbox.requests if r[1] == "/api/dcim/devices/" and r[2].get("id") == ["101"]]
    assert fetched, "the webhook's data is not trusted: the device is read back from NetBox"

    deleted = webhook_body("deleted", device, secret)
    assert client.post("/api/v1/sot/webhook", data=deleted[0], headers=deleted[1]).json["removed"] == ["FGL2548HH01"]
    unconfigured = make_app(**netbox_settings(netbox)).test_client()
    assert unconfigured.post("/api/v1/sot/webhook", data=body, headers=headers).status_code == 409


def test_sot_settings_are_checked():
    from app.config import Config

    assert validate_sot(Config(inventory_source="infoblox"))[0].startswith("INVENTORY_SOURCE 'infoblox'")
    problems = validate_sot(Config(inventory_source="netbox"))
    assert any("SOT_URL" in p for p in problems) and any("PNP_SOT_TOKEN" in p for p in problems)
    assert validate_sot(Config(inventory_source="netbox", sot_url="https://nb", sot_token="t")) == []
    assert Config.load(None, env={"PNP_SOT_VERIFY_TLS": "false"}).sot_verify_tls is False
    assert Config().sot_verify_tls is True  # TLS verification on by default
    assert "t0ken" not in repr(Config(sot_token="t0ken", sot_webhook_secret="t0ken"))


def run_cli(lab, settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNP_")}
    env.update(PNP_ROOT=str(lab))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(settings), *args], cwd=lab,
                          env=env, capture_output=True, text=True, timeout=120)


def wait_for(predicate, what: str, server, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{server.output()[-4000:]}")


@pytest.mark.e2e
def test_netbox_end_to_end_with_a_failing_write_back(start_server, lab, netbox):
    """Planned in NetBox, provisioned without a CSV, active in NetBox with a journal entry; the first
    status PATCH fails and is retried from the queue (shown on the dashboard) without blocking anything."""
    hamburg(netbox)
    (lab / "configs" / "branch.j2").write_text(BRANCH + (lab / "configs" / "default.cfg").read_text())
    override = "c1100-universalk9.17.15.01.SPA.bin"  # device 101's pnp_image custom field
    (lab / "images" / override).write_bytes(os.urandom(2 * 1024 * 1024))
    images = [{"pid": "C11*", "file": IMAGE_NAME, "version": IMAGE_VERSION},
              {"pid": "ISR44*", "file": override, "version": "17.15.1"}]
    server = start_server(IMAGES=images,
        INVENTORY_SOURCE="netbox", SOT_URL=netbox.url, SOT_TOKEN=netbox.token, SOT_SITES=["hamburg"],
        SOT_STATUS_FIRST_CONTACT="staged", SOT_STATUS_FINISHED="active", SOT_STATUS_FAILED="failed",
        SOT_RETRY_BACKOFF=1, ADMIN_TOKEN=TOKEN, DASHBOARD_PUBLIC=True, REQUIRE_CLAIM=True, SOT_UNKNOWN_STATUS="planned",
        SOT_UNKNOWN_SITE="hamburg", SOT_UNKNOWN_ROLE="branch-router",
        DHCP_SUBNET="192.0.2.0/24", DHCP_POOL="192.0.2.100-192.0.2.199", SOT_RENDER_CONFIG=["pnp-rendered"])
    settings = server.settings
    synced = run_cli(lab, settings, "inventory", "sync")
    assert synced.returncode == 0, synced.stderr
    assert "3 created, 0 updated, 0 removed" in synced.stdout

    dhcpd = run_cli(lab, settings, "dhcp", "dhcpd")
    assert dhcpd.returncode == 0, dhcpd.stderr
    assert "hardware ethernet 00:53:00:00:21:01;" in dhcpd.stdout and "fixed-address 192.0.2.21;" in dhcpd.stdout

    netbox.fail("PATCH", "/api/dcim/devices/101/", 503)  # NetBox hiccups at the first write-back
    device = SimulatedDevice(server.url, "FGL2548HH01", reload_seconds=0.3)
    device.poll_once()
    failing = wait_for(lambda: requests.get(server.url + "/api/v1/sot/writeback", headers=AUTH, timeout=10)
                       .json()["failing"], "the failed write-back in the queue", server)
    assert failing == 1
    page = requests.get(server.url + "/dashboard", timeout=10)
    assert page.status_code == 200 and 'id="sot-writeback"' in page.text and "HTTP 503" in page.text, (
        page.text[page.text.find("counts"):][:3000])
    assert device.run(timeout=120), device.log[-5:]
    assert "hostname br-hamburg-1" in device.startup_config
    assert "snmp-server location Hamburg HQ" in device.startup_config
    assert device.image_file == override, "the per-device image from NetBox, not the one for C11*"
    wait_for(lambda: netbox.devices[101]["status"]["value"] == "active", "status active in NetBox", server)
    entries = wait_for(lambda: [e for e in netbox.journal if e["assigned_object_id"] == 101
                                and "Provisioned" in e["comments"]], "the journal entry", server)
    assert entries[0]["assigned_object_type"] == "dcim.device" and entries[0]["kind"]["value"] == "success"
    assert "IOS-XE 17.15.1 after 1 image install(s)" in entries[0]["comments"]
    patches = [r[3] for r in netbox.requests if r[0] == "PATCH" and r[1] == "/api/dcim/devices/101/"]
    assert {"status": "active"} in patches
    assert requests.get(server.url + "/api/v1/sot/writeback", headers=AUTH, timeout=10).json()["pending"] == 0

    unknown = SimulatedDevice(server.url, "FGL2548ZZ99", reload_seconds=0.3)
    unknown.poll_once()
    assert "waiting to be claimed" in unknown.last_backoff_reason
    created = wait_for(lambda: [r[3] for r in netbox.requests if r[0] == "POST" and r[1] == "/api/dcim/devices/"],
                       "the unknown serial created in NetBox", server)
    assert created[0]["serial"] == "FGL2548ZZ99" and created[0]["status"] == "planned"
    assert created[0]["site"] == 5 and created[0]["role"] == 2 and created[0]["device_type"] == 7


def test_juniper_ztp_config_from_netbox(make_app, netbox, lab):
    """A Juniper device in NetBox: /ztp_fetch renders its template with NetBox's hostname and config context."""
    hamburg(netbox)
    folder = lab / "configs" / "juniper"
    folder.mkdir()
    (folder / "ex.j2").write_text("system { host-name {{ hostname }}; location \"{{ snmp_location }}\"; }\n"
                                  "/* {{ serial }} {{ primary_ip4 }} */\n")
    app = make_app(**netbox_settings(netbox, sot_status_finished="active"), juniper_models={"ex4300-48p": ""})
    sync(app.extensions["pnp_sessions"], app.config["PNP"], make_source(app.config["PNP"]))
    answer = app.test_client().get("/ztp_fetch/conf/Juniper-ex4300-48p-JN1234567890/00-53-00-00-21-05.conf")
    assert answer.status_code == 200, answer.text
    assert answer.text == ('system { host-name ex-hamburg-1; location "Hamburg HQ"; }\n'
                           "/* JN1234567890 192.0.2.25 */\n")
    answer.close()  # the write-back goes out once the reply is sent
    assert netbox.devices[105]["status"]["value"] == "active"
    assert "Provisioned by Juniper ZTP: config fetched" in netbox.journal[0]["comments"]
    assert app.test_client().get("/ztp_fetch/conf/Juniper-ex4300-48p/00-53-00-00-99-99.conf").status_code == 404


def test_device_page_shows_where_the_config_and_the_row_come_from(make_app, netbox):
    from tests.api.test_api import log_in

    hamburg(netbox)
    app = make_app(**netbox_settings(netbox), admin_password="pw-for-the-sot-page")
    sync(app.extensions["pnp_sessions"], app.config["PNP"], make_source(app.config["PNP"]))
    client = app.test_client()
    assert log_in(client, "pw-for-the-sot-page").status_code == 302
    page = client.get("/devices/FGL2548HH02").get_data(as_text=True)
    assert "netbox (rendered by the source of truth)" in page and "! rendered by NetBox" in page
    assert '<td id="inventory-source">netbox #102 (planned, Hamburg)</td>' in page
    assert "planned in NetBox (status planned, site Hamburg)" in page
    detail = client.get("/api/v1/devices/FGL2548HH01").get_json()
    assert detail["source_history"][0]["message"] == "planned in NetBox (status planned, site Hamburg)"
    assert detail["day0"]["error"] == "template 'branch.j2' not found in configs/"
