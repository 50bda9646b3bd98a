"""/healthz: JSON, 200 with a reachable database, 503 without; no secrets in the body."""

from __future__ import annotations

from app import create_app
from tests.helpers import free_port


def test_healthz_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.is_json
    assert resp.json["status"] == "ok" and resp.json["database"] == "up"


def test_healthz_database_down_is_503_and_pnp_gets_backoff(make_config):
    # nothing listens on this loopback port: connection refused at checkout
    url = f"mysql+pymysql://root:hunter2@127.0.0.1:{free_port()}/pnp"
    app = create_app(make_config(database_url=url))
    client = app.test_client()
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.is_json
    assert resp.json == {"status": "degraded", "database": "down", "error": "OperationalError"}
    assert b"hunter2" not in resp.data and b"127.0.0.1" not in resp.data
    # a device meanwhile gets a well-formed backoff (errors at connection checkout included)
    from tests.helpers import fixture_text

    wr = fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml")
    resp = client.post("/pnp/WORK-REQUEST", data=wr)
    assert resp.status_code == 200 and b"backoff" in resp.data and b"database unavailable" in resp.data
    resp = client.post("/pnp/WORK-RESPONSE",
                       data=fixture_text("resp_device-info-all_csr1000v_iosxe-17.3.4a.xml"))
    assert resp.status_code == 200 and b"bye" in resp.data
    app.extensions["pnp_engine"].dispose()


def test_last_resort_handler_answers_backoff_not_500(app, monkeypatch, caplog):
    """Fault injection (a bug in the service layer): the device still gets a PnP reply."""
    from app.pnp import service
    from tests.helpers import fixture_text

    def broken(*args, **kwargs):
        raise RuntimeError("injected bug")

    monkeypatch.setattr(service, "work_request", broken)
    monkeypatch.setattr(service, "work_response", broken)
    client = app.test_client()
    resp = client.post("/pnp/WORK-REQUEST", data=fixture_text("wr_csr1000v_iosxe-17.3.4a_reload-reason.xml"))
    assert resp.status_code == 200 and b"backoff" in resp.data and b"CiscoPnP-1.0" in resp.data
    resp = client.post("/pnp/WORK-RESPONSE",
                       data=fixture_text("resp_device-info-all_csr1000v_iosxe-17.3.4a.xml"))
    assert resp.status_code == 200 and b"bye" in resp.data
    assert sum("unexpected error" in r.getMessage() for r in caplog.records) == 2
