"""Accounts, roles, server-side sessions, personal tokens, shared limits and the audit log,
through the Flask test client on a real SQLite file (and MariaDB for the shared counters).

Devices are created the real way (a WORK-REQUEST posted to /pnp/WORK-REQUEST).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.ops import accounts
from app.ops.ratelimit import RateLimits
from app.pnp import service
from app.storage.models import AuditEntry, OperatorSession
from simulator import SimulatedDevice

PASSWORD = "first-admin-pw"


def hello(client, serial: str) -> None:
    xml = SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml("CiscoPnP-1.0-T1-2")
    assert client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml").status_code == 200


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def log_in(client, user: str, password: str, address: str = "127.0.0.1"):
    env = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=env).get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "user": user, "password": password},
                       environ_base=env)


@pytest.fixture
def app(make_app):
    application = make_app(admin_password=PASSWORD)
    sessions = application.extensions["pnp_sessions"]
    accounts.add_user(sessions, "olga", "operator", "olga-password")
    accounts.add_user(sessions, "oscar", "operator", "oscar-password")
    accounts.add_user(sessions, "vera", "viewer", "vera-password")
    return application


def sessions_of(app):
    return app.extensions["pnp_sessions"]


def audit_rows(app, action=None):
    with sessions_of(app)() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return session.scalars(query).all()


def test_passwords_are_argon2_hashes_never_plain(app):
    with sessions_of(app)() as session:
        from app.storage.models import OperatorUser
        users = {u.name: u for u in session.scalars(select(OperatorUser))}
    assert users["olga"].password_hash.startswith("$argon2id$")
    assert "olga-password" not in users["olga"].password_hash
    with pytest.raises(accounts.ActionError, match="at least 8"):
        accounts.add_user(sessions_of(app), "short", "viewer", "1234567")
    with pytest.raises(accounts.ActionError, match="unknown role"):
        accounts.add_user(sessions_of(app), "x", "root", "long-enough")
    with pytest.raises(accounts.ActionError, match="exists already"):
        accounts.add_user(sessions_of(app), "olga", "viewer", "long-enough")


def test_first_admin_comes_from_the_environment(app):
    client = app.test_client()
    assert log_in(client, "admin", PASSWORD).status_code == 302
    page = client.get("/users").get_data(as_text=True)
    assert 'data-user="admin"' in page and 'data-user="vera"' in page


def test_logout_ends_the_session_even_for_a_copied_cookie(app):
    client = app.test_client()
    hello(client, "FGL0000S001")
    assert log_in(client, "olga", "olga-password").status_code == 302
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/dashboard").status_code == 200  # the copy works while logged in
    token = csrf_from(client.get("/dashboard").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert thief.get("/dashboard").status_code == 302
    assert thief.get("/api/v1/devices").status_code == 401
    assert thief.post("/devices/FGL0000S001/reset", data={"csrf_token": token}).status_code in (302, 400)
    with sessions_of(app)() as session:
        assert session.scalars(select(OperatorSession)).all() == []
    assert [r.action for r in audit_rows(app)][-2:] == ["login", "logout"]


def test_password_change_and_user_removal_end_sessions_at_once(app):
    a, b = app.test_client(), app.test_client()
    log_in(a, "oscar", "oscar-password")
    log_in(b, "oscar", "oscar-password")
    assert a.get("/dashboard").status_code == b.get("/dashboard").status_code == 200
    page = a.get("/account").get_data(as_text=True)
    a.post("/account", data={"csrf_token": csrf_from(page), "what": "password", "current": "oscar-password",
                             "new": "oscar-new-password", "again": "oscar-new-password"})
    assert a.get("/dashboard").status_code == 200, "the session that changed it stays"
    assert b.get("/dashboard").status_code == 302, "every other session ends"
    assert log_in(b, "oscar", "oscar-password").status_code == 401
    assert log_in(b, "oscar", "oscar-new-password").status_code == 302

    accounts.remove_user(sessions_of(app), "oscar")
    assert a.get("/dashboard").status_code == 302 and b.get("/dashboard").status_code == 302


def test_idle_and_absolute_timeouts(make_app):
    app = make_app(admin_password=PASSWORD, session_idle_timeout=600, session_max_age=3600)
    client = app.test_client()
    log_in(client, "admin", PASSWORD)
    assert client.get("/dashboard").status_code == 200
    with sessions_of(app).begin() as session:
        row = session.scalars(select(OperatorSession)).one()
        session.execute(update(OperatorSession).values(last_seen=row.last_seen - timedelta(seconds=601)))
    assert client.get("/dashboard").status_code == 302, "idle for longer than SESSION_IDLE_TIMEOUT"
    log_in(client, "admin", PASSWORD)
    with sessions_of(app).begin() as session:
        row = session.scalars(select(OperatorSession)).one()
        session.execute(update(OperatorSession).values(created_at=row.created_at - timedelta(seconds=3601)))
    assert client.get("/dashboard").status_code == 302, "older than SESSION_MAX_AGE"


def test_viewer_reads_but_cannot_act(app):
    client = app.test_client()
    hello(client, "FGL0000V001")
    log_in(client, "vera", "vera-password")
    page = client.get("/devices/FGL0000V001").get_data(as_text=True)
    assert "can read, not act" in page and 'name="retry"' not in page
    token = csrf_from(page)
    assert client.post("/devices/FGL0000V001/reset", data={"csrf_token": token}).status_code == 403
    assert client.post("/dashboard/bulk", data={"csrf_token": token, "action": "retry",
                                                "serial": ["FGL0000V001"]}).status_code == 403
    assert client.get("/users").status_code == 403 and client.get("/audit").status_code == 403
    assert client.post("/api/v1/devices/FGL0000V001/retry", headers={"X-CSRFToken": token}).status_code == 403
    assert client.get("/api/v1/devices").status_code == 200


def test_two_operators_act_under_their_own_names(app):
    olga, oscar = app.test_client(), app.test_client()
    hello(olga, "FGL0000T001")
    log_in(olga, "olga", "olga-password", "192.0.2.10")
    log_in(oscar, "oscar", "oscar-password", "192.0.2.11")
    for client, address in ((olga, "192.0.2.10"), (oscar, "192.0.2.11")):
        token = csrf_from(client.get("/devices/FGL0000T001").get_data(as_text=True))
        assert client.post("/devices/FGL0000T001/reset", data={"csrf_token": token},
                           environ_base={"REMOTE_ADDR": address}).status_code == 302
    resets = audit_rows(app, "reset")
    assert [(r.actor, r.target, r.address, r.via) for r in resets] == [
        ("olga", "FGL0000T001", "192.0.2.10", "session"), ("oscar", "FGL0000T001", "192.0.2.11", "session")]
    detail = olga.get("/api/v1/devices/FGL0000T001").get_json()
    assert "reset by oscar" in detail["events"][0]["message"]


def test_personal_token_shown_once_hashed_revocable_with_last_use(app):
    client = app.test_client()
    hello(client, "FGL0000K001")
    log_in(client, "olga", "olga-password")
    page = client.get("/account").get_data(as_text=True)
    created = client.post("/account", data={"csrf_token": csrf_from(page), "what": "token", "name": "ansible"})
    secret = re.search(r"<code>(pnp_[A-Za-z0-9_-]+)</code>", created.get_data(as_text=True)).group(1)
    assert secret not in client.get("/account").get_data(as_text=True), "shown once"
    anonymous = app.test_client()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert anonymous.post("/api/v1/devices/FGL0000K001/retry", headers=bearer).status_code == 200
    assert audit_rows(app, "retry")[-1].actor == "olga" and audit_rows(app, "retry")[-1].via == "token"
    tokens = accounts.list_tokens(sessions_of(app), "olga")
    assert tokens[0]["last_used_at"] is not None
    with sessions_of(app)() as session:
        from app.storage.models import ApiToken
        assert secret not in [t.token_hash for t in session.scalars(select(ApiToken))]
    page = client.get("/account").get_data(as_text=True)
    client.post("/account", data={"csrf_token": csrf_from(page), "what": "revoke", "token_id": tokens[0]["id"]})
    assert anonymous.get("/api/v1/devices", headers=bearer).status_code == 401


def test_token_rate_limit(make_app):
    app = make_app(admin_password=PASSWORD, api_rate_limit="3 per day")
    accounts.ensure_env_admin(sessions_of(app), app.config["PNP"])
    secret, _ = accounts.create_token(sessions_of(app), "admin", "x")
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert [client.get("/api/v1/devices", headers=bearer).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_failed_logins_counted_per_user_and_address_right_password_elsewhere_ok(make_app):
    app = make_app(admin_password=PASSWORD, login_rate_limit="3 per day",
                   login_address_rate_limit="5 per day", login_user_rate_limit="100 per day")
    accounts.add_user(sessions_of(app), "olga", "operator", "olga-password")
    accounts.add_user(sessions_of(app), "oscar", "operator", "oscar-password")
    nat = "198.51.100.1"
    attacker, colleague = app.test_client(), app.test_client()
    assert [log_in(attacker, "olga", "guess", nat).status_code for _ in range(3)] == [401] * 3
    assert log_in(attacker, "olga", "olga-password", nat).status_code == 429, "this pair waits"
    # oscar behind the same NAT still logs in: only the (olga, NAT) pair is blocked.
    assert log_in(colleague, "oscar", "oscar-password", nat).status_code == 302
    assert log_in(app.test_client(), "olga", "olga-password", "192.0.2.50").status_code == 302
    assert [log_in(attacker, "oscar", "guess", nat).status_code for _ in range(2)] == [401, 401]
    assert log_in(app.test_client(), "admin", PASSWORD, nat).status_code == 429, "the address is used up"
    failures = [r for r in audit_rows(app, "login") if not r.success]
    assert len(failures) >= 6 and {r.address for r in failures} == {nat}


def test_limits_are_shared_between_workers_through_the_database(make_app):
    first = make_app(admin_password=PASSWORD, login_rate_limit="4 per day")
    second = make_app(admin_password=PASSWORD, login_rate_limit="4 per day")  # same database file
    statuses = [log_in(app.test_client(), "admin", "guess").status_code for app in (first, second) * 2]
    assert statuses == [401] * 4
    assert log_in(first.test_client(), "admin", PASSWORD).status_code == 429
    assert log_in(second.test_client(), "admin", PASSWORD).status_code == 429


def test_database_counter_on_mariadb_counts_across_connections(mariadb_fresh):
    from app.storage.db import make_engine, make_sessionmaker

    engines = [make_engine(mariadb_fresh) for _ in range(2)]
    limits = [RateLimits(make_sessionmaker(e)) for e in engines]
    key = f"test-{id(limits)}"
    assert [limits[i % 2].hit(key, "5 per day") for i in range(6)] == [True] * 5 + [False]
    assert limits[0].exceeded(key, "5 per day") and limits[1].exceeded(key, "5 per day")
    limits[1].clear(key, "5 per day")
    assert not limits[0].exceeded(key, "5 per day")
    for engine in engines:
        engine.dispose()


def test_audit_page_and_api_and_deleted_device_keeps_its_audit_and_export(app):
    client = app.test_client()
    hello(client, "FGL0000D001")
    service.set_state(sessions_of(app), "FGL0000D001", "ERROR")
    log_in(client, "admin", PASSWORD)
    history = client.get("/devices/FGL0000D001/history.csv")
    assert history.status_code == 200 and history.mimetype == "text/csv"
    lines = history.get_data(as_text=True).splitlines()
    assert lines[0].startswith("id,at,kind") and any("first contact" in line for line in lines)
    token = csrf_from(client.get("/devices/FGL0000D001").get_data(as_text=True))
    assert client.post("/devices/FGL0000D001/delete", data={"csrf_token": token}).status_code == 302
    assert client.get("/devices/FGL0000D001").status_code == 404
    page = client.get("/audit?target=FGL0000D001").get_data(as_text=True)
    assert 'data-action="delete"' in page and "history events deleted" in page
    api = client.get("/api/v1/audit?action=login").get_json()
    assert api["total"] >= 1 and api["items"][0]["actor"] == "admin"
    csv_text = client.get("/audit?format=csv").get_data(as_text=True)
    assert csv_text.startswith("at,actor,via,action") and "delete" in csv_text
    viewer = app.test_client()
    log_in(viewer, "vera", "vera-password")
    assert viewer.get("/api/v1/audit").status_code == 403


def test_pnp_messages_open_no_console_session_and_the_console_keeps_its_own(app):
    client = app.test_client()
    assert log_in(client, "olga", "olga-password").status_code == 302
    cookie = client.get_cookie("session").value
    # a PnP message carrying the console's cookie: answered, the cookie neither read nor rewritten
    xml = SimulatedDevice("http://127.0.0.1:9", "FGL0000S009").work_request_xml("CiscoPnP-1.0-T1-2")
    answer = client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")
    assert answer.status_code == 200 and b"<request" in answer.data
    assert "Set-Cookie" not in answer.headers
    assert client.get_cookie("session").value == cookie
    assert client.get("/dashboard").status_code == 200  # still logged in
    assert "FGL0000S009" in client.get("/dashboard").get_data(as_text=True)
    from flask import session

    with app.test_request_context("/pnp/WORK-REQUEST", method="POST", headers={"Cookie": f"session={cookie}"}):
        app.preprocess_request()
        assert not session  # not read from the cookie
    with app.test_request_context("/dashboard", headers={"Cookie": f"session={cookie}"}):
        assert session  # the console's own pages read it
