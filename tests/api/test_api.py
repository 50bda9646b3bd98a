"""Console and /api/v1 through the Flask test client: auth, CSRF, filters, pagination, actions.

Devices are created the real way (a simulated device's WORK-REQUEST posted to
/pnp/WORK-REQUEST); only the HTTP transport is the test client.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import insert

from app.pnp import service
from app.storage.db import utcnow
from app.storage.models import DeviceState
from simulator import SimulatedDevice

TOKEN = "t0ken-for-tests"
PASSWORD = "pa55word"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def console(make_app):
    return make_app(admin_password=PASSWORD, admin_token=TOKEN)


@pytest.fixture
def client(console):
    return console.test_client()


def hello(client, serial: str, pid: str = "C1131-8PWB") -> str:
    """The device's first WORK-REQUEST: creates its row in CONFIG_REGISTER; returns the reply."""
    xml = SimulatedDevice("http://127.0.0.1:9", serial, pid=pid).work_request_xml("CiscoPnP-1.0-T1-2")
    reply = client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")
    assert reply.status_code == 200
    return reply.get_data(as_text=True)


def csrf_from(html: str) -> str:
    return re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def log_in(client, password: str = PASSWORD):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "user": "admin", "password": password})


# --- authentication ----------------------------------------------------------------------------


