"""A team in headless Chromium (Debian's, through Playwright) against the real gunicorn server
at 1,366 px: accounts made with ``run.py users add``, logout that ends the session at once,
a viewer who cannot act, errors first, a bulk retry of twelve failed devices, and a signed
webhook from a device that fails, delivered to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
import requests

from app.ops import notify
from simulator import SimulatedDevice
from tests.console.test_browser import ARTIFACTS, WAIT_MS, browser  # noqa: F401 - browser: the fixture
from tests.helpers import ROOT, WebhookReceiver

PASSWORD = "team-admin-password"
pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def run_cli(server, *args: str) -> str:
    """``python3 run.py --settings … <args>`` against the server's own settings and database."""
    env = {"PNP_ROOT": str(server.lab), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--settings", str(server.settings), *args],
                          cwd=server.lab, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def new_page(browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(WAIT_MS)
    return context, context.new_page()


def log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/dashboard")


def hello(server, serial: str) -> None:
    xml = SimulatedDevice(server.url, serial).work_request_xml("CiscoPnP-1.0-T1-2")
    requests.post(server.url + "/pnp/WORK-REQUEST", data=xml, headers={"Content-Type": "text/xml"},
                  timeout=30).raise_for_status()


def fail_by_hand(server, serials, step="APPLY_DAY0_CONFIG") -> None:
    """What an operator's SQL would do: park devices in ERROR at ``step``."""
    with sqlite3.connect(server.lab / "pnp.sqlite3", timeout=60) as db:
        db.executemany("UPDATE device_state SET state='ERROR', failed_state=?, "
                       "last_error_message='cli-config rejected: % Invalid input' WHERE serial_number=?",
                       [(step, s) for s in serials])


def test_logout_ends_the_session_and_a_viewer_cannot_act(start_server, browser):  # noqa: F811
    server = start_server(ADMIN_PASSWORD=PASSWORD)
    run_cli(server, "users", "add", "vera", "--role", "viewer", "--password", "vera-password")
    run_cli(server, "users", "add", "olga", "--role", "operator", "--password", "olga-password")
    hello(server, "FGL0T0001")

    ctx_a, olga = new_page(browser)
    log_in(olga, server.url, "olga", "olga-password")
    assert "olga" in olga.locator("#whoami").inner_text()
    ctx_b, thief = new_page(browser)
    ctx_b.add_cookies(ctx_a.cookies())  # the session cookie, copied before logout
    thief.goto(server.url + "/dashboard")
    assert thief.url == server.url + "/dashboard" and thief.locator("#device-FGL0T0001").count() == 1
    olga.click("header button[type=submit]")  # log out
    olga.wait_for_url(server.url + "/login")
    thief.goto(server.url + "/dashboard")
    assert "/login" in thief.url, "the copied cookie must be dead after logout"
    assert thief.request.get(server.url + "/api/v1/devices").status == 401

    ctx_c, vera = new_page(browser)
    log_in(vera, server.url, "vera", "vera-password")
    assert vera.locator("#bulk").count() == 0 and vera.locator("input.pick").count() == 0
    vera.click("#device-FGL0T0001 a")
    vera.wait_for_url(server.url + "/devices/FGL0T0001")
    assert vera.locator("#no-actions").is_visible() and vera.locator("button[name=retry]").count() == 0
    answer = vera.request.post(server.url + "/api/v1/devices/FGL0T0001/reset")
    assert answer.status == 403 and "viewer" in answer.json()["error"]
    ARTIFACTS.mkdir(exist_ok=True)
    vera.screenshot(path=str(ARTIFACTS / "viewer-device.png"), full_page=True)
    audit = run_cli(server, "users", "list")
    assert "vera" in audit and "viewer" in audit
    for ctx in (ctx_a, ctx_b, ctx_c):
        ctx.close()


def test_errors_first_and_bulk_retry_of_twelve_failed_devices(start_server, browser):  # noqa: F811
    server = start_server(ADMIN_PASSWORD=PASSWORD)
    healthy = [f"FGL0H{i:04d}" for i in range(20)]
    failed = [f"FGL0Z{i:04d}" for i in range(12)]
    for serial in healthy + failed:
        hello(server, serial)
    fail_by_hand(server, failed)

    context, page = new_page(browser)
    log_in(page, server.url, "admin", PASSWORD)
    rows = page.locator("#device-table tbody tr")
    first = [rows.nth(i).get_attribute("data-serial") for i in range(12)]
    assert sorted(first) == failed, "errors first by default"
    assert "failed at step 7 of 13" in rows.first.inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"the table must fit 1,366 px (is {width})"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-errors-first-1366.png"), full_page=True)

    page.select_option("select[name=lifecycle]", "Error")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**lifecycle=Error**")
    page.check("#pick-all")
    assert page.locator("#bulk-count").inner_text() == "12"
    page.evaluate("window.__swaps = 0; document.body.addEventListener('htmx:afterSwap', () => window.__swaps++)")
    page.wait_for_function("window.__swaps >= 1")  # a 5 s refresh replaced the table...
    assert page.locator("input.pick:checked").count() == 12, "...and the selection survived it"
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#bulk button[value=retry]")
    page.wait_for_selector("text=retry: 12 device(s) done")
    assert dialogs == ["Retry 12 device(s)?"]
    with sqlite3.connect(server.lab / "pnp.sqlite3") as db:
        states = dict(db.execute("SELECT serial_number, state FROM device_state").fetchall())
        audited = db.execute("SELECT COUNT(*) FROM audit_log WHERE action='retry' AND actor='admin' "
                             "AND success=1").fetchone()[0]
    assert all(states[s] == "APPLY_DAY0_CONFIG" for s in failed) and audited == 12
    page.screenshot(path=str(ARTIFACTS / "dashboard-bulk-retry.png"), full_page=True)
    context.close()


def test_a_failing_device_posts_a_signed_webhook(start_server, browser):  # noqa: F811
    receiver = WebhookReceiver()
    server = start_server(ADMIN_PASSWORD=PASSWORD, WEBHOOK_POLL=1)
    device = SimulatedDevice(server.url, "FGL0K0001", reload_seconds=0.3,
                             bootflash_size=2_300_000_000, bootflash_used=1_300_000_000)
    context, page = new_page(browser)
    try:
        log_in(page, server.url, "admin", PASSWORD)
        page.goto(server.url + "/webhooks")
        page.fill("#add-webhook input[name=name]", "noc")
        page.fill("#add-webhook input[name=url]", receiver.url)
        page.click("#add-webhook button[type=submit]")
        page.wait_for_selector("text=webhook noc added")
        secret = page.locator("code.secret").first.inner_text()

        assert device.run(timeout=120, until=lambda d: d.parked), device.log[-5:]
        deadline = time.monotonic() + 60
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.received, "no webhook arrived"
        got = receiver.received[0]
        headers = got["headers"]
        assert notify.verify(secret, headers["X-PNP-Timestamp"], got["body"], headers["X-PNP-Signature"])
        assert b'"device_error"' in got["body"] and b"FGL0K0001" in got["body"]
        page.goto(server.url + "/webhooks")
        page.wait_for_selector('#deliveries tr[data-status="delivered"]')
        page.screenshot(path=str(ARTIFACTS / "webhooks.png"), full_page=True)
    finally:
        device.stop.set()
        context.close()
        receiver.close()
