"""Headless Chromium (Debian's, through Playwright) against the real gunicorn server.

An operator logs in, watches simulated devices provision live on /dashboard
(htmx auto-refresh only, never a reload), opens a device's history, and
resumes a device parked in BOOTFLASH_NO_SPACE from its page. Screenshots go
to artifacts/ (kept by CI).
"""

from __future__ import annotations

import shutil
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from simulator import SimulatedDevice
from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
WAIT_MS = 90_000  # generous: other test suites load this machine too

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def browser():
    """Debian's chromium driven by Playwright; a missing one FAILS (deselect: -m 'not browser')."""
    from playwright import sync_api
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install -y chromium (.ci/apt/browser.txt)"
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


def _log_in(page, url: str) -> None:
    page.goto(url + "/dashboard")
    assert "/login" in page.url, "the dashboard must ask for a login"
    page.fill("input[name=user]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/dashboard")


def _first_request_unanswered(device: SimulatedDevice):
    """Send the device's first WORK-REQUEST and keep its job unanswered (the device
    sits visibly in its first state); returns the job element to answer later."""
    correlator = device._correlator()
    resp = device.http.post(f"{device.base_url}/pnp/WORK-REQUEST", data=device.work_request_xml(correlator),
                            headers={"Content-Type": "text/xml"}, timeout=30)
    resp.raise_for_status()
    device.reload_reason = None
    job = next(e for e in ET.fromstring(resp.text) if e.tag.endswith("request"))
    return job


def _answer(device: SimulatedDevice, job) -> None:
    answer, _reload = device.execute(job)
    device.http.post(f"{device.base_url}/pnp/WORK-RESPONSE", data=answer,
                     headers={"Content-Type": "text/xml"}, timeout=30).raise_for_status()


def _start(device: SimulatedDevice, **kw) -> threading.Thread:
    thread = threading.Thread(target=device.run, kwargs={"timeout": 150, **kw}, daemon=True)
    thread.start()
    return thread


_RECORD_STATES = """serials => {
  window.__seen = {};
  const record = () => serials.forEach(sn => {
    const row = document.getElementById('device-' + sn);
    if (!row) return;
    const seen = window.__seen[sn] = window.__seen[sn] || [];
    if (seen[seen.length - 1] !== row.dataset.state) seen.push(row.dataset.state);
  });
  new MutationObserver(record).observe(document.body, {childList: true, subtree: true});
  record();
}"""


def test_operator_watches_fleet_provision_live_and_opens_history(start_server, page):
    server = start_server(ADMIN_PASSWORD=PASSWORD)
    watched = SimulatedDevice(server.url, "FGL2548W001", reload_seconds=0.3)
    fleet = [SimulatedDevice(server.url, f"FGL2548W{i:03d}", reload_seconds=0.3) for i in (2, 3)]
    try:
        _log_in(page, server.url)
        page.evaluate("window.__loadedOnce = 'still the same page'")
        page.evaluate(_RECORD_STATES, [d.serial for d in [watched, *fleet]])

        job = _first_request_unanswered(watched)
        row = page.locator("#device-FGL2548W001")
        page.wait_for_selector('#device-FGL2548W001[data-state="CONFIG_REGISTER"]')
        assert "step 1 of 13" in row.inner_text()
        assert "Unclaimed" in row.inner_text()  # not in the inventory, REQUIRE_CLAIM off

        _answer(watched, job)
        threads = [_start(d) for d in [watched, *fleet]]
        for device in [watched, *fleet]:
            page.wait_for_selector(f'#device-{device.serial}[data-state="FINISHED"]')
        for thread in threads:
            thread.join(30)

        assert page.evaluate("window.__loadedOnce") == "still the same page", "the page was reloaded"
        seen = page.evaluate("window.__seen['FGL2548W001']")
        assert seen[0] == "CONFIG_REGISTER" and seen[-1] == "FINISHED", seen
        assert "Provisioned" in row.inner_text() and "step 13 of 13" in row.inner_text()
        page.wait_for_function("document.querySelector('[data-lifecycle=Provisioned] b').textContent == '3'")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-fleet.png"), full_page=True)

        page.click("#device-FGL2548W001 a")
        page.wait_for_url(server.url + "/devices/FGL2548W001")
        events = page.locator("#events tbody tr")
        assert "FINISHED" in events.first.inner_text(), "history must be newest first"
        assert "first contact" in events.last.inner_text()
        assert "config-register 0x2102" in page.locator("#events").inner_text()
        assert "<pnp" in page.locator(".raw-xml").first.inner_text()
        assert "InstallGuestShell" in page.locator("#day0").inner_text()
        page.screenshot(path=str(ARTIFACTS / "device-history.png"), full_page=True)
    finally:
        for device in [watched, *fleet]:
            device.stop.set()


def test_operator_resumes_parked_device_from_its_page(start_server, page):
    server = start_server(ADMIN_PASSWORD=PASSWORD)
    # 1.0 GB free on bootflash, below MIN_BOOTFLASH_FREE (1026107392): parks at step 9.
    device = SimulatedDevice(server.url, "FGL2548P001", reload_seconds=0.3,
                             bootflash_size=2_300_000_000, bootflash_used=1_300_000_000)
    try:
        assert device.run(timeout=120, until=lambda d: d.parked), device.log[-5:]
        _log_in(page, server.url)
        row = page.locator("#device-FGL2548P001")
        assert row.get_attribute("data-state") == "BOOTFLASH_NO_SPACE"
        assert "stalled" in (row.get_attribute("class") or "")
        assert "Error" in row.inner_text()

        device.bootflash_used = 0  # the operator freed space on the router
        thread = _start(device)
        page.click("#device-FGL2548P001 a")
        page.wait_for_url(server.url + "/devices/FGL2548P001")
        assert page.locator("#current-state").inner_text() == "BOOTFLASH_NO_SPACE"
        page.select_option("select[name=state]", "CHECK_BOOTFLASH")
        page.click("button[name=resume]")
        page.wait_for_selector("text=resumes at CHECK_BOOTFLASH")
        page.wait_for_function("document.getElementById('current-state').textContent == 'FINISHED'")
        thread.join(30)
        assert device.finished
        assert "resumed by admin" in page.locator("#events").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "device-resumed.png"), full_page=True)
        api = requests.get(server.url + "/api/v1/devices/FGL2548P001", timeout=10)
        assert api.status_code == 401, "the API must not be open without a token or login"
    finally:
        device.stop.set()
