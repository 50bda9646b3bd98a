"""A device whose failed step later succeeds shows no stale last error: the real server
provisions a simulated device whose first file transfer fails (1702, retried); once it is
FINISHED the API and the dashboard show no error, and the history still has the failure."""

from __future__ import annotations

import requests

from simulator import SimulatedDevice
from simulator.device import Faults
from tests.helpers import drive

TOKEN = "stale-error-token"


def test_last_error_gone_once_the_failed_step_succeeded(start_server):
    server = start_server(ADMIN_TOKEN=TOKEN, MAX_ATTEMPTS=3, DASHBOARD_PUBLIC=True)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    device = SimulatedDevice(server.url, "FGL0STALE1", faults=Faults(transfer_errors=1))

    def summary():
        return requests.get(f"{server.url}/api/v1/devices/FGL0STALE1", headers=auth, timeout=30).json()

    # the tarball transfer failed once (1702), was retried and went through; the script
    # transfer after it too: the device is mid-way, not FINISHED, and has no error any more
    assert device.run(timeout=60, until=lambda d: "guest-share/pxs.py" in d.files), device.log[-5:]
    data = summary()
    assert data["summary"]["state"] not in ("FINISHED", "ERROR", "TRANSFER_TARBALL")
    assert data["summary"]["last_error_code"] is None and data["summary"]["last_error_message"] is None
    assert data["fields"]["last_error_message"] is None
    assert any(e["kind"] == "error" and e["error_code"] == "PnP Service Error 1702" for e in data["events"]), \
        "the failure stays in the history"
    listed = requests.get(f"{server.url}/api/v1/devices", params={"q": "FGL0STALE1"}, headers=auth,
                          timeout=30).json()["items"]
    assert [(d["serial_number"], d["last_error_message"]) for d in listed] == [("FGL0STALE1", None)]
    page = requests.get(f"{server.url}/dashboard", timeout=30)  # the public read-only view
    assert page.status_code == 200 and "FGL0STALE1" in page.text and "File copy failed" not in page.text

    assert drive([device], timeout=60) == {"FGL0STALE1": True}, device.log[-5:]
    data = summary()
    assert data["summary"]["state"] == "FINISHED"
    assert data["fields"]["last_error_code"] is None and data["fields"]["last_error_message"] is None
