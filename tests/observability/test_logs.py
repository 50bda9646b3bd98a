"""pnp_debug.log an engineer can use: backoff polls summarized, failures at WARNING with step
and reason, logins and actions with the user, JSON lines as an option — real log files."""

from __future__ import annotations

import json
import logging
import re

from app.observability.logs import BackoffSummaryFilter
from app.pnp import service
from simulator import SimulatedDevice


def log_text(app) -> str:
    for handler in logging.getLogger("pnp").handlers:
        handler.flush()
    return (app.config["PNP"].logs_dir / "pnp_debug.log").read_text()


def hello(client, serial):
    xml = SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml("CiscoPnP-1.0-T1-2")
    return client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")


def test_backoff_polls_become_one_rate_line_per_device():
    clock = [0.0]
    summary = BackoffSummaryFilter(300, clock=lambda: clock[0])

    def record(message):
        return logging.LogRecord("pnp", logging.INFO, __file__, 1, "%s", (message,), None)

    line = "FGL0L0001 CiscoPnP-1.0-T1-9 work-request FINISHED: backoff 86400s"
    assert summary.filter(record(line)), "the first backoff is shown"
    shown = []
    for _ in range(59):
        clock[0] += 5
        rec = record(line)
        if summary.filter(rec):
            shown.append(rec.getMessage())
    clock[0] += 10
    rec = record(line)
    assert summary.filter(rec)
    assert shown == [] and rec.getMessage().startswith("FGL0L0001 backoff polls: 60 in the last 305 s")
    other = record("FGL0L0002 CiscoPnP-1.0-T1-2 work-request CONFIG_REGISTER: config-register 0x2102")
    assert summary.filter(other) and "backoff polls" not in other.getMessage()


def test_failures_at_warning_with_step_and_reason_and_actions_with_the_user(make_app):
    app = make_app(admin_token="log-token")
    client = app.test_client()
    hello(client, "FGL0L0003")
    sessions = app.extensions["pnp_sessions"]
    service.set_state(sessions, "FGL0L0003", "ERROR", changes={
        "failed_state": "APPLY_DAY0_CONFIG", "last_error_message": "cli-config rejected: % Invalid input"})
    client.post("/api/v1/devices/FGL0L0003/retry", headers={"Authorization": "Bearer log-token"})
    text = log_text(app)
    warning = next(line for line in text.splitlines() if " WARNING " in line and "FGL0L0003" in line)
    assert "failed at APPLY_DAY0_CONFIG (config_rejected): cli-config rejected: % Invalid input" in warning
    assert re.search(r" INFO .*pnp.audit: retry ok FGL0L0003 by admin \(env-token\) from 127.0.0.1", text)


def test_json_log_format(make_app):
    app = make_app(log_format="json", log_backoff_summary=0)
    hello(app.test_client(), "FGL0L0004")
    lines = [json.loads(line) for line in log_text(app).splitlines() if line.strip()]
    exchange = next(e for e in lines if "FGL0L0004" in e["message"])
    assert exchange["level"] == "INFO" and exchange["logger"] == "pnp" and exchange["asctime"]