def test_admin_pages_and_api_need_login_or_token_device_routes_stay_open(client):
    hello(client, "FGL0000A001")
    assert client.get("/dashboard").status_code == 302
    assert "/login" in client.get("/devices/FGL0000A001").headers["Location"]
    assert client.get("/api/v1/devices").status_code == 401
    assert client.get("/api/v1/devices", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/v1/devices", headers=AUTH).status_code == 200
    assert client.get("/pnp/HELLO").status_code == 200
    assert client.get("/configs/default.cfg").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_login_wrong_password_then_right_one(client):
    response = log_in(client, "nope")
    assert response.status_code == 401 and b"Wrong user or password" in response.data
    assert client.get("/dashboard").status_code == 302
    response = log_in(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard")
    assert client.get("/dashboard").status_code == 200
    assert client.get("/api/v1/devices").status_code == 200  # the session works for the API too


def test_failed_logins_are_rate_limited_per_address(make_app):
    app = make_app(admin_password=PASSWORD, login_rate_limit="3 per day")
    client = app.test_client()
    assert [log_in(client, "nope").status_code for _ in range(3)] == [401, 401, 401]
    blocked = log_in(client)  # even the right password waits now
    assert blocked.status_code == 429 and b"too many failed logins" in blocked.data
    other = app.test_client()
    token = csrf_from(other.get("/login", environ_base={"REMOTE_ADDR": "192.0.2.7"}).get_data(as_text=True))
    ok = other.post("/login", data={"csrf_token": token, "user": "admin", "password": PASSWORD},
                    environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert ok.status_code == 302, "another address is not blocked"


def test_successful_logins_do_not_count(make_app):
    app = make_app(admin_password=PASSWORD, login_rate_limit="2 per day")
    client = app.test_client()
    assert [log_in(client).status_code for _ in range(4)] == [302] * 4


def test_login_refuses_open_redirect(client):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/x", data={
        "csrf_token": token, "user": "admin", "password": PASSWORD})
    assert response.headers["Location"] == "/dashboard"


def test_no_password_set_means_nobody_logs_in(make_app):
    application = make_app()
    c = application.test_client()
    page = c.get("/login").get_data(as_text=True)
    assert "PNP_ADMIN_PASSWORD" in page
    token = csrf_from(page)
    c.post("/login", data={"csrf_token": token, "user": "admin", "password": ""})
    assert c.get("/dashboard").status_code == 302
    assert c.get("/api/v1/devices", headers={"Authorization": "Bearer "}).status_code == 401
    application.extensions["pnp_engine"].dispose()


def test_public_dashboard_setting_opens_read_only_pages_only(make_app):
    application = make_app(admin_password=PASSWORD, dashboard_public=True)
    c = application.test_client()
    hello(c, "FGL0000P001")
    assert c.get("/dashboard").status_code == 200
    assert c.get("/dashboard/table").status_code == 200
    device = c.get("/devices/FGL0000P001").get_data(as_text=True)
    assert "Log in</a> to act" in device and "<pnp" not in device  # no raw XML, no actions
    assert c.post("/devices/FGL0000P001/reset").status_code == 302  # to /login
    assert c.get("/api/v1/devices").status_code == 401
    application.extensions["pnp_engine"].dispose()


def test_expired_session_polled_by_htmx_redirects_whole_page(client):
    response = client.get("/dashboard/table", headers={"HX-Request": "true"})
    assert response.headers.get("HX-Redirect") == "/login"


# --- CSRF ----------------------------------------------------------------------------------------


def test_forms_without_csrf_token_are_refused(client):
    hello(client, "FGL0000C001")
    log_in(client)
    assert client.post("/devices/FGL0000C001/reset").status_code == 400
    assert client.post("/devices/FGL0000C001/resume", data={"state": "FINISHED"}).status_code == 400
    assert client.post("/devices/FGL0000C001/delete", data={"csrf_token": "forged"}).status_code == 400
    detail = client.get("/api/v1/devices/FGL0000C001").get_json()
    assert detail["summary"]["state"] == "CONFIG_REGISTER"
    token = csrf_from(client.get("/devices/FGL0000C001").get_data(as_text=True))
    response = client.post("/devices/FGL0000C001/resume", data={"csrf_token": token, "state": "FINISHED"})
    assert response.status_code == 302
    assert client.get("/api/v1/devices/FGL0000C001").get_json()["summary"]["state"] == "FINISHED"


def test_api_with_session_needs_csrf_header_token_does_not(client):
    hello(client, "FGL0000C002")
    log_in(client)
    assert client.post("/api/v1/devices/FGL0000C002/reset").status_code == 400
    token = csrf_from(client.get("/devices/FGL0000C002").get_data(as_text=True))
    assert client.post("/api/v1/devices/FGL0000C002/reset", headers={"X-CSRFToken": token}).status_code == 200
    anonymous = client.application.test_client()
    assert anonymous.post("/api/v1/devices/FGL0000C002/reset", headers=AUTH).status_code == 200


def test_logout_needs_csrf_and_ends_the_session(client):
    log_in(client)
    assert client.post("/logout").status_code == 400
    token = csrf_from(client.get("/dashboard").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/dashboard").status_code == 302


# --- API -----------------------------------------------------------------------------------------


def test_device_list_filters_sorts_paginates_and_counts(client, console):
    for i in range(7):
        hello(client, f"FGL0000L{i:03d}")
    sessions = console.extensions["pnp_sessions"]
    service.set_state(sessions, "FGL0000L001", "ERROR")
    service.set_state(sessions, "FGL0000L002", "BOOTFLASH_NO_SPACE")
    service.set_state(sessions, "FGL0000L003", "FINISHED")

    page = client.get("/api/v1/devices?per_page=3&page=2&sort=serial&order=desc", headers=AUTH).get_json()
    assert page["total"] == 7 and page["pages"] == 3
    assert [d["serial_number"] for d in page["items"]] == ["FGL0000L003", "FGL0000L002", "FGL0000L001"]
    assert page["counts"]["state"] == {"CONFIG_REGISTER": 4, "BOOTFLASH_NO_SPACE": 1, "FINISHED": 1, "ERROR": 1}
    assert page["counts"]["lifecycle"]["Error"] == 2 and page["counts"]["lifecycle"]["Provisioned"] == 1
    assert page["counts"]["lifecycle"]["Unclaimed"] == 4 and page["counts"]["stalled"] == 2

    errors = client.get("/api/v1/devices?lifecycle=Error", headers=AUTH).get_json()
    assert {d["serial_number"] for d in errors["items"]} == {"FGL0000L001", "FGL0000L002"}
    assert all(d["stalled"] for d in errors["items"])
    finished = client.get("/api/v1/devices?state=FINISHED", headers=AUTH).get_json()
    assert [d["lifecycle"] for d in finished["items"]] == ["Provisioned"]
    stalled = client.get("/api/v1/devices?stalled=1", headers=AUTH).get_json()
    assert stalled["total"] == 2
    assert client.get("/api/v1/devices?state=NOPE", headers=AUTH).status_code == 400
    assert client.get("/api/v1/devices?sort=password", headers=AUTH).status_code == 400
    assert client.get("/api/v1/devices?page=x", headers=AUTH).status_code == 400


def test_silent_device_is_stalled(make_app):
    application = make_app(admin_token=TOKEN, stalled_after=0)
    c = application.test_client()
    hello(c, "FGL0000S001")
    import time

    time.sleep(1.1)  # silent for more than STALLED_AFTER=0 s (no timing assertion: a precondition)
    items = c.get("/api/v1/devices?stalled=1", headers=AUTH).get_json()["items"]
    assert [d["serial_number"] for d in items] == ["FGL0000S001"]
    application.extensions["pnp_engine"].dispose()


def test_device_detail_has_fields_events_newest_first_xml_and_day0(client):
    hello(client, "FGL0000D001")
    data = client.get("/api/v1/devices/FGL0000D001", headers=AUTH).get_json()
    assert data["fields"]["serial_number"] == "FGL0000D001" and data["fields"]["state"] == "CONFIG_REGISTER"
    assert data["summary"]["step"] == 1 and data["summary"]["lifecycle"] == "Unclaimed"
    kinds = [e["kind"] for e in data["events"]]
    assert kinds[-1] == "info" and "first contact" in data["events"][-1]["message"]
    assert data["events"][0]["id"] > data["events"][-1]["id"]
    assert any("config-register" in (e["raw_xml"] or "") for e in data["exchanges"])
    assert data["day0"]["name"] == "default.cfg" and data["day0"]["error"] is None
    assert client.get("/api/v1/devices/NOPE", headers=AUTH).status_code == 404
    page = client.get("/dashboard/table", headers=AUTH)
    assert page.status_code == 302  # the token is for the API, not for pages


def test_actions_resume_retry_reset_delete(client, console):
    hello(client, "FGL0000X001")
    sessions = console.extensions["pnp_sessions"]
    service.set_state(sessions, "FGL0000X001", "RUN_EVENT_MANAGER")
    service.set_state(sessions, "FGL0000X001", "ERROR", changes={"last_error_message": "boom"})
    r = client.post("/api/v1/devices/FGL0000X001/retry", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "RUN_EVENT_MANAGER"
    assert r.get_json()["last_error_message"] is None

    r = client.post("/api/v1/devices/FGL0000X001/resume", json={"state": "CHECK_BOOTFLASH"}, headers=AUTH)
    assert r.get_json()["state"] == "CHECK_BOOTFLASH"
    assert client.post("/api/v1/devices/FGL0000X001/resume", json={"state": "BOGUS"},
                       headers=AUTH).status_code == 400
    assert client.post("/api/v1/devices/FGL0000X001/resume", data="x", headers=AUTH).status_code == 400

    r = client.post("/api/v1/devices/FGL0000X001/reset", headers=AUTH)
    assert r.get_json()["state"] == "CONFIG_REGISTER" and r.get_json()["step"] == 1
    events = client.get("/api/v1/devices/FGL0000X001", headers=AUTH).get_json()["events"]
    assert "reset by admin" in events[0]["message"]  # the user behind the token

    # the reset step is what the device gets next: a cli-config job afresh
    assert "config-register 0x2102" in hello(client, "FGL0000X001")

    assert client.delete("/api/v1/devices/FGL0000X001", headers=AUTH).status_code == 204
    assert client.get("/api/v1/devices/FGL0000X001", headers=AUTH).status_code == 404
    assert client.delete("/api/v1/devices/FGL0000X001", headers=AUTH).status_code == 404


def test_many_devices_are_paginated_server_side(client, console):
    engine = console.extensions["pnp_engine"]
    now = utcnow()
    rows = [dict(serial_number=f"BULK{i:06d}", pid="C1131-8PWB", vid="V01", udi="", first_seen=now,
                 last_contact=now, state="FINISHED" if i % 10 else "CONFIG_REGISTER", attempts=0,
                 image_installs=0, guestshell_checks=0, tarball_transferred=False,
                 script_transferred=False, configured=False) for i in range(10_000)]
    with engine.begin() as conn:
        conn.execute(insert(DeviceState), rows)
    page = client.get("/api/v1/devices?state=CONFIG_REGISTER&page=20&per_page=50", headers=AUTH).get_json()
    assert page["total"] == 1000 and page["pages"] == 20 and len(page["items"]) == 50
    assert page["items"][-1]["serial_number"] == "BULK009990"
    log_in(client)
    html = client.get("/dashboard/table?page=3").get_data(as_text=True)
    assert html.count('<tr id="device-') == 50 and "Page 3 of 200" in html


def test_openapi_document_describes_the_routes(client, console):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = {"/api/v1" + path for path in doc["paths"]}
    served = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule) for rule in console.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and not rule.rule.endswith("openapi.json")}
    assert served == documented
    import openapi_spec_validator

    openapi_spec_validator.validate(doc)


@pytest.mark.mariadb
def test_list_counts_inventory_and_actions_on_mariadb(make_app, mariadb_fresh):
    """The same queries (EXISTS, GROUP BY, JSON variables, delete) on MariaDB."""
    from sqlalchemy import create_engine, text

    engine = create_engine(mariadb_fresh)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM inventory"))
    engine.dispose()
    application = make_app(database_url=mariadb_fresh, admin_token=TOKEN)
    c = application.test_client()
    for i in range(3):
        hello(c, f"FGL0000M{i:03d}")
    imported = c.post("/api/v1/inventory", data="serial,hostname,site\nFGL0000M000,m0,Köln\nFGL0000M999,p,x\n",
                      headers={**AUTH, "Content-Type": "text/csv"})
    assert imported.status_code == 200, imported.get_json()
    service.set_state(application.extensions["pnp_sessions"], "FGL0000M001", "ERROR")
    counts = c.get("/api/v1/devices", headers=AUTH).get_json()["counts"]
    assert counts["lifecycle"] == {"Planned": 1, "Unclaimed": 1, "Onboarding": 1, "Provisioned": 0, "Error": 1}
    onboarding = c.get("/api/v1/devices?lifecycle=Onboarding", headers=AUTH).get_json()["items"]
    assert [d["serial_number"] for d in onboarding] == ["FGL0000M000"]
    detail = c.get("/api/v1/devices/FGL0000M000", headers=AUTH).get_json()
    assert detail["inventory"]["variables"] == {"site": "Köln"}
    assert c.post("/api/v1/devices/FGL0000M001/retry", headers=AUTH).get_json()["state"] == "CONFIG_REGISTER"
    assert c.delete("/api/v1/devices/FGL0000M002", headers=AUTH).status_code == 204
    application.extensions["pnp_engine"].dispose()


def test_unknown_api_urls_answer_json_other_areas_keep_html(client):
    response = client.get("/api/v1/nothing", headers=AUTH)
    assert response.status_code == 404 and "error" in response.get_json()
    assert client.put("/api/v1/devices", headers=AUTH).status_code == 405
    assert client.get("/images/nothing.bin").mimetype != "application/json"


def test_inventory_upload_page_validates_then_imports_and_claim_button(client, console, lab):
    import io

    (lab / "configs" / "branch.j2").write_text("hostname {{ hostname }}\nip domain name {{ domain }}\n")
    log_in(client)
    page = client.get("/inventory").get_data(as_text=True)
    token = csrf_from(page)
    bad = client.post("/inventory", content_type="multipart/form-data", data={
        "csrf_token": token,
        "csv_file": (io.BytesIO(b"serial,hostname,template\nFGL0000U001,r1,branch.j2\n"), "inv.csv")})
    assert bad.status_code == 400
    assert "line 2: FGL0000U001: template branch.j2: &#39;domain&#39; is undefined" in bad.get_data(as_text=True)
    assert client.get("/api/v1/inventory").get_json()["total"] == 0
    no_token = client.post("/inventory", content_type="multipart/form-data", data={
        "csv_file": (io.BytesIO(b"serial\nFGL0000U001\n"), "inv.csv")})
    assert no_token.status_code == 400
    good = client.post("/inventory", content_type="multipart/form-data", data={
        "csrf_token": token,
        "csv_file": (io.BytesIO(b"serial,hostname,template,domain\nFGL0000U001,r1,branch.j2,lab.example\n"),
                     "inv.csv")})
    assert good.status_code == 200 and "Imported: 1 new, 0 updated" in good.get_data(as_text=True)
    planned = client.get("/devices/FGL0000U001").get_data(as_text=True)
    assert "Planned" in planned and "ip domain name lab.example" in planned
    listed = client.get("/api/v1/devices").get_json()["items"]
    assert [(d["serial_number"], d["lifecycle"], d["state"]) for d in listed] == [("FGL0000U001", "Planned", None)]

    hello(client, "FGL0000U002")
    by_lifecycle = client.get("/api/v1/devices?sort=lifecycle").get_json()["items"]
    assert [d["lifecycle"] for d in by_lifecycle] == ["Planned", "Unclaimed"]
    assert "FGL0000U001" in client.get("/dashboard/table").get_data(as_text=True)
    table = client.get("/dashboard/table").get_data(as_text=True)
    assert 'action="/devices/FGL0000U002/claim"' in table and 'action="/devices/FGL0000U001/claim"' not in table
    device_page = client.get("/devices/FGL0000U002").get_data(as_text=True)
    assert 'name="claim"' in device_page
    response = client.post("/devices/FGL0000U002/claim", data={"csrf_token": csrf_from(device_page)})
    assert response.status_code == 302
    assert client.get("/api/v1/devices/FGL0000U002").get_json()["summary"]["lifecycle"] == "Onboarding"


def test_inventory_csv_larger_than_the_pnp_message_limit_is_accepted(client):
    lines = ["serial,hostname,notes"] + [f"FGL{i:07d},host-{i},{'n' * 90}" for i in range(11_000)]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) > client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/v1/inventory", data=body, headers={**AUTH, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 11_000
    assert client.get("/api/v1/devices?lifecycle=Planned&per_page=1", headers=AUTH).get_json()["total"] == 11_000


