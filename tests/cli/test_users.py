"""``run.py users …``: add, list, role, passwd, token, remove, through click's runner on SQLite."""

from __future__ import annotations

from sqlalchemy import select

from app.ops import accounts
from app.storage.models import AuditEntry


def test_users_add_list_role_passwd_token_remove(runner, app):
    sessions = app.extensions["pnp_sessions"]
    result = runner.invoke(args=["users", "add", "nina", "--role", "viewer", "--password", "nina-password"])
    assert result.exit_code == 0, result.output
    assert "nina added (viewer)" in result.output
    assert runner.invoke(args=["users", "add", "nina", "--password", "nina-password"]).exit_code == 1
    assert "at least 8" in runner.invoke(args=["users", "add", "x", "--password", "short"]).output

    listing = runner.invoke(args=["users", "list"]).output
    assert "nina" in listing and "viewer" in listing

    assert runner.invoke(args=["users", "role", "nina", "admin"]).exit_code == 0
    assert accounts.authenticate(sessions, app.config["PNP"], "nina", "nina-password").role == "admin"

    principal = accounts.authenticate(sessions, app.config["PNP"], "nina", "nina-password")
    sid = accounts.open_session(sessions, principal, "127.0.0.1", "test")
    result = runner.invoke(args=["users", "passwd", "nina"], input="nina-new-password\nnina-new-password\n")
    assert result.exit_code == 0, result.output
    assert accounts.load_session(sessions, app.config["PNP"], sid) is None, "passwd ends the sessions"
    assert accounts.authenticate(sessions, app.config["PNP"], "nina", "nina-new-password")

    secret = runner.invoke(args=["users", "token", "nina", "deploy"]).output.strip()
    assert secret.startswith("pnp_") and accounts.load_token(sessions, secret).name == "nina"

    assert "last admin" in runner.invoke(args=["users", "remove", "nina", "--yes"]).output
    runner.invoke(args=["users", "add", "boss", "--role", "admin", "--password", "boss-password"])
    assert runner.invoke(args=["users", "remove", "nina", "--yes"]).exit_code == 0
    assert accounts.load_token(sessions, secret) is None
    assert runner.invoke(args=["users", "remove", "nina", "--yes"]).exit_code == 1
    with sessions() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        actors = {a.actor for a in session.scalars(select(AuditEntry))}
    assert actions == ["user-add", "user-role", "user-passwd", "token-create", "user-add",
                       "user-remove"]
    assert all(a.startswith("cli:") for a in actors)


def test_last_admin_cannot_be_removed_or_demoted(runner, app):
    runner.invoke(args=["users", "add", "boss", "--role", "admin", "--password", "boss-password"])
    result = runner.invoke(args=["users", "remove", "boss", "--yes"])
    assert result.exit_code == 1 and "last admin" in result.output
    assert "last admin" in runner.invoke(args=["users", "role", "boss", "viewer"]).output


def test_device_actions_from_the_cli_are_audited(runner, app, client):
    from simulator import SimulatedDevice

    xml = SimulatedDevice("http://127.0.0.1:9", "FGL0000U001").work_request_xml("CiscoPnP-1.0-T1-2")
    client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")
    assert runner.invoke(args=["devices", "reset", "FGL0000U001"]).exit_code == 0
    assert runner.invoke(args=["devices", "retry", "NOPE"]).exit_code == 1
    with app.extensions["pnp_sessions"]() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(r.action, r.target, r.success) for r in rows] == [("reset", "FGL0000U001", True),
                                                                ("retry", "NOPE", False)]
