#!/usr/bin/env python3
"""In-process cost of a PnP message: ``bench/profile_messages.py [--devices 20] [--profile]``.

Runs ``--devices`` simulated devices (simulator.SimulatedDevice, backoffs scaled to 0) one
after the other through the whole workflow against ``create_app()`` in this process: each
HTTP request goes straight into the WSGI app (no sockets, no gunicorn), so what is measured
is the application's own work per message. Prints the CPU time of this process divided by
the PnP messages (work-requests + work-responses; image and file downloads are served too
and included), the SQL statements per message (a SQLAlchemy listener), and with
``--profile`` the top functions of a cProfile run (cumulative). The database is a fresh
MariaDB database at PNP_BENCH_MARIADB_URL (default mysql+pymysql://root@127.0.0.1:3306),
dropped at the end; ``--sqlite`` uses a SQLite file instead. Used for the before/after
figures of BENCHMARKS.md "Per-message cost (issue 10)"; deterministic enough to run under
``valgrind --tool=callgrind`` too.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from requests.adapters import BaseAdapter  # noqa: E402
from sqlalchemy import create_engine, event, text  # noqa: E402

from simulator import SimulatedDevice  # noqa: E402
from tests.helpers import FAST_SETTINGS, make_lab  # noqa: E402

MARIADB = os.environ.get("PNP_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")


class WsgiAdapter(BaseAdapter):
    """A requests transport adapter that calls a WSGI app in this process (Flask's test client)."""

    def __init__(self, app):
        super().__init__()
        self.client = app.test_client()
        self.pnp = 0

    def send(self, request, **kwargs):
        path = request.path_url
        if path.startswith("/pnp/WORK-"):
            self.pnp += 1
        answer = self.client.open(path, method=request.method, data=request.body,
                                  headers=dict(request.headers),
                                  environ_base={"REMOTE_ADDR": "127.0.0.1"})
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response.raw = io.BytesIO(answer.get_data())
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        answer.close()
        return response

    def close(self):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", help="also write the cProfile statistics to this file (pstats)")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--url", default=MARIADB, help="MariaDB server URL (a database is created)")
    parser.add_argument("--set", action="append", default=[], help="SETTING=python literal")
    args = parser.parse_args()
    lab = make_lab(Path(tempfile.mkdtemp(prefix="pnp-prof-")), image_mb=1)
    name = f"pnp_prof_{uuid.uuid4().hex[:8]}"
    admin = None
    if args.sqlite:
        db = f"sqlite:///{lab / 'pnp.sqlite3'}"
    else:
        admin = create_engine(args.url)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        db = f"{args.url.rstrip('/')}/{name}"
    try:
        from app import create_app
        from app.config import Config
        from app.storage.migrate import upgrade

        upgrade(db)
        overrides = {k.lower(): v for k, v in FAST_SETTINGS.items()}
        for item in args.set:
            key, value = item.split("=", 1)
            overrides[key.lower()] = eval(value, {})  # noqa: S307 - a developer's own command line
        image = "c1100-universalk9.17.12.03a.SPA.bin"
        overrides.update(root=lab, database_url=db, images=[{"pid": "C11*", "file": image, "version": "17.12.3a"}])
        (lab / "images" / image).write_bytes(os.urandom(1 << 20))
        config = Config.load(None, env={}, **overrides)
        app = create_app(config)
        statements = [0]
        event.listen(app.extensions["pnp_sessions"].kw["bind"], "before_cursor_execute",
                     lambda *a: statements.__setitem__(0, statements[0] + 1))
        event.listen(app.extensions["pnp_sessions"].kw["bind"], "commit",
                     lambda *a: statements.__setitem__(0, statements[0] + 1))
        adapter = WsgiAdapter(app)

        def fleet(prefix: str, n: int) -> None:
            for i in range(n):
                dev = SimulatedDevice("http://pnp.test", f"{prefix}{i:05d}", reload_seconds=0,
                                      time_scale=0.0, max_sleep=0.0)
                dev.http.mount("http://", adapter)  # the job URLs name SERVER_IP:PORT
                if not dev.run(timeout=120):
                    raise SystemExit(f"{dev.serial} did not finish: {dev.log[-3:]}")

        fleet("WARM", 2)  # imports, pools, caches
        adapter.pnp, statements[0] = 0, 0
        profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not waits
        cpu0, wall0 = time.process_time(), time.monotonic()
        if profiler:
            profiler.enable()
        fleet("PROF", args.devices)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        n = max(adapter.pnp, 1)
        print(f"{args.devices} devices, {adapter.pnp} PnP messages, {wall:.1f} s: "
              f"{1000 * cpu / n:.2f} ms CPU/message (whole process, client included), "
              f"{statements[0] / n:.2f} statements/message")
        engine = app.extensions["pnp_engine"]
        with engine.connect() as conn:  # the history's growth per provisioned device
            events, raw_bytes, text_bytes = conn.execute(text(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(e.raw_xml)), 0), COALESCE(SUM(LENGTH(e.message)), 0) "
                "FROM device_event e JOIN device_state d ON d.id = e.device_id "
                "WHERE d.serial_number LIKE 'PROF%'")).one()
        print(f"history per device: {events / args.devices:.1f} events, {int(raw_bytes) // args.devices} bytes "
              f"of raw_xml, {int(text_bytes) // args.devices} bytes of message text")
        engine.dispose()
        if profiler:
            if args.dump:
                profiler.dump_stats(args.dump)
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            admin.dispose()
        shutil.rmtree(lab, ignore_errors=True)


if __name__ == "__main__":
    main()
