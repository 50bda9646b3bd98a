"""Inventory, day-0 templates and claiming, end to end: real server, simulated devices.

REQUIRE_CLAIM: an unknown serial is told to wait (backoff) until claimed; a
serial imported through the API gets its Jinja2 template rendered and
downloads it from /configs/rendered/<SN>.cfg; a template that later needs a
variable the inventory lacks parks the device in ERROR with the reason, and
no config is sent.
"""

from __future__ import annotations

import threading

import pytest
import requests

from app.config import Config
from app.files.day0 import Day0Error, InventoryView, resolve
from app.ops.inventory import parse_inventory as parse_inventory_csv
from simulator import SimulatedDevice

TOKEN = "inventory-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_csv_parsing_reports_each_bad_line():
    rows, errors = parse_inventory_csv(
        "Serial,Hostname,PID,Template,site,mgmt ip\n"
        "FGL1,r1,C1131,t.j2,Berlin,\n"
        ",r2,,,,\n"
        "FGL3,r3,,../etc/passwd,,\n"
        "FGL4,r4,,,,,extra\n")
    assert errors == [
        "line 1: column 'mgmt ip' is not a usable template variable name (letters, digits, underscore)",
        "line 3: serial '' is not a serial number (letters, digits, . _ -; up to 64)",
        "line 4: template '../etc/passwd' must be a file name under configs/",
        "line 5: more fields than columns in the header",
    ]
    assert rows[0]["variables"] == {"site": "Berlin"}  # a blank cell is undefined (StrictUndefined fails)
    assert parse_inventory_csv("hostname\nx\n")[1] == ["line 1: no 'serial' column in the header (hostname)"]


def test_day0_precedence_static_then_template_then_default(lab):
    config = Config.load(None, env={}, root=lab, resolve_images=False)
    (lab / "configs" / "t.j2").write_text("hostname {{ hostname }}\n{{ banner }}\n")
    item = InventoryView("FGL9", "r9", "C1131", "t.j2", {"banner": "hi"})
    assert resolve(config, "FGL9", item).text == "hostname r9\nhi\n"
    assert resolve(config, "FGL9", item).name == "rendered/FGL9.cfg"
    assert resolve(config, "FGL9", None).name == "default.cfg"
    with pytest.raises(Day0Error, match="'banner' is undefined"):
        resolve(config, "FGL9", InventoryView("FGL9", "r9", "", "t.j2", {}))
    with pytest.raises(Day0Error, match="not found"):
        resolve(config, "FGL9", InventoryView("FGL9", "r9", "", "nope.j2", {}))
    (lab / "configs" / "FGL9.cfg").write_text("static\n")
    assert resolve(config, "FGL9", item).source == "static"


