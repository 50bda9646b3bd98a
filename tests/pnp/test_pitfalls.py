"""One test (or a pointer to it) per pitfall of docs/protocol.md §15.

P1 file systems .......... test_workflow.py::test_bootflash_selected_by_name_not_position,
                           test_protocol.py::test_device_info_single_filesystem_flash0
P2 versions, install mode  test_workflow.py::test_padded_file_version_matches_device_version,
                           ::test_install_mode_device_on_target_is_not_upgraded_again
P3 empty bodies .......... test_workflow.py::test_every_state_answers_work_request_with_a_job_or_backoff
P4 faults ................ test_routes.py::test_fault_is_recorded_on_pending_job_and_answered_bye
P5 odd UDIs, bad bodies .. test_protocol.py::test_udi_parser_is_tolerant, test_routes.py (400s), below
P6 state in memory ....... test_e2e_recovery.py::test_parked_device_resumes_after_sql_edit,
                           ::test_many_devices_many_workers_each_step_once
P7 retry limits .......... test_workflow.py::test_soft_error_retries_with_escalating_backoff_then_error
P8 correlators ........... test_workflow.py::test_stale_correlator_changes_nothing, below
P9 results on trust ...... test_workflow.py::test_rejected_cli_config_line_fails_the_step,
                           ::test_script_traceback_fails_even_with_success_1
P10 self HTTP calls ...... below
P11 dev server as root ... below
P12 secrets in logs ...... test_routes.py::test_credentials_are_redacted_in_history
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

import pytest
import requests
from sqlalchemy import update

from app.storage.db import get_sessions
from app.storage.models import DeviceState
from tests.helpers import IMAGE_NAME, fixture_text

WR = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml")


@pytest.mark.parametrize("udi", ["PID:ISR4451-X/K9,VID:V08,SN:FCZ230640AB", "PID:7206VXR,VID:,SN:34835437",
                                 "PID:AIR-AP2802I-E-K9,SN:FJC1234X0AB"])
def test_p5_odd_udis_get_a_job(client, udi):
    body = WR.replace("PID:CSR1000V,VID:V00,SN:99CWJ5DOLWQ", udi)
    r = client.post("/pnp/WORK-REQUEST", data=body)
    assert r.status_code == 200 and ET.fromstring(r.data).get("udi") == udi


def test_p8_replayed_response_does_not_advance(client, app):
    first = client.post("/pnp/WORK-REQUEST", data=WR)
    corr = ET.fromstring(first.data)[0].get("correlator")
    ok = ('<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:CSR1000V,VID:V00,SN:99CWJ5DOLWQ">'
          f'<response xmlns="urn:cisco:pnp:cli-config" correlator="{corr}" success="1"/></pnp>')
    client.post("/pnp/WORK-RESPONSE", data=ok)
    client.post("/pnp/WORK-REQUEST", data=WR.replace("T43891-2", "T43892-2"))  # write memory pending
    client.post("/pnp/WORK-RESPONSE", data=ok)  # the old response, replayed
    with app.app_context(), get_sessions()() as s:
        row = s.query(DeviceState).one()
        assert row.state == "SAVE_CONFIG_REGISTER" and row.pending_service == "cli-exec"


def test_p10_no_http_call_to_itself(make_app, monkeypatch):
    """Deciding image-install checks the file on disk: no connection is opened while handling it.

    socket.create_connection is replaced by a tripwire (the server would have to open a
    connection to call itself; nothing else in the request path connects anywhere on SQLite).
    """
    app = make_app(server_ip="127.0.0.2", port=9)
    client = app.test_client()
    client.post("/pnp/WORK-REQUEST", data=WR)
    with app.app_context(), get_sessions()() as s:
        s.execute(update(DeviceState).values(state="INSTALL_IMAGE", pid="C1131-8PWB"))
        s.commit()

    def tripwire(*args, **kwargs):
        raise AssertionError(f"outgoing connection to {args[0]}")
    monkeypatch.setattr(socket, "create_connection", tripwire)
    body = WR.replace("PID:CSR1000V", "PID:C1131-8PWB").replace("T43891-2", "T2-2")
    r = client.post("/pnp/WORK-REQUEST", data=body)
    req = ET.fromstring(r.data)[0]
    assert req.tag == "{urn:cisco:pnp:image-install}request"
    assert f"http://127.0.0.2:9/images/{IMAGE_NAME}" in r.text


@pytest.mark.e2e
def test_p11_served_by_gunicorn_with_configurable_address(start_server):
    server = start_server()
    r = requests.get(server.url + "/pnp/HELLO", timeout=5)
    assert r.status_code == 200 and r.headers["Server"].startswith("gunicorn")
    assert "Workers  " in server.output() and server.url.split(":")[-1] in server.output()
