"""/api/v1 users (admin), personal tokens (your own) and webhooks (admin): the same audited
actions as the console and ``run.py users``, through the Flask test client on a real SQLite
file; the secrets appear once and never a password."""

from __future__ import annotations

from app.ops import accounts
from app.pnp import service
from simulator import SimulatedDevice


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def _team(make_app):
    app = make_app(admin_password="admin-pass-1", admin_user="root")
    sessions = app.extensions["pnp_sessions"]
    accounts.ensure_env_admin(sessions, app.config["PNP"])
    admin, _ = accounts.create_token(sessions, "root", "automation")
    return app, app.test_client(), _bearer(admin)


def _audit(client, admin, **query):
    return client.get("/api/v1/audit", query_string=query, headers=admin).get_json()["items"]


def test_admin_manages_users_passwords_never_returned(make_app):
    app, client, admin = _team(make_app)
    made = client.post("/api/v1/users", json={"name": "ana", "role": "operator", "password": "ana-pass-1"},
                       headers=admin)
    assert made.status_code == 201 and made.get_json()["role"] == "operator"
    assert "ana-pass-1" not in made.get_data(as_text=True) and "argon2" not in made.get_data(as_text=True)
    assert "password" not in made.get_json()
    listed = client.get("/api/v1/users", headers=admin).get_json()
    assert {u["name"]: u["role"] for u in listed} == {"root": "admin", "ana": "operator"}
    assert not any("hash" in key or key == "password" for u in listed for key in u)
    again = client.post("/api/v1/users", json={"name": "ana", "role": "viewer", "password": "xxxxxxxx"},
                        headers=admin)
    assert again.status_code == 409 and "exists" in again.get_json()["error"]
    short = client.post("/api/v1/users", json={"name": "bo", "role": "viewer", "password": "short"},
                        headers=admin)
    assert short.status_code == 400 and "password" in short.get_json()["fields"]

    changed = client.patch("/api/v1/users/ana", json={"role": "viewer", "password": "new-pass-2"}, headers=admin)
    assert changed.status_code == 200 and changed.get_json()["role"] == "viewer"
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    assert accounts.authenticate(sessions, config, "ana", "new-pass-2") is not None
    assert client.patch("/api/v1/users/nobody", json={"role": "viewer"}, headers=admin).status_code == 404
    last = client.patch("/api/v1/users/root", json={"role": "viewer"}, headers=admin)
    assert last.status_code == 409 and "last admin" in last.get_json()["error"]
    assert client.post("/api/v1/users/ana/logout", headers=admin).get_json() == {"ended": 0}

    viewer, _ = accounts.create_token(sessions, "ana", "watching")
    assert client.get("/api/v1/users", headers=_bearer(viewer)).status_code == 403
    assert client.delete("/api/v1/users/root", headers=_bearer(viewer)).status_code == 403
    assert client.delete("/api/v1/users/ana", headers=admin).status_code == 204
    assert client.get("/api/v1/users/ana", headers=admin).status_code == 404
    assert client.get("/api/v1/devices", headers=_bearer(viewer)).status_code == 401, "removed: token ends"

    actions = [(e["action"], e["target"], e["actor"], e["via"]) for e in reversed(_audit(client, admin))]
    assert [a for a in actions if a[0].startswith("user-")] == [
        ("user-add", "ana", "root", "token"), ("user-role", "ana", "root", "token"),
        ("user-passwd", "ana", "root", "token"), ("user-logout", "ana", "root", "token"),
        ("user-remove", "ana", "root", "token")]


