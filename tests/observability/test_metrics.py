"""/metrics: Prometheus counters summed across gunicorn workers (multiprocess mode).

Real gunicorn with three workers on MariaDB; simulated devices count on the
client side what they send and download, and every scrape (each answered by
whichever worker accepts it) must add up to the same totals.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from urllib.parse import urlparse

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from simulator import Faults, SimulatedDevice


def _samples(text: str) -> list[tuple[str, dict, float]]:
    return [(s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def _total(samples, name: str, **labels) -> float:
    return sum(v for n, lab, v in samples
               if n == name and all(lab.get(k) == want for k, want in labels.items()))


class Tally:
    """Client-side counts of what a simulated device sent and downloaded."""

    def __init__(self):
        self.lock = threading.Lock()
        self.posts: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def hook(self, response, *args, **kwargs):
        path = urlparse(response.url).path
        with self.lock:
            if response.request.method == "POST":
                self.posts[path] += 1
            elif response.request.method == "GET" and response.status_code == 200:
                self.bytes[path.split("/")[1]] += int(response.headers.get("Content-Length", 0))


def _workers(master_pid: int) -> set[int]:
    path = f"/proc/{master_pid}/task/{master_pid}/children"
    with open(path) as fh:
        return {int(x) for x in fh.read().split()}


def _drive(devices, tally):
    results = {}
    for dev in devices:
        dev.http.hooks["response"].append(tally.hook)
        dev.http.headers["Connection"] = "close"  # new connection, any worker may accept it
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d.serial, d.run(timeout=120)))
               for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results.values()), {d.serial: d.log[-5:] for d in devices}


@pytest.mark.e2e
@pytest.mark.mariadb
def test_metrics_add_up_across_three_workers(start_server, mariadb_fresh):
    server = start_server(database_url=mariadb_fresh, WORKERS=3)
    # an operator-given folder (PROMETHEUS_MULTIPROC_DIR): the test server's, in its lab
    metrics_dir = server.lab / f"prometheus_{server.port}"
    tally = Tally()
    _drive([SimulatedDevice(server.url, f"FGL2548P{i:03d}", reload_seconds=0.3,
                            faults=Faults(transfer_errors=1 if i < 2 else 0))
            for i in range(3)], tally)
    # Replace every worker: their counts must survive them (child_exit marks them dead)
    old = _workers(server.proc.pid)
    assert len(old) == 3
    for pid in old:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _workers(server.proc.pid)
        if len(now) == 3 and not now & old:
            break
        time.sleep(0.2)
    assert not _workers(server.proc.pid) & old
    _drive([SimulatedDevice(server.url, f"FGL2548P{i:03d}", reload_seconds=0.3)
            for i in range(3, 5)], tally)
    writers = {int(m.group(1)) for name in os.listdir(metrics_dir)
               if (m := re.match(r"counter_(\d+)\.db$", name))}
    assert writers & old and writers - old, "counts must come from old and new workers"

    scrapes = []
    for _ in range(6):  # several connections: different workers answer
        resp = requests.get(server.url + "/metrics", timeout=30)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        scrapes.append(_samples(resp.text))
    for samples in scrapes:
        assert _total(samples, "pnp_devices", state="FINISHED") == 5
        assert _total(samples, "pnp_devices") == 5
        assert _total(samples, "pnp_devices", state="ERROR") == 0
        assert _total(samples, "pnp_provisioning_duration_seconds_count") == 5
        assert _total(samples, "pnp_provisioning_duration_seconds_bucket", le="+Inf") == 5
        assert _total(samples, "pnp_provisioning_duration_seconds_sum") > 0
        assert (_total(samples, "pnp_requests_total", message="work-request")
                == tally.posts["/pnp/WORK-REQUEST"])
        assert (_total(samples, "pnp_requests_total", message="work-response")
                == tally.posts["/pnp/WORK-RESPONSE"])
        # every device answered device-info and the image install once at least
        assert _total(samples, "pnp_requests_total", message="work-response",
                      service="image-install") == 5
        assert _total(samples, "pnp_errors_total", service="file-transfer",
                      code="PnP Service Error 1702") == 2
        assert _total(samples, "pnp_errors_total") == 2
        for area in ("images", "configs", "files"):
            assert tally.bytes[area] > 0
            assert (_total(samples, "pnp_file_bytes_served_total", area=area, via="direct")
                    == tally.bytes[area])


def test_metrics_single_process_counts_rejects_and_states(client):
    """Without multiprocess mode (Flask test client) the same endpoint works."""
    before = _total(_samples(client.get("/metrics").get_data(as_text=True)),
                    "pnp_rejected_total", message="work-request")
    assert client.post("/pnp/WORK-REQUEST", data=b"<not-pnp/>").status_code == 400
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert _total(samples, "pnp_rejected_total", message="work-request") == before + 1
    assert _total(samples, "pnp_devices", state="FINISHED") == 0
    assert {lab["state"] for n, lab, _ in samples if n == "pnp_devices"} >= {"FINISHED", "ERROR"}
