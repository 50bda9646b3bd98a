"""Scale-out end to end: three run.py instances behind HAProxy on a three-node Galera cluster.

Topology (deploy/haproxy.cfg, docs/scale-out.md): HAProxy's HTTP frontend spreads
every device request at random over the instances (no stickiness: one device's
work-request and work-response usually land on different instances); the
instances reach MariaDB through HAProxy's TCP frontend, which sends every
connection to one Galera node at a time and fails over to the next when it
dies (single writer; ``DB_WSREP_SYNC_WAIT=1`` covers the failover window).

50 simulated devices provision a 3 MB image each (the project's simulator)
three times: undisturbed; with the writer Galera node SIGKILLed mid-rollout and
restarted later (it rejoins by IST); with one instance SIGKILLed mid-rollout and
not restarted. Each time every device finishes with nothing repeated or lost:
every job a device received is in device_event, one job per work-request, no
acknowledged step is run again, every acknowledged response is in the history.
Timings are printed for docs/scale-out.md.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from simulator import SimulatedDevice
from tests.console.test_browser import browser  # noqa: F401 - the Chromium fixture
from tests.e2e.test_crash_recovery import (
    AckTracker,
    _assert_all_finished,
    _assert_no_job_after_success,
    _assert_no_lost_event,
    _assert_no_repeated_step,
    _events,
)
from tests.helpers import IMAGE_NAME, HAProxy, ServerProcess, free_port, make_lab

pytestmark = [pytest.mark.galera, pytest.mark.e2e]

DEVICES = 50
PASSWORD = "correct horse battery staple"
_JOB = re.compile(r'<request xmlns="urn:cisco:pnp:([\w-]+)"[^>]*correlator="([^"]*)"')


class Rollout:
    """The module's set-up: cluster database, HAProxy, three instances."""

    def __init__(self, galera, lab: Path) -> None:
        self.galera = galera
        self.database = f"pnp_r_{uuid.uuid4().hex[:8]}"
        galera.create_database(self.database)
        ports = [free_port() for _ in range(3)]
        self.haproxy = HAProxy(lab / "haproxy", [(f"i{n + 1}", p) for n, p in enumerate(ports)],
                               [(node.name, node.port) for node in galera.nodes])
        self.haproxy.start()
        self.db_url = self.haproxy.db_url(self.database)
        self.direct_url = galera.nodes[1].url(self.database)  # for the checks: not through HAProxy
        self.servers = [ServerProcess(lab, port, self.db_url, WORKERS=1, THREADS=8, MAX_ATTEMPTS=20,
                                      RELOAD_TIMEOUT=20, PUBLIC_PORT=self.haproxy.http_port, PROXY_HOPS=1,
                                      DB_WSREP_SYNC_WAIT=1, ADMIN_PASSWORD=PASSWORD,
                                      SECRET_KEY="one key for every instance")
                        for port in ports]
        try:
            starting = [threading.Thread(target=s.start, kwargs={"timeout": 120}) for s in self.servers]
            for t in starting:  # all at once: they migrate one at a time (migration lock)
                t.start()
            for t in starting:
                t.join()
            for s in self.servers:
                if s.proc is None or s.proc.poll() is not None:
                    raise RuntimeError(f"instance {s.port} did not start: {s.output()[-2000:]}")
            self.haproxy.wait_up("pnp_instances", ["i1", "i2", "i3"])
        except BaseException:
            self.close()  # nothing left running behind a failed set-up
            raise

    def writer_node(self) -> str:
        engine = create_engine(self.db_url)
        with engine.connect() as conn:
            name = conn.execute(text("SELECT @@wsrep_node_name")).scalar_one()
        engine.dispose()
        return name

    def reset(self) -> None:
        node = next(n for n in self.galera.nodes if n.running)
        node.execute("DELETE FROM device_event", database=self.database)
        node.execute("DELETE FROM device_state", database=self.database)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.haproxy.stop()


@pytest.fixture(scope="module")
def rollout(galera):
    lab = make_lab(Path(tempfile.mkdtemp(prefix="pnp-rollout-")))
    setup = Rollout(galera, lab)
    yield setup
    setup.close()