def test_a_user_manages_their_own_tokens_shown_once(make_app):
    app, client, admin = _team(make_app)
    sessions = app.extensions["pnp_sessions"]
    accounts.add_user(sessions, "vic", "viewer", "vic-pass-1")
    vic, _ = accounts.create_token(sessions, "vic", "first")
    made = client.post("/api/v1/tokens", json={"name": "grafana"}, headers=_bearer(vic))
    assert made.status_code == 201
    secret = made.get_json()["token"]
    assert secret.startswith("pnp_") and made.get_json()["name"] == "grafana"
    listed = client.get("/api/v1/tokens", headers=_bearer(secret)).get_json()
    assert [t["name"] for t in listed] == ["grafana", "first"]
    assert secret not in client.get("/api/v1/tokens", headers=_bearer(vic)).get_data(as_text=True)
    assert listed[0]["last_used_at"] is not None, "the new token was just used"
    # another user's token is not yours to revoke
    root_tokens = client.get("/api/v1/tokens", headers=admin).get_json()
    assert client.delete(f"/api/v1/tokens/{root_tokens[0]['id']}", headers=_bearer(vic)).status_code == 404
    assert client.delete(f"/api/v1/tokens/{listed[0]['id']}", headers=_bearer(vic)).status_code == 204
    assert client.get("/api/v1/tokens", headers=_bearer(secret)).status_code == 401, "revoked at once"
    assert client.post("/api/v1/tokens", json={"name": ""}, headers=_bearer(vic)).status_code == 400
    entries = _audit(client, admin, actor="vic")
    assert [e["action"] for e in entries] == ["token-revoke", "token-create"]


def test_admin_manages_webhooks_secret_only_at_creation(make_app):
    app, client, admin = _team(make_app)
    made = client.post("/api/v1/webhooks", json={"name": "noc", "url": "http://127.0.0.1:9/hook",
                                                 "events": ["device_error", "sync_failure"], "preset": "slack"},
                       headers=admin)
    assert made.status_code == 201
    hook = made.get_json()
    assert len(hook["secret"]) == 64 and hook["events"] == ["device_error", "sync_failure"]
    listed = client.get("/api/v1/webhooks", headers=admin).get_json()
    assert [h["name"] for h in listed] == ["noc"] and "secret" not in listed[0]
    assert "secret" not in client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin).get_json()
    bad = client.post("/api/v1/webhooks", json={"url": "ftp://x", "events": ["device_error"]}, headers=admin)
    assert bad.status_code == 400 and "http" in bad.get_json()["error"]
    unknown = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["reboot"]},
                          headers=admin)
    assert unknown.status_code == 400 and "events" in unknown.get_json()["fields"]
    assert client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=admin).status_code == 202
    # a failed device queues a device_error delivery (the dispatcher is what sends it)
    xml = SimulatedDevice("http://127.0.0.1:9", "FGL0W00001").work_request_xml("CiscoPnP-1.0-T1-2")
    client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml")
    service.set_state(app.extensions["pnp_sessions"], "FGL0W00001", "ERROR")
    deliveries = client.get("/api/v1/webhooks/deliveries", headers=admin).get_json()
    assert [(d["webhook"], d["event"]) for d in deliveries] == [("noc", "device_error"), ("noc", "test")]
    sessions = app.extensions["pnp_sessions"]
    accounts.add_user(sessions, "op", "operator", "op-pass-12")
    operator, _ = accounts.create_token(sessions, "op", "x")
    assert client.get("/api/v1/webhooks", headers=_bearer(operator)).status_code == 403
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin).status_code == 404
    assert [e["action"] for e in _audit(client, admin) if e["action"].startswith("webhook-")] == [
        "webhook-remove", "webhook-test", "webhook-add"]


def test_openapi_document_has_the_team_operations(make_app):
    _app, client, _admin = _team(make_app)
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/users"]) == {"get", "post"} and set(paths["/users/{name}"]) == {"get", "patch", "delete"}
    assert set(paths["/tokens/{token_id}"]) == {"delete"}
    assert paths["/tokens/{token_id}"]["delete"]["parameters"][0]["schema"]["type"] == "integer"
    assert "201" in paths["/webhooks"]["post"]["responses"]
    body = paths["/users"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "UserBody" in body["$ref"]