def test_console_settings_come_from_the_environment_and_stay_out_of_repr():
    from app.config import Config, ConfigError

    config = Config.load(None, env={"PNP_ADMIN_PASSWORD": "s3cret", "PNP_ADMIN_TOKEN": "tok",
                                    "PNP_DASHBOARD_PUBLIC": "true", "PNP_REQUIRE_CLAIM": "no",
                                    "PNP_STALLED_AFTER": "120"}, resolve_images=False)
    assert (config.admin_password, config.admin_token) == ("s3cret", "tok")
    assert config.dashboard_public is True and config.require_claim is False and config.stalled_after == 120
    assert "s3cret" not in repr(config) and "tok'" not in repr(config)
    other = Config.load(None, env={"PNP_ADMIN_PASSWORD": "changed"}, resolve_images=False)
    assert other.session_secret != config.session_secret, "a new password invalidates sessions"
    assert Config.load(None, env={"PNP_SECRET_KEY": "k"}, resolve_images=False).session_secret == "k"
    with pytest.raises(ConfigError, match="DASHBOARD_PUBLIC"):
        Config.load(None, env={"PNP_DASHBOARD_PUBLIC": "maybe"}, resolve_images=False)


def test_dashboard_says_the_database_is_down(make_config):
    """No database (nothing listens on 127.0.0.1:1): the page says so with a 503, and the htmx
    refresh gets a banner (200, so htmx swaps it and keeps polling) instead of an error."""
    from app import create_app

    app = create_app(make_config(database_url="mysql+pymysql://nobody:pw-secret@127.0.0.1:1/none",
                                 dashboard_public=True))
    client = app.test_client()
    page = client.get("/dashboard")
    assert page.status_code == 503 and b"Database unavailable" in page.data
    assert b"127.0.0.1:1" in page.data and b"pw-secret" not in page.data
    partial = client.get("/dashboard/table?state=ERROR", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and b"Database unavailable" in partial.data
    assert b'hx-get="/dashboard/table?state=ERROR"' in partial.data


def test_unknown_device_is_404_on_every_device_route_and_dry_run_says_what_would_change(client):
    hello(client, "FGL0000D001")
    for method, path in [("get", "/devices/NOSUCH1/config"), ("get", "/devices/NOSUCH1"),
                         ("get", "/devices/NOSUCH1/history"), ("post", "/devices/NOSUCH1/retry"),
                         ("post", "/devices/NOSUCH1/reset"), ("post", "/devices/NOSUCH1/claim"),
                         ("delete", "/devices/NOSUCH1"), ("get", "/inventory/NOSUCH1"),
                         ("delete", "/inventory/NOSUCH1")]:
        answer = getattr(client, method)("/api/v1" + path, headers=AUTH)
        assert answer.status_code == 404 and answer.get_json()["error"], (method, path)
    first = "serial,hostname,pid\nFGL0000D001,br-01,C1131-8PWB\n"
    assert client.post("/api/v1/inventory", data=first, content_type="text/csv", headers=AUTH).status_code == 200
    csv = "serial,hostname,pid\nFGL0000D001,br-01-new,C1131-8PWB\nFGL0000D002,br-02,C1131-8PWB\n"
    preview = client.post("/api/v1/inventory?dry_run=true", data=csv, content_type="text/csv", headers=AUTH)
    body = preview.get_json()
    assert preview.status_code == 200 and body["dry_run"] is True
    assert (body["created"], body["updated"]) == (1, 1)
    changes = {c["serial_number"]: c for c in body["changes"]}
    assert changes["FGL0000D002"]["action"] == "create"
    assert changes["FGL0000D001"]["action"] == "update"
    assert changes["FGL0000D001"]["changes"]["hostname"] == ["br-01", "br-01-new"]
    rows = client.get("/api/v1/inventory", headers=AUTH).get_json()
    assert rows["total"] == 1 and rows["items"][0]["hostname"] == "br-01", "a dry run writes nothing"
