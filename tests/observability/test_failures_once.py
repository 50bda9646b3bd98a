"""Every failure a device reports is logged exactly once at WARNING, with its reason and the step
(app/ops/notify.py); the services log the exchange itself at INFO. Cisco devices provisioned by
the real server (run.py under gunicorn) with injected faults; a Juniper ZTP fetch that fails."""

from __future__ import annotations

import logging

from simulator import SimulatedDevice
from simulator.device import Faults
from tests.helpers import drive


def _warnings(text: str, key: str) -> list[str]:
    return [line for line in text.splitlines() if (" WARNING " in line or " ERROR " in line) and key in line]


def test_each_cisco_failure_once_at_warning_with_reason_and_step(start_server, lab):
    server = start_server(WORKERS=1, MAX_ATTEMPTS=2, ERROR_RETRY_ROUNDS=0)
    devices = [SimulatedDevice(server.url, "FGL0ONCE01", faults=Faults(transfer_errors=5)),
               SimulatedDevice(server.url, "FGL0ONCE02", faults=Faults(reject_cli={"config-register 0x2102"}))]
    assert drive(devices, timeout=15) == {"FGL0ONCE01": False, "FGL0ONCE02": False}
    server.stop()
    text = (lab / "logs" / "pnp_debug.log").read_text()
    transfer = _warnings(text, "FGL0ONCE01")
    assert len(transfer) == 2, transfer  # attempt 1 (retried), attempt 2 (gave up): one line each
    assert "error at TRANSFER_TARBALL, will retry: PnP Service Error 1702" in transfer[0]
    assert "failed at TRANSFER_TARBALL (device_error)" in transfer[1] and "gave up after 2 attempts" in transfer[1]
    (rejected,) = _warnings(text, "FGL0ONCE02")
    assert "failed at CONFIG_REGISTER (config_rejected)" in rejected and "Invalid input" in rejected


def test_a_ztp_failure_once_at_warning_with_reason_and_fetch(make_app, lab, caplog):
    from tests.ztp.test_ztp_fetch import INVENTORY, MODELS, TEMPLATE

    folder = lab / "configs" / "juniper"
    folder.mkdir()
    (folder / "access.conf.j2").write_text(TEMPLATE)
    (folder / "inventory.csv").write_text(INVENTORY)
    app = make_app(juniper_models=MODELS)
    caplog.set_level(logging.INFO)
    answer = app.test_client().get("/ztp_fetch/conf/Juniper-ex4300-48p/02-00-00-00-00-04.conf")
    assert answer.status_code == 404
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "02:00:00:00:00:04" in r.getMessage()]
    warnings = [m for level, m in lines if level in ("WARNING", "ERROR")]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("02:00:00:00:00:04 failed (template_error): 404 ztp-conf: template "
                                  "'access.conf.j2'") and "'mgmt_ip' is undefined" in warnings[0]
    assert any(level == "INFO" and m.startswith("ztp conf 02:00:00:00:00:04 from") for level, m in lines)
