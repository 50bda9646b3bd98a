#!/usr/bin/env python3
"""Scale-out figures for docs/scale-out.md: 1, 2 and 3 run.py instances behind HAProxy on a
three-node MariaDB Galera cluster (tests/helpers.py starts both on loopback), and the cost of
one certification retry.

    python3 bench/galera.py [--devices 50]

For each instance count: N simulated devices (backoffs scaled down) provision a 3 MB image
through HAProxy; printed are wall time, PnP requests/s, and the server CPU per PnP message
(user+system seconds of every instance's master and workers, divided by the PnP requests
they served). Then ``locked`` on node 1 with and without a conflicting write from node 2
(error 1213 at COMMIT, one retry). Everything stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator import SimulatedDevice  # noqa: E402
from tests.helpers import GaleraCluster, HAProxy, ServerProcess, free_port, make_lab  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of ``pid`` and its children (gunicorn master + workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        pids += [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def rollout(cluster: GaleraCluster, lab: Path, instances: int, devices: int) -> dict:
    database = f"pnp_b_{uuid.uuid4().hex[:8]}"
    cluster.create_database(database)
    ports = [free_port() for _ in range(instances)]
    proxy = HAProxy(lab / f"haproxy{instances}", [(f"i{n + 1}", p) for n, p in enumerate(ports)],
                    [(node.name, node.port) for node in cluster.nodes])
    proxy.start()
    servers = [ServerProcess(lab, port, proxy.db_url(database), WORKERS=1, THREADS=8, MAX_ATTEMPTS=20,
                             PUBLIC_PORT=proxy.http_port, PROXY_HOPS=1, DB_WSREP_SYNC_WAIT=1) for port in ports]
    try:
        for server in servers:
            server.start(timeout=120)
        proxy.wait_up("pnp_instances", [f"i{n + 1}" for n in range(instances)])
        fleet = [SimulatedDevice(proxy.url, f"FGLB{instances}{i:03d}", reload_seconds=0.2, max_sleep=0.2,
                                 time_scale=0.0) for i in range(devices)]
        counted = []
        for dev in fleet:
            dev.http.hooks["response"].append(lambda r, *a, **k: counted.append(1) if "/pnp/W" in r.url else None)
        cpu0 = sum(cpu_seconds(s.proc.pid) for s in servers)
        started = time.monotonic()
        threads = [threading.Thread(target=d.run, kwargs={"timeout": 300}) for d in fleet]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        cpu = sum(cpu_seconds(s.proc.pid) for s in servers) - cpu0
        assert all(d.finished for d in fleet), "not every device finished"
        return {"instances": instances, "devices": devices, "wall_s": wall, "requests": len(counted),
                "req_per_s": len(counted) / wall, "cpu_ms_per_msg": 1000 * cpu / len(counted)}
    finally:
        for server in servers:
            server.stop()
        proxy.stop()


def certification_cost(cluster: GaleraCluster, rounds: int = 30) -> dict:
    from app.storage.db import make_engine, make_sessionmaker, utcnow
    from app.storage.lock import locked
    from app.storage.migrate import upgrade

    database = f"pnp_c_{uuid.uuid4().hex[:8]}"
    cluster.create_database(database)
    upgrade(cluster.nodes[0].url(database))
    engine = make_engine(cluster.nodes[0].url(database))
    sessions = make_sessionmaker(engine)
    now = utcnow()
    plain, conflicted = [], []
    for i in range(rounds):
        serial = f"CERT{i:04d}"
        locked(sessions, serial, lambda s, r: None, {"first_seen": now, "last_contact": now, "state": "NEW"})
        for samples, conflict in ((plain, False), (conflicted, True)):
            calls = []

            def unit(session, row, conflict=conflict, calls=calls, serial=serial):
                if conflict and not calls:
                    cluster.nodes[1].execute("UPDATE device_state SET attempts = attempts + 1 "
                                             "WHERE serial_number = %s", serial, database=database)
                calls.append(1)
                row.attempts = (row.attempts or 0) + 1
            t0 = time.perf_counter()
            locked(sessions, serial, unit)
            elapsed = time.perf_counter() - t0
            if conflict:
                assert len(calls) == 2, "the conflict did not cause a retry"
            samples.append(elapsed * 1000)
    engine.dispose()
    return {"plain_ms": statistics.median(plain), "with_retry_ms": statistics.median(conflicted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    args = parser.parse_args()
    cluster = GaleraCluster()
    lab = make_lab(Path(tempfile.mkdtemp(prefix="pnp-bench-galera-")))
    try:
        t0 = time.monotonic()
        cluster.start()
        cluster.nodes[0].execute("CREATE USER IF NOT EXISTS 'haproxy_check'@'127.0.0.1'")
        print(f"cluster: 3 nodes Synced in {time.monotonic() - t0:.1f}s (rsync SST)")
        for n in (1, 2, 3):
            r = rollout(cluster, lab, n, args.devices)
            print(f"{r['instances']} instance(s): {r['devices']} devices in {r['wall_s']:.1f}s, "
                  f"{r['requests']} PnP messages, {r['req_per_s']:.0f}/s, "
                  f"server CPU {r['cpu_ms_per_msg']:.1f} ms/message")
        c = certification_cost(cluster)
        print(f"locked() median: {c['plain_ms']:.1f} ms; with one certification failure + retry: "
              f"{c['with_retry_ms']:.1f} ms (includes the conflicting write on node 2)")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
