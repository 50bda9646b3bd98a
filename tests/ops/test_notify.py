"""Webhooks: queued with the device change, signed, retried with backoff, Slack/Teams presets,
stalled once per silence — delivered over real HTTP to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from app.ops import notify
from app.pnp import service
from app.storage.db import utcnow
from app.storage.models import DeviceState, WebhookDelivery
from simulator import SimulatedDevice
from tests.helpers import WebhookReceiver as Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def app(make_app):
    return make_app(admin_password="hook-admin-pw", webhook_backoff=[60], webhook_max_attempts=3)


def hello(client, serial):
    xml = SimulatedDevice("http://127.0.0.1:9", serial).work_request_xml("CiscoPnP-1.0-T1-2")
    assert client.post("/pnp/WORK-REQUEST", data=xml, content_type="text/xml").status_code == 200


def deliveries(app):
    with app.extensions["pnp_sessions"]() as session:
        return session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()


def test_a_failed_device_posts_a_signed_webhook(app, receiver):
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    hook = notify.add_webhook(sessions, "noc", receiver.url, ["device_error", "device_finished"])
    client = app.test_client()
    hello(client, "FGL0W0001")
    assert deliveries(app) == [], "a first contact is no event"
    service.set_state(sessions, "FGL0W0001", "ERROR", changes={"last_error_message": "image copy failed"})
    assert [d.event for d in deliveries(app)] == ["device_error"]
    assert notify.deliver_due(sessions, config) == 1
    (got,) = receiver.received
    headers = got["headers"]
    assert headers["X-PNP-Event"] == "device_error"
    assert notify.verify(hook["secret"], headers["X-PNP-Timestamp"], got["body"], headers["X-PNP-Signature"])
    assert not notify.verify("wrong-secret", headers["X-PNP-Timestamp"], got["body"], headers["X-PNP-Signature"])
    event = json.loads(got["body"])
    assert event["event"] == "device_error" and event["serial"] == "FGL0W0001"
    assert event["device"]["state"] == "ERROR" and "image copy failed" in event["text"]
    assert deliveries(app)[0].status == "delivered"
    service.set_state(sessions, "FGL0W0001", "FINISHED")
    notify.deliver_due(sessions, config)
    assert json.loads(receiver.received[1]["body"])["event"] == "device_finished"


def test_failed_delivery_is_retried_with_backoff_then_given_up(app, receiver):
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    notify.add_webhook(sessions, "noc", receiver.url, ["sync_failure"])
    assert notify.enqueue(sessions, "sync_failure", data={"reason": "NetBox answered 502"}) == 1
    receiver.answers = [500, 503, 500]
    assert notify.deliver_due(sessions, config) == 1
    (row,) = deliveries(app)
    assert row.status == "pending" and row.attempts == 1 and row.last_status == 500
    assert row.next_attempt_at > utcnow() + timedelta(seconds=50), "WEBHOOK_BACKOFF"
    assert notify.deliver_due(sessions, config) == 0, "not due yet"
    for expected in ("pending", "failed"):
        with sessions.begin() as session:
            session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        notify.deliver_due(sessions, config)
        assert deliveries(app)[0].status == expected
    assert len(receiver.received) == 3 and deliveries(app)[0].attempts == 3


def test_unreachable_receiver_is_recorded_not_raised(app):
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    notify.add_webhook(sessions, "gone", "http://127.0.0.1:9/hook", ["sync_failure"])
    notify.enqueue(sessions, "sync_failure")
    notify.deliver_due(sessions, config)
    row = deliveries(app)[0]
    assert row.status == "pending" and row.last_status is None and "ConnectionError" in row.last_error


def test_slack_and_teams_presets(app, receiver):
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    notify.add_webhook(sessions, "slack", receiver.url, ["sync_failure"], preset="slack")
    notify.add_webhook(sessions, "teams", receiver.url, ["sync_failure"], preset="teams")
    notify.enqueue(sessions, "sync_failure", data={"reason": "Nautobot timeout"})
    assert notify.deliver_due(sessions, config) == 2
    bodies = [json.loads(r["body"]) for r in receiver.received]
    slack = next(b for b in bodies if "@type" not in b)
    teams = next(b for b in bodies if "@type" in b)
    assert set(slack) == {"text"} and "Nautobot timeout" in slack["text"]
    assert teams["@type"] == "MessageCard" and teams["summary"] and "Nautobot timeout" in teams["text"]


def test_stalled_once_per_silence_and_one_claim_per_delivery(app, receiver):
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    notify.add_webhook(sessions, "noc", receiver.url, ["device_stalled"])
    old = utcnow() - timedelta(seconds=config.stalled_after + 60)
    with sessions.begin() as session:
        session.execute(insert(DeviceState), [{"serial_number": "FGL0W0002", "pid": "C1131", "vid": "", "udi": "",
                                               "first_seen": old, "last_contact": old, "state": "CHECK_IMAGE"}])
    assert notify.queue_stalled(sessions, config) == 1
    assert notify.queue_stalled(sessions, config) == 0, "once per silence"
    row = deliveries(app)[0]
    now = utcnow()
    assert notify._claim(sessions, row.id, now, 60) is True
    assert notify._claim(sessions, row.id, now, 60) is False, "a second worker does not get it"


def test_webhooks_page_is_admin_only_and_shows_the_log(app, receiver):
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    client.post("/login", data={"csrf_token": token, "user": "admin", "password": "hook-admin-pw"})
    response = client.post("/webhooks", data={"csrf_token": token, "what": "add", "name": "noc",
                                              "url": receiver.url, "events": ["device_error"], "preset": "json"})
    assert response.status_code == 302
    assert "must be http" in client.post("/webhooks", data={
        "csrf_token": token, "what": "add", "url": "ftp://x", "events": ["device_error"]},
        follow_redirects=True).get_data(as_text=True)
    hook_id = notify.list_webhooks(app.extensions["pnp_sessions"])[0]["id"]
    client.post("/webhooks", data={"csrf_token": token, "what": "test", "id": hook_id})
    notify.deliver_due(app.extensions["pnp_sessions"], app.config["PNP"])
    page = client.get("/webhooks").get_data(as_text=True)
    assert 'data-status="delivered"' in page and receiver.url in page
