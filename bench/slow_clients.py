"""Slow and idle clients against the real server: do devices still get answers?

A hostile or broken host on the device LAN can open many connections and
keep them busy: sending a request header one byte every 0.5 s ("slow
headers"), or downloading an image while reading 1 KiB every 0.5 s ("slow
readers"). :class:`SlowClients` opens both kinds from one thread (no thread
per socket) and keeps them alive; :func:`probe` times ``GET /pnp/HELLO`` and a
``POST /pnp/WORK-REQUEST`` on fresh connections meanwhile.

Run (starts ``run.py`` itself on a free loopback port, in a temporary project)::

    python3 bench/slow_clients.py --worker-class gevent --slow-headers 200 --slow-readers 100
    python3 bench/slow_clients.py --worker-class gthread --threads 8

It prints one JSON line: probe latencies (p50, p95, max, seconds) and
failures. The figures go to RELIABILITY.md; tests/e2e/test_slow_clients.py
asserts only the behaviour (answered while the slow clients are connected).
Only loopback addresses are used; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "c1100-universalk9.17.12.03a.SPA.bin"
TARBALL = "guestshell.17.09.01a.tar"
WR = ('<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:C1111-4P,VID:V01,SN:{sn}">'
      '<info xmlns="urn:cisco:pnp:work-info" correlator="{c}"><deviceId><udi>PID:C1111-4P,VID:V01,SN:{sn}</udi>'
      '<hostname>Router</hostname><authRequired>false</authRequired></deviceId></info></pnp>')


class SlowClients:
    """``headers`` slow-header and ``readers`` slow-reader connections to 127.0.0.1:``port``.

    ``start()`` connects them all and starts one pump thread: every
    ``interval`` seconds each slow-header socket sends one more header byte
    (never finishing the header) and each reader reads ``chunk`` bytes of
    ``/images/<image>``. A connection the server closes is reopened, so the
    pressure stays. ``stop()`` closes everything. ``alive()`` counts open ones.
    """

    def __init__(self, port: int, headers: int = 200, readers: int = 100, image: str = IMAGE,
                 interval: float = 0.5, chunk: int = 1024, host: str = "127.0.0.1"):
        self.host, self.port, self.image = host, port, image
        self.interval, self.chunk = interval, chunk
        self.counts = {"header": headers, "reader": readers}
        self.socks: list[tuple[str, socket.socket]] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open(self, kind: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect((self.host, self.port))
        if kind == "header":
            sock.sendall(b"GET /pnp/HELLO HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:
            sock.sendall(f"GET /images/{self.image} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.setblocking(False)
        return sock

    def start(self) -> None:
        for kind, n in self.counts.items():
            for _ in range(n):
                self.socks.append((kind, self._open(kind)))
        self._thread = threading.Thread(target=self._pump, name="slow-clients", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.wait(self.interval):
            for i, (kind, sock) in enumerate(self.socks):
                try:
                    if kind == "header":
                        sock.send(b"a")
                    else:
                        if sock.recv(self.chunk) == b"":
                            raise ConnectionResetError
                except BlockingIOError:
                    continue
                except OSError:
                    sock.close()
                    try:
                        self.socks[i] = (kind, self._open(kind))
                        self.reopened += 1
                    except OSError:
                        pass

    def alive(self) -> int:
        return sum(1 for _k, s in self.socks if s.fileno() != -1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for _kind, sock in self.socks:
            sock.close()


def probe(url: str, serial: str, correlator: str, timeout: float = 10.0) -> tuple[float, float]:
    """Seconds for ``GET /pnp/HELLO`` and a ``POST /pnp/WORK-REQUEST``, each on a new connection.

    Raises requests exceptions (timeout) and AssertionError for a status other than 200.
    """
    start = time.monotonic()
    with requests.Session() as s:
        assert s.get(url + "/pnp/HELLO", timeout=timeout).status_code == 200
    hello = time.monotonic() - start
    start = time.monotonic()
    with requests.Session() as s:
        resp = s.post(url + "/pnp/WORK-REQUEST", data=WR.format(sn=serial, c=correlator), timeout=timeout)
        assert resp.status_code == 200 and b"<pnp" in resp.content
    return hello, time.monotonic() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lab(tmp: Path, image_mb: int) -> None:
    for name in ("images", "configs", "files", "logs"):
        (tmp / name).mkdir()
    shutil.copytree(ROOT / "templates", tmp / "templates")
    shutil.copy(ROOT / "configs" / "default.cfg", tmp / "configs" / "default.cfg")
    # the server refuses to start without the guestshell tarball and the script it serves
    (tmp / "files" / TARBALL).write_bytes(b"\0" * 1024)
    shutil.copy(ROOT / "files" / "pxs.py", tmp / "files" / "pxs.py")
    with open(tmp / "images" / IMAGE, "wb") as fh:
        fh.truncate(image_mb * 1024 * 1024)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker-class", default="", help="gthread or gevent (default: the server's default)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--slow-headers", type=int, default=200)
    parser.add_argument("--slow-readers", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of probing")
    parser.add_argument("--image-mb", type=int, default=256)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pnp-slow-"))
    _lab(tmp, args.image_mb)
    port = _free_port()
    settings = {"SERVER_IP": "127.0.0.1", "PORT": port, "BIND": "127.0.0.1", "WORKERS": args.workers,
                "THREADS": args.threads, "DATABASE_URL": f"sqlite:///{tmp / 'pnp.sqlite3'}",
                "IMAGES": [{"pid": "C11*", "file": IMAGE, "version": "17.12.3a"}]}
    if args.worker_class:
        settings["WORKER_CLASS"] = args.worker_class
    (tmp / "settings.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNP_")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--settings", str(tmp / "settings.py")],
                            cwd=tmp, env={**env, "PNP_ROOT": str(tmp)}, stdout=open(tmp / "server.out", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    clients = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"run.py exited {proc.returncode}: {(tmp / 'server.out').read_text()[-500:]}")
            try:
                if requests.get(url + "/pnp/HELLO", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        baseline = [probe(url, "BENCH0BASE", f"b{i}") for i in range(5)]
        clients = SlowClients(port, args.slow_headers, args.slow_readers)
        clients.start()
        time.sleep(2)
        hellos, wrs, failures = [], [], 0
        end = time.monotonic() + args.duration
        i = 0
        while time.monotonic() < end:
            try:
                hello, wr = probe(url, f"BENCH{i % 20:04d}", f"c{i}")
                hellos.append(hello)
                wrs.append(wr)
            except (requests.RequestException, AssertionError):
                failures += 1
            i += 1
            time.sleep(0.25)
        result = {
            "worker_class": args.worker_class or "default", "workers": args.workers, "threads": args.threads,
            "slow_headers": args.slow_headers, "slow_readers": args.slow_readers,
            "connected": clients.alive(), "reopened": clients.reopened,
            "baseline_hello_s": round(statistics.median(b[0] for b in baseline), 4),
            "probes": i, "failures": failures,
            **_stats("hello", hellos), **_stats("work_request", wrs),
        }
    finally:
        if clients is not None:
            clients.stop()
        os.killpg(proc.pid, 15)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    return result


def _stats(name: str, values: list[float]) -> dict:
    if not values:
        return {f"{name}_p50_s": None, f"{name}_p95_s": None, f"{name}_max_s": None}
    ordered = sorted(values)
    return {f"{name}_p50_s": round(statistics.median(ordered), 4),
            f"{name}_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 4),
            f"{name}_max_s": round(ordered[-1], 4)}


if __name__ == "__main__":
    main()