class JobTracker:
    """Per device: the jobs it received (service, correlator) and the instance of each request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.served: dict[str, list[str]] = defaultdict(list)

    def hook_for(self, dev: SimulatedDevice):
        def hook(resp, *args, **kwargs):
            with self.lock:
                if "/pnp/" in resp.url:
                    self.served[dev.serial].append(resp.headers.get("X-Served-By", "?"))
                if resp.url.endswith("/pnp/WORK-REQUEST") and resp.status_code == 200:
                    m = _JOB.search(resp.text)
                    if m and m.group(1) != "backoff":
                        self.jobs[dev.serial].append((m.group(1), m.group(2)))
            return resp
        return hook


def _run(rollout: Rollout, prefix: str, during=None, timeout: float = 240):
    """Drive DEVICES devices through HAProxy; ``during(devices)`` runs in the main thread meanwhile.
    Returns (devices, results, acks, jobs, seconds)."""
    rollout.reset()
    acks, jobs = AckTracker(), JobTracker()
    devices = [SimulatedDevice(rollout.haproxy.url, f"{prefix}{i:03d}", reload_seconds=0.5, max_sleep=1.0,
                               http_timeout=30) for i in range(DEVICES)]
    for dev in devices:
        dev.http.hooks["response"].extend([acks.hook_for(dev), jobs.hook_for(dev)])
    results: dict[str, bool] = {}
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d.serial, d.run(timeout=timeout)))
               for d in devices]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        if during is not None:
            during(devices)
        for t in threads:
            t.join()
    finally:
        for dev in devices:
            dev.stop.set()
    return devices, results, acks, jobs, time.monotonic() - started


def _assert_jobs(rollout: Rollout, jobs: JobTracker, *, exact: bool) -> None:
    """Every job a device received is a committed job event; one job per work-request.
    ``exact``: and every job event reached its device (no instance died after a commit)."""
    stored = defaultdict(list)
    for r in _events(rollout.direct_url):
        if r.kind == "job":
            stored[r.serial_number].append((r.service, r.correlator))
    for serial, events in stored.items():
        dupes = [c for c, n in Counter(c for _, c in events).items() if n > 1]
        assert not dupes, f"{serial}: more than one job for work-request {dupes}"
    for serial, received in jobs.jobs.items():
        assert set(received) <= set(stored[serial]), f"{serial}: received a job that was not committed"
        if exact:
            assert sorted(received) == sorted(stored[serial]), f"{serial}: a committed job never arrived"


def _explain(rollout: Rollout, results) -> str:
    """State and last events of the devices that did not finish (for a failure message)."""
    lines = []
    late = [serial for serial, ok in results.items() if not ok]
    node = next(n for n in rollout.galera.nodes if n.running)
    for serial in late[:3]:
        lines.append(str(node.execute("SELECT state, workflow_state, pending_service, pending_correlator, attempts, "
                                      "retry_after, last_error_message FROM device_state WHERE serial_number = %s",
                                      serial, database=rollout.database)))
        lines += [str(r) for r in node.execute(
            "SELECT e.at, e.kind, e.service, e.correlator, e.success, LEFT(e.message, 120) FROM device_event e "
            "JOIN device_state s ON s.id = e.device_id WHERE s.serial_number = %s ORDER BY e.id DESC LIMIT 6",
            serial, database=rollout.database)]
    return "\n".join(lines)


def _assert_history(rollout, devices, results, acks, jobs, *, exact=True):
    assert all(results.values()), (_explain(rollout, results), [
        (d.serial, d.last_backoff_reason, d.log[-3:]) for d in devices if not results.get(d.serial)][:3])
    _assert_all_finished(rollout.direct_url, devices, results)
    _assert_no_repeated_step(acks, devices)
    _assert_no_lost_event(acks, rollout.direct_url)
    _assert_no_job_after_success(rollout.direct_url)
    _assert_jobs(rollout, jobs, exact=exact)


def test_fifty_devices_random_routing_over_three_instances(rollout):
    devices, results, acks, jobs, seconds = _run(rollout, "FGLGA")
    assert not acks.server_errors, acks.server_errors[:5]
    _assert_history(rollout, devices, results, acks, jobs)
    for dev in devices:
        assert dev.downloads[f"{rollout.haproxy.url}/images/{IMAGE_NAME}"] == 1
    per_instance = Counter(name for served in jobs.served.values() for name in served)
    assert set(per_instance) == {"i1", "i2", "i3"}, per_instance
    spread = [len(set(s)) for s in jobs.served.values()]
    assert min(spread) >= 2, "no stickiness: every device was served by several instances"
    requests = sum(per_instance.values())
    print(f"\ngalera rollout: {DEVICES} devices FINISHED in {seconds:.1f}s over 3 instances "
          f"({requests} PnP requests, per instance {dict(per_instance)})")


def _wait_mid_rollout(devices) -> None:
    """Until a third of the devices have downloaded their image (at most 60 s); fails when the
    rollout is already over, so a kill that follows lands mid-rollout."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(bool(d.downloads) for d in devices) < DEVICES // 3:
        time.sleep(0.2)
    assert not all(d.finished for d in devices), "the kill must land mid-rollout"


