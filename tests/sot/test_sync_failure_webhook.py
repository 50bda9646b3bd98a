"""A source-of-truth sync that cannot read the source posts a signed ``sync_failure`` webhook:
a Nautobot that is not there (a closed loopback port), and the real Nautobot with a wrong
token, synced by ``run.py inventory sync`` while the real server's dispatcher delivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from app.ops import notify
from app.sot.sources import SourceError, make_source
from app.sot.sync import sync, sync_device
from tests.helpers import ROOT, WebhookReceiver, free_port

ADMIN = "sync-failure-admin-token"


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def _verified(hook: dict, got: dict) -> dict:
    headers = got["headers"]
    assert notify.verify(hook["secret"], headers["X-PNP-Timestamp"], got["body"], headers["X-PNP-Signature"])
    assert headers["X-PNP-Event"] == "sync_failure"
    return json.loads(got["body"])


def test_unreachable_source_posts_one_sync_failure(make_app, receiver, caplog):
    app = make_app(inventory_source="nautobot", sot_url=f"http://127.0.0.1:{free_port()}", sot_token="x" * 40,
                   sot_timeout=2)
    sessions, config = app.extensions["pnp_sessions"], app.config["PNP"]
    hook = notify.add_webhook(sessions, "noc", receiver.url, ["sync_failure"])
    with pytest.raises(SourceError):
        sync(sessions, config, make_source(config))
    with pytest.raises(SourceError):
        sync_device(sessions, config, make_source(config), "42")  # the same outage: no second alert
    assert notify.deliver_due(sessions, config) == 1
    (got,) = receiver.received
    event = _verified(hook, got)
    assert event["event"] == "sync_failure" and event["device"]["source"] == "nautobot"
    assert event["device"]["scope"] == "all devices" and event["title"] == "Source-of-truth sync failed"
    assert "127.0.0.1" in event["device"]["error"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "pnp.sot"]
    assert len(warnings) == 2 and warnings[0].startswith("sync of all devices from Nautobot failed")


@pytest.mark.sot
def test_wrong_token_on_the_real_nautobot_posts_sync_failure(nautobot, start_server, lab, receiver):
    settings = {"INVENTORY_SOURCE": "nautobot", "SOT_URL": nautobot.url, "SOT_TOKEN": "0" * 40,  # wrong
                "ADMIN_TOKEN": ADMIN, "WEBHOOK_POLL": 1}
    server = start_server(**settings)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    made = requests.post(server.url + "/api/v1/webhooks", headers=auth, timeout=30,
                         json={"name": "noc", "url": receiver.url, "events": ["sync_failure"]})
    assert made.status_code == 201, made.text
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNP_")}
    env.update(PNP_ROOT=str(lab))
    cli = subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(server.settings),
                          "inventory", "sync"], cwd=lab, env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode != 0 and "nothing changed" in cli.stderr + cli.stdout
    deadline = time.monotonic() + 30
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.3)
    assert receiver.received, f"no sync_failure delivered\n{server.output()[-3000:]}"
    event = _verified(made.json(), receiver.received[0])
    assert event["device"]["source"] == "nautobot" and "403" in event["device"]["error"]
    log = (lab / "logs" / "pnp_debug.log").read_text()
    assert "pnp.sot: sync of all devices from Nautobot failed" in log
