"""/metrics beyond the PnP counters: build info, the whole server's process metrics, HTTP
latency per route group, devices per lifecycle and stalled, workflow failures by kind, and
``pnp_database_up`` when the database is gone — Flask client and real gunicorn workers."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from app.ops.monitoring import failure_kind
from app.pnp import service
from simulator import SimulatedDevice


def samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_fleet_gauges_failures_latency_and_build_info(make_app):
    app = make_app(admin_token="metrics-token")
    client = app.test_client()
    xml = SimulatedDevice("http://127.0.0.1:9", "FGL0M0001").work_request_xml("CiscoPnP-1.0-T1-2")
    client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")
    before = value(samples(client.get("/metrics").get_data(as_text=True)),
                   "pnp_workflow_failures_total", kind="script_failure") or 0
    service.set_state(app.extensions["pnp_sessions"], "FGL0M0001", "ERROR",
                      changes={"failed_state": "RUN_SCRIPT", "last_error_message": "script failed: Traceback"})
    found = samples(client.get("/metrics").get_data(as_text=True))
    assert value(found, "pnp_workflow_failures_total", kind="script_failure") == before + 1
    assert value(found, "pnp_workflow_failures_total", kind="template_error") is not None, "series exist at 0"
    assert value(found, "pnp_devices_lifecycle", lifecycle="Error") == 1
    assert value(found, "pnp_devices_stalled") == 1
    assert value(found, "pnp_database_up") == 1
    assert any(k[0] == "pnp_build_info" and dict(k[1])["version"] for k in found)
    assert value(found, "pnp_server_processes") == 1
    assert (value(found, "process_resident_memory_bytes") or 0) > 10_000_000
    assert any(k[0] == "python_info" for k in found)
    assert (value(found, "pnp_http_request_duration_seconds_count", group="pnp", status="2xx") or 0) >= 1
    assert (value(found, "pnp_http_request_duration_seconds_count", group="metrics", status="2xx") or 0) >= 1


def test_database_down_is_a_metric_not_an_error(make_app):
    app = make_app()
    down = app.test_client()
    gone = create_engine("mysql+pymysql://root@127.0.0.1:1/nothing", connect_args={"connect_timeout": 2})
    app.extensions["pnp_sessions"].configure(bind=gone)  # nothing listens on port 1
    response = down.get("/metrics")
    assert response.status_code == 200
    found = samples(response.get_data(as_text=True))
    assert value(found, "pnp_database_up") == 0
    assert not any(k[0] in ("pnp_devices", "pnp_devices_lifecycle") for k in found)


def test_failure_kinds():
    assert failure_kind("ERROR", "APPLY_DAY0_CONFIG", None, "day-0 config: 'mgmt_ip' is undefined") == "template_error"
    assert failure_kind("ERROR", "APPLY_DAY0_CONFIG", None, "cli-config rejected: % Invalid input") == "config_rejected"
    assert failure_kind("ERROR", "RUN_SCRIPT", None, "script output lacks the success marker") == "script_failure"
    assert failure_kind("ERROR", "VERIFY_IMAGE", None, "reload did not take") == "reload_not_taken"
    assert failure_kind("ERROR", "TRANSFER_TARBALL", "PnP Service Error 1702", "copy failed") == "device_error"
    assert failure_kind("ERROR", None, None, None) == "unknown"
    assert failure_kind("ERROR", None, None, None, error_kind="config_rejected") == "config_rejected"


def test_process_metrics_cover_every_gunicorn_worker(start_server):
    server = start_server(WORKERS=2)
    found = samples(requests.get(server.url + "/metrics", timeout=30).text)
    assert value(found, "pnp_server_processes") == 3, "the master and two workers"
    assert value(found, "process_cpu_seconds_total") > 0
    assert value(found, "process_open_fds") > 3


def test_alert_rules_use_metrics_the_server_exposes(make_app):
    import re
    from pathlib import Path

    import yaml

    rules = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "prometheus-alerts.yml").read_text())
    alerts = {r["alert"]: r["expr"] for group in rules["groups"] for r in group["rules"]}
    assert {"PnPDeviceStalled", "PnPWorkflowFailureRate", "PnPDatabaseDown"} <= set(alerts)
    app = make_app()
    client = app.test_client()
    client.get("/pnp/HELLO")
    families = text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    exposed = {f.name for f in families}  # a family is exposed even before its first sample
    for alert, expr in alerts.items():
        for name in set(re.findall(r"\b((?:pnp|process)_[a-z_]+)", expr)):
            assert name.removesuffix("_total") in exposed, f"{alert}: {name} is not exposed"