def test_writer_node_killed_mid_rollout_and_rejoined(rollout):
    """SIGKILL of the Galera node every instance writes to; HAProxy fails over to the next;
    the node is restarted 10 s later and rejoins by IST. No device notices more than a backoff."""
    victim_name = rollout.writer_node()
    victim = next(n for n in rollout.galera.nodes if n.name == victim_name)
    marks = {}

    def during(devices):
        _wait_mid_rollout(devices)
        victim.kill()
        marks["killed"] = time.monotonic()
        time.sleep(10)
        assert rollout.writer_node() != victim_name, "HAProxy moved the writer"
        victim.rejoin()
        marks["rejoined"] = time.monotonic()

    devices, results, acks, jobs, seconds = _run(rollout, "FGLGB", during)
    log = victim.error_log()
    assert victim.joined_by_ist(), (victim.last_position, log[log.rfind(" as process "):][:6000])
    rollout.galera.wait_size(3)
    time.sleep(2)  # HAProxy's check has it UP again (rise 3 × 500 ms) ...
    assert rollout.haproxy.server_states("galera")[victim_name] == "UP"
    assert rollout.writer_node() != victim_name, "... and no failback: still one writer"
    assert not acks.server_errors, acks.server_errors[:5]
    _assert_history(rollout, devices, results, acks, jobs)
    print(f"\ngalera rollout: {DEVICES} devices FINISHED in {seconds:.1f}s with {victim_name} SIGKILLed "
          f"mid-rollout and back by IST {marks['rejoined'] - marks['killed']:.1f}s later")


def test_instance_killed_mid_rollout_the_others_finish(rollout):
    """SIGKILL of one instance (master and worker), never restarted: HAProxy's check takes it
    out and the two others finish every device. Only requests the dead instance was holding
    fail (HAProxy's 502); a job it committed but never delivered is never received."""
    victim = rollout.servers[0]

    def during(devices):
        _wait_mid_rollout(devices)
        victim.kill()

    devices, results, acks, jobs, seconds = _run(rollout, "FGLGC", during)
    assert all(code == 502 for _, code in acks.server_errors), acks.server_errors[:5]
    _assert_history(rollout, devices, results, acks, jobs, exact=False)
    after = Counter(s[-1] for s in jobs.served.values())
    assert "i1" not in after, "the dead instance served no device's last request"
    print(f"\ngalera rollout: {DEVICES} devices FINISHED in {seconds:.1f}s with one of 3 instances "
          f"SIGKILLed mid-rollout ({len(acks.server_errors)} requests cut: HAProxy 502)")


@pytest.mark.browser
def test_operator_session_and_csrf_work_across_instances(rollout, browser):  # noqa: F811
    """A browser session through HAProxy: its requests land on different instances, the login
    made on one holds on the others (the session cookie is signed with the SECRET_KEY every
    instance shares), and a CSRF token rendered by one instance is accepted by another."""
    url = rollout.haproxy.url
    context = browser.new_context()
    context.set_default_timeout(60_000)
    page = context.new_page()
    served = []
    page.on("response", lambda r: served.append((r.request.method, r.url.split(url)[-1].split("?")[0],
                                                 r.headers.get("x-served-by")))
            if r.url.startswith(url) else None)
    crossed = rounds = 0
    try:
        while rounds < 2 or (not crossed and rounds < 8):  # until a token crossed instances
            rounds += 1
            page.goto(url + "/dashboard")
            assert "/login" in page.url, "not logged in yet"
            page.fill("input[name=user]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/dashboard")
            for _ in range(4):
                page.goto(url + "/dashboard")
                assert page.url == url + "/dashboard", "the login holds on every instance"
            rendered_by = [s for m, path, s in served if m == "GET" and path == "/dashboard"][-1]
            page.click("form[action$='/logout'] button")
            page.wait_for_url("**/login**")
            posted_to = [s for m, path, s in served if m == "POST" and path == "/logout"][-1]
            crossed += rendered_by != posted_to
            page.goto(url + "/dashboard")
            assert "/login" in page.url, "logged out everywhere"
    finally:
        context.close()
    instances = {s for _, _, s in served if s}
    assert len(instances) >= 2 and crossed >= 1, served
    print(f"\nbrowser session over instances {sorted(instances)}; {crossed}/{rounds} logouts posted to "
          "another instance than the page that rendered their CSRF token")