@pytest.mark.e2e
def test_claim_templates_and_missing_variable_end_to_end(start_server, lab):
    (lab / "configs" / "branch.j2").write_text(
        "hostname {{ hostname }}\nsnmp-server location {{ site }}\n"
        + (lab / "configs" / "default.cfg").read_text())
    (lab / "configs" / "campus.j2").write_text("hostname {{ hostname }}\n")
    server = start_server(REQUIRE_CLAIM=True, ADMIN_TOKEN=TOKEN)
    api = server.url + "/api/v1"

    csv_text = ("serial,hostname,pid,template,site\n"
                "FGL2548T001,branch-berlin,C1131-8PWB,branch.j2,Berlin\n"
                "FGL2548T002,campus-1,C1131-8PWB,campus.j2,\n"
                "FGL2548T003,planned-only,C1131-8PWB,,\n")
    bad = requests.post(api + "/inventory", data="serial,template\nFGL2548T009,missing.j2\n",
                        headers={**AUTH, "Content-Type": "text/csv"}, timeout=10)
    assert bad.status_code == 400 and "missing.j2" in bad.json()["errors"][0]
    imported = requests.post(api + "/inventory", files={"file": ("inv.csv", csv_text)}, headers=AUTH, timeout=10)
    assert imported.status_code == 200 and imported.json()["created"] == 3
    # The operator then changes the campus template to need a variable the inventory lacks.
    (lab / "configs" / "campus.j2").write_text("hostname {{ hostname }}\nntp server {{ ntp_server }}\n")

    unknown = SimulatedDevice(server.url, "FGL2548T000", reload_seconds=0.3)
    for _ in range(3):
        unknown.poll_once()
    assert "waiting to be claimed" in unknown.last_backoff_reason
    summary = requests.get(api + "/devices/FGL2548T000", headers=AUTH, timeout=10).json()["summary"]
    assert summary["state"] == "CONFIG_REGISTER" and summary["lifecycle"] == "Unclaimed"
    planned = requests.get(api + "/devices?lifecycle=Planned", headers=AUTH, timeout=10).json()
    assert {d["serial_number"] for d in planned["items"]} == {"FGL2548T001", "FGL2548T002", "FGL2548T003"}

    branch = SimulatedDevice(server.url, "FGL2548T001", reload_seconds=0.3)
    campus = SimulatedDevice(server.url, "FGL2548T002", reload_seconds=0.3)
    results = {}
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d.serial, d.run(
        timeout=120, until=lambda x: x.finished or x.parked))) for d in (branch, campus)]
    for t in threads:
        t.start()
    claimed = requests.post(api + "/devices/FGL2548T000/claim", headers=AUTH, timeout=10)
    assert claimed.status_code == 200 and claimed.json()["newly_claimed"] is True
    assert unknown.run(timeout=120)
    for t in threads:
        t.join()

    assert branch.finished
    assert "hostname branch-berlin" in branch.startup_config
    assert "snmp-server location Berlin" in branch.startup_config
    assert branch.downloads.get(server.url + "/configs/rendered/FGL2548T001.cfg") == 1

    assert campus.parked
    detail = requests.get(api + "/devices/FGL2548T002", headers=AUTH, timeout=10).json()
    assert detail["summary"]["state"] == "ERROR" and detail["summary"]["lifecycle"] == "Error"
    assert "'ntp_server' is undefined" in detail["summary"]["last_error_message"]
    assert "'ntp_server' is undefined" in detail["day0"]["error"]
    assert not any("rendered" in url for url in campus.downloads), "no half config may be sent"
    assert requests.get(server.url + "/configs/rendered/FGL2548T002.cfg", timeout=10).status_code == 404
    preview = requests.get(api + "/devices/FGL2548T002/config", headers=AUTH, timeout=10)
    assert preview.status_code == 422 and "ntp_server" in preview.json()["error"]

    assert unknown.finished
    counts = requests.get(api + "/devices", headers=AUTH, timeout=10).json()["counts"]["lifecycle"]
    assert counts == {"Planned": 1, "Unclaimed": 0, "Onboarding": 0, "Provisioned": 2, "Error": 1}


def test_workflow_answers_backoff_to_unclaimed_serial_and_job_once_claimed(make_config):
    from datetime import datetime

    from app.pnp import protocol as p
    from app.pnp import workflow as wf
    from tests.helpers import fixture_text

    request = p.parse_work_request(fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml").encode())
    device = wf.DeviceView(serial_number=request.udi.sn, pid="C1131-8PWB")
    ctx = wf.Context(now=datetime(2026, 1, 1), config=make_config(), claimed=False)
    waiting = wf.on_work_request(device, request, ctx)
    assert waiting.job is None and waiting.backoff_reason == wf.WAITING_FOR_CLAIM
    assert waiting.state == wf.State.CONFIG_REGISTER
    claimed = wf.on_work_request(device, request, wf.Context(now=ctx.now, config=ctx.config))
    assert claimed.job is not None and claimed.job.service == "cli-config"
    parked = wf.DeviceView(serial_number="X", state="FINISHED")
    assert "finished" in wf.on_work_request(parked, request, ctx).backoff_reason
