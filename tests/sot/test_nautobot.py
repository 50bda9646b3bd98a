"""The source of truth is a real Nautobot (tests/sot/nautobot_server.py): no CSV anywhere.

Nautobot runs from its own virtualenv on loopback with the machine's PostgreSQL
and Redis and a Celery worker (Nautobot sends webhooks from Celery). Sites,
device types, devices, interfaces, IPs and config contexts are created
through its REST API; then the real server (run.py under gunicorn) syncs,
simulated devices provision end to end, and Nautobot shows what happened:
status Active/Failed with a note, an unknown serial created as Inventory, a
device renamed in Nautobot re-synced by its webhook, reservations from
Nautobot's IPAM pushed into a running kea-dhcp4.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from app.dhcp import DhcpSpec, KeaControl, KeaOptions, Subnet, kea_config, kea_dumps
from simulator import SimulatedDevice
from tests.helpers import ROOT

pytestmark = [pytest.mark.sot, pytest.mark.e2e]
TOKEN = "sot-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class NautobotRest:
    """Just enough of Nautobot's REST API to build a lab (plain requests, like an engineer's script)."""

    def __init__(self, server):
        self.base = server.url + "/api"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers.update(server.headers)
        self.status = {s["name"]: s["id"] for s in self.get("/extras/statuses/", limit=200)["results"]}

    def get(self, path: str, **params) -> dict:
        answer = self.http.get(self.base + path, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: dict) -> dict:
        answer = self.http.post(self.base + path, json=body, timeout=30)
        assert answer.status_code == 201, f"{path}: {answer.status_code} {answer.text}"
        return answer.json()

    def patch(self, path: str, body: dict) -> dict:
        answer = self.http.patch(self.base + path, json=body, timeout=30)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        return answer.json()

    def delete(self, path: str) -> None:
        answer = self.http.delete(self.base + path, timeout=30)
        assert answer.status_code == 204, f"{path}: {answer.status_code} {answer.text}"

    def one(self, path: str, **params) -> dict:
        return self.get(path, **params)["results"][0]

    def device(self, name: str, serial: str, *, mac: str, ip: str, status: str = "Planned", **extra) -> dict:
        device = self.post("/dcim/devices/", {"name": name, "serial": serial, "device_type": self.device_type,
                                               "role": self.role, "location": self.location,
                                               "status": self.status[status], **extra})
        self.post("/dcim/interfaces/", {"device": device["id"], "name": "GigabitEthernet0/0/1", "type": "1000base-t",
                                        "status": self.status["Active"], "mac_address": "02:00:00:00:00:99"})
        interface = self.post("/dcim/interfaces/", {"device": device["id"], "name": "GigabitEthernet0",
                                                    "type": "1000base-t", "status": self.status["Active"],
                                                    "mac_address": mac, "mgmt_only": True})
        address = self.post("/ipam/ip-addresses/", {"address": f"{ip}/24", "namespace": self.namespace,
                                                    "status": self.status["Active"]})
        self.post("/ipam/ip-address-to-interface/", {"ip_address": address["id"], "interface": interface["id"]})
        return self.patch(f"/dcim/devices/{device['id']}/", {"primary_ip4": address["id"]})

    def lab(self, site: str) -> None:
        """A location with a device type, a role, a prefix, a config context and the custom field."""
        location_type = self.post("/dcim/location-types/", {"name": f"{site}-type",
                                                            "content_types": ["dcim.device", "ipam.prefix"]})
        self.location = self.post("/dcim/locations/", {"name": site, "location_type": location_type["id"],
                                                       "status": self.status["Active"]})["id"]
        manufacturer = self.post("/dcim/manufacturers/", {"name": f"Cisco {site}"})
        self.device_type = self.post("/dcim/device-types/", {"manufacturer": manufacturer["id"],
                                                             "model": f"ISR C1131 {site}",
                                                             "part_number": "C1131-8PWB"})["id"]
        self.role = self.post("/extras/roles/", {"name": f"branch-{site}", "content_types": ["dcim.device"]})["id"]
        self.namespace = self.one("/ipam/namespaces/", name="Global")["id"]
        self.post("/ipam/prefixes/", {"prefix": "192.0.2.0/24", "namespace": self.namespace, "type": "network",
                                      "status": self.status["Active"], "locations": [self.location]})
        self.post("/extras/config-contexts/", {"name": f"{site} site", "weight": 1000, "locations": [self.location],
                                               "data": {"snmp_location": f"{site} DC1", "ntp_server": "192.0.2.1"}})
        if "pnp_template" not in {f["key"] for f in self.get("/extras/custom-fields/", limit=500)["results"]}:
            self.post("/extras/custom-fields/", {"label": "PnP template", "key": "pnp_template", "type": "text",
                                                 "content_types": ["dcim.device"]})
        if not self.get("/extras/tags/", name="pnp-rendered")["results"]:
            self.post("/extras/tags/", {"name": "pnp-rendered", "content_types": ["dcim.device"]})

    def notes(self, device_id: str) -> list[str]:
        return [n["note"] for n in self.get(f"/dcim/devices/{device_id}/notes/")["results"]]

    def status_of(self, device_id: str) -> str:
        return self.get(f"/dcim/devices/{device_id}/", depth=1)["status"]["name"]


def wait_for(predicate, what: str, timeout: float = 60.0, server=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{server.output()[-4000:]}" if server else ""))


def run_cli(lab: Path, settings: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNP_")}
    env.update(PNP_ROOT=str(lab))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(settings), *args], cwd=lab,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def kea():
    """A running kea-dhcp4 (no interfaces: only its control socket is used) with our subnet."""
    import shutil

    workdir = Path(tempfile_dir())
    options = KeaOptions(interfaces=[], control_socket=str(workdir / "kea4.sock"),
                         lease_file=str(workdir / "leases4.csv"), log_output=str(workdir / "kea.log"))
    spec = DhcpSpec(subnet=Subnet("192.0.2.0/24", 1, "192.0.2.100", "192.0.2.199"))
    (workdir / "kea-dhcp4.conf").write_text(kea_dumps(kea_config(spec, options)))
    env = dict(os.environ, KEA_PIDFILE_DIR=str(workdir), KEA_LOCKFILE_DIR=str(workdir))
    proc = subprocess.Popen(["kea-dhcp4", "-c", str(workdir / "kea-dhcp4.conf")], env=env,
                            stdout=(workdir / "kea.out").open("w"), stderr=subprocess.STDOUT)
    control = KeaControl(str(workdir / "kea4.sock"), timeout=5)

    def answers():
        try:
            control.command("version-get")
            return True
        except OSError:
            assert proc.poll() is None, (workdir / "kea.out").read_text()
            return False
    wait_for(answers, "kea-dhcp4 control socket", 20)
    yield control
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="pnpsot-", dir="/tmp")  # short: unix socket paths are limited


def test_nautobot_is_the_source_of_truth_end_to_end(nautobot, start_server, lab, kea):
    nb = NautobotRest(nautobot)
    site = "Berlin-e2e"
    nb.lab(site)
    (lab / "configs" / "branch.j2").write_text(
        "hostname {{ hostname }}\nsnmp-server location {{ snmp_location }}\nntp server {{ ntp_server }}\n"
        + (lab / "configs" / "default.cfg").read_text())
    (lab / "configs" / "broken.j2").write_text("hostname {{ hostname }}\n{{ vlan_not_in_nautobot }}\n")
    rendered_template = ("hostname {{ hostname }}\nbanner motd ^{{ motd }} at {{ site }}^\n"
                         + (lab / "configs" / "default.cfg").read_text())
    branch = nb.device("br-berlin-1", "FGL2548NB01", mac="00:11:22:33:44:01", ip="192.0.2.11",
                       custom_fields={"pnp_template": "branch.j2"})
    rendered = nb.device("br-berlin-2", "FGL2548NB02", mac="00:11:22:33:44:02", ip="192.0.2.12",
                         tags=[nb.one("/extras/tags/", name="pnp-rendered")["id"]],
                         local_config_context_data={"pnp_day0_template": rendered_template, "motd": "Nautobot"})
    broken = nb.device("br-berlin-3", "FGL2548NB03", mac="00:11:22:33:44:03", ip="192.0.2.13",
                       custom_fields={"pnp_template": "broken.j2"})
    secret = secrets.token_hex(16)
    server = start_server(
        INVENTORY_SOURCE="nautobot", SOT_URL=nautobot.url, SOT_TOKEN=nautobot.token, SOT_SITES=[site],
        SOT_STATUSES=["Planned", "Staged", "Active", "Failed"], SOT_RENDER_CONFIG=["pnp-rendered"],
        SOT_STATUS_FIRST_CONTACT="Staged", SOT_STATUS_FINISHED="Active", SOT_STATUS_FAILED="Failed",
        SOT_WEBHOOK_SECRET=secret, SOT_RETRY_BACKOFF=1, ADMIN_TOKEN=TOKEN, REQUIRE_CLAIM=True,
        SOT_UNKNOWN_STATUS="Inventory", SOT_UNKNOWN_SITE=site, SOT_UNKNOWN_ROLE=f"branch-{site}",
        DHCP_SUBNET="192.0.2.0/24", DHCP_POOL="192.0.2.100-192.0.2.199", SOT_DHCP_PUSH=True,
        KEA_CONTROL_SOCKET=kea.target)
    settings = server.settings
    api = server.url + "/api/v1"
    nb.post("/extras/webhooks/", {"name": f"pnp-{secrets.token_hex(3)}", "content_types": ["dcim.device"],
                                  "type_create": True, "type_update": True, "type_delete": True, "enabled": True,
                                  "payload_url": api + "/sot/webhook", "http_method": "POST",
                                  "http_content_type": "application/json", "secret": secret,
                                  "ssl_verification": False})

    dry = run_cli(lab, settings, "inventory", "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "FGL2548NB01: planned in Nautobot (status Planned, site Berlin-e2e)" in dry.stdout
    assert "3 created, 0 updated, 0 removed" in dry.stdout and "dry run" in dry.stdout
    assert requests.get(api + "/inventory", headers=AUTH, timeout=10).json()["total"] == 0
    synced = run_cli(lab, settings, "inventory", "sync")
    assert synced.returncode == 0, synced.stderr
    assert "3 created, 0 updated, 0 removed, 0 kept (mid-provisioning), 0 unchanged" in synced.stdout
    again = run_cli(lab, settings, "inventory", "sync")
    assert "0 created, 0 updated, 0 removed, 0 kept (mid-provisioning), 3 unchanged" in again.stdout  # idempotent
    items = {i["serial_number"]: i for i in requests.get(api + "/inventory", headers=AUTH, timeout=10).json()["items"]}
    assert items["FGL2548NB01"]["hostname"] == "br-berlin-1" and items["FGL2548NB01"]["source"] == "nautobot"
    assert items["FGL2548NB01"]["mac_address"] == "00:11:22:33:44:01"
    assert items["FGL2548NB01"]["variables"]["snmp_location"] == "Berlin-e2e DC1"
    preview = requests.get(api + "/devices/FGL2548NB02/config", headers=AUTH, timeout=10)
    assert preview.headers["X-Day0-Source"] == "nautobot" and "banner motd ^Nautobot at Berlin-e2e^" in preview.text

    # DHCP reservations come from Nautobot's IPAM (primary IPv4 + the mgmt-only interface's MAC).
    kea_out = run_cli(lab, settings, "dhcp", "kea")
    assert kea_out.returncode == 0, kea_out.stderr
    reservations = json.loads(kea_out.stdout)["Dhcp4"]["subnet4"][0]["reservations"]
    assert {"hw-address": "00:11:22:33:44:01", "ip-address": "192.0.2.11"}.items() <= reservations[0].items()

    devices = {sn: SimulatedDevice(server.url, sn, reload_seconds=0.3)
               for sn in ("FGL2548NB01", "FGL2548NB02", "FGL2548NB03", "FGL2548NB99")}
    threads = [threading.Thread(target=d.run, kwargs={"timeout": 180, "until": lambda x: x.finished or x.parked})
               for sn, d in devices.items() if sn != "FGL2548NB99"]
    for t in threads:
        t.start()
    unknown = devices["FGL2548NB99"]
    for _ in range(3):
        unknown.poll_once()
    assert "waiting to be claimed" in unknown.last_backoff_reason
    for t in threads:
        t.join()
    assert devices["FGL2548NB01"].finished and devices["FGL2548NB02"].finished
    assert "hostname br-berlin-1" in devices["FGL2548NB01"].startup_config
    assert "snmp-server location Berlin-e2e DC1" in devices["FGL2548NB01"].startup_config
    assert "banner motd ^Nautobot at Berlin-e2e^" in devices["FGL2548NB02"].startup_config
    assert devices["FGL2548NB03"].parked

    wait_for(lambda: nb.status_of(branch["id"]) == "Active", "br-berlin-1 Active in Nautobot", server=server)
    wait_for(lambda: nb.status_of(rendered["id"]) == "Active", "br-berlin-2 Active in Nautobot", server=server)
    wait_for(lambda: nb.status_of(broken["id"]) == "Failed", "br-berlin-3 Failed in Nautobot", server=server)
    notes = wait_for(lambda: [n for n in nb.notes(branch["id"]) if "Provisioned" in n], "the note", server=server)
    assert "FGL2548NB01" in notes[0] and "IOS-XE 17.12.3a after 1 image install(s)" in notes[0]
    assert any(n.startswith("First contact") for n in nb.notes(branch["id"]))
    failed = wait_for(lambda: [n for n in nb.notes(broken["id"]) if "failed" in n], "the failure note")
    assert "vlan_not_in_nautobot" in failed[0]

    # The unknown serial was created in Nautobot (status Inventory); the engineer claims it there.
    created = wait_for(lambda: nb.get("/dcim/devices/", serial="FGL2548NB99")["results"], "the unknown device",
                       server=server)
    assert nb.status_of(created[0]["id"]) == "Inventory"
    nb.patch(f"/dcim/devices/{created[0]['id']}/", {"name": "br-berlin-99", "status": nb.status["Planned"],
                                                     "custom_fields": {"pnp_template": "branch.j2"}})
    wait_for(lambda: requests.get(api + "/devices/FGL2548NB99", headers=AUTH, timeout=10).json()["inventory"],
             "the webhook to claim FGL2548NB99", server=server)
    assert unknown.run(timeout=180), unknown.log[-5:]
    assert "hostname br-berlin-99" in unknown.startup_config
    wait_for(lambda: nb.status_of(created[0]["id"]) == "Active", "br-berlin-99 Active", server=server)

    # A change in Nautobot reaches the inventory through the webhook, with the history, and Kea.
    nb.patch(f"/dcim/devices/{branch['id']}/", {"name": "br-berlin-1a"})

    def renamed():
        detail = requests.get(api + "/devices/FGL2548NB01", headers=AUTH, timeout=10).json()
        return detail if detail["inventory"]["hostname"] == "br-berlin-1a" else None
    detail = wait_for(renamed, "the webhook to rename FGL2548NB01", server=server)
    assert any("hostname changed: br-berlin-1 → br-berlin-1a" in e["message"] for e in detail["events"])
    config = kea.command("config-get")["arguments"]["Dhcp4"]
    hosts = {r["hw-address"]: r for r in config["subnet4"][0]["reservations"]}
    assert hosts["00:11:22:33:44:01"]["hostname"] == "br-berlin-1a"
    assert hosts["00:11:22:33:44:01"]["ip-address"] == "192.0.2.11"

    # A device planned and then deleted in Nautobot comes and goes through the webhooks alone.
    def in_inventory(serial: str) -> bool:
        return requests.get(api + f"/devices/{serial}", headers=AUTH, timeout=10).status_code == 200
    spare = nb.device("br-berlin-5", "FGL2548NB05", mac="00:11:22:33:44:05", ip="192.0.2.15")
    wait_for(lambda: in_inventory("FGL2548NB05"), "the webhook to add FGL2548NB05", server=server)
    nb.delete(f"/dcim/devices/{spare['id']}/")
    wait_for(lambda: not in_inventory("FGL2548NB05"), "the webhook to remove FGL2548NB05", server=server)

    queue = requests.get(api + "/sot/writeback", headers=AUTH, timeout=10).json()
    assert queue["pending"] == 0, queue
    bad = requests.post(api + "/sot/webhook", data=b'{"model": "device", "event": "updated", "data": {"id": "x"}}',
                        headers={"X-Hook-Signature": "0" * 128, "Content-Type": "application/json"}, timeout=10)
    assert bad.status_code == 403
