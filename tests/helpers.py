"""Shared test helpers, imported by conftest.py and by every test module that needs them.

* constants of the lab folder (``IMAGE_NAME``, ``FAST_SETTINGS`` …) and ``fixture_text``
  (real PnP messages in simulator/messages/);
* ``free_port``, ``write_settings``;
* ``ServerProcess``: the real server (``run.py`` under gunicorn) as a process on
  127.0.0.1: start, stop (SIGTERM), kill (SIGKILL of the whole process group);
* ``drive``: run simulated devices in threads; ``db_rows``, ``assert_finished``;
* ``OwnMariaDB``: a private ``mariadbd`` for tests that stop the database
  (never the machine's shared one);
* ``WebhookReceiver``: an HTTP receiver on 127.0.0.1 that records webhook POSTs.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pymysql
import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "simulator" / "messages"
IMAGE_NAME = "c1100-universalk9.17.12.03a.SPA.bin"
IMAGE_VERSION = "17.12.3a"
TARBALL = "guestshell.17.09.01a.tar"
MARIADB_ADMIN_URL = os.environ.get("PNP_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")

FAST_SETTINGS = {
    "SERVER_IP": "127.0.0.1",
    "IMAGES": [{"pid": "C11*", "file": IMAGE_NAME, "version": IMAGE_VERSION}],
    "GUESTSHELL_TARBALL": TARBALL,
    "PYTHON_SCRIPT": "pxs.py",
    "SCRIPT_SUCCESS_MARKER": "PNP-SCRIPT-OK",
    "RETRY_BACKOFF": [1],
    "RELOAD_WAIT": 1,
    "GUESTSHELL_CHECK_BACKOFF": 1,
    "IDLE_BACKOFF": 1,
    "WORKERS": 2,
    "THREADS": 4,
}


def make_lab(path: Path, image_mb: int = 3) -> Path:
    """Fill ``path`` as a project root: images/ with an ``image_mb`` MB fake image, configs/default.cfg,
    files/ (guestshell tarball + pxs.py), templates/, logs/."""
    for name in ("images", "configs", "files", "logs"):
        (path / name).mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "templates", path / "templates", dirs_exist_ok=True)
    (path / "images" / IMAGE_NAME).write_bytes(os.urandom(image_mb * 1024 * 1024))
    (path / "files" / TARBALL).write_bytes(os.urandom(200 * 1024))
    shutil.copy(ROOT / "files" / "pxs.py", path / "files" / "pxs.py")
    shutil.copy(ROOT / "configs" / "default.cfg", path / "configs" / "default.cfg")
    return path


def fixture_text(name: str) -> str:
    """A real PnP message from simulator/messages/ (real device messages, see simulator/messages/README.md)."""
    return (FIXTURES / name).read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_settings(path: Path, **values) -> Path:
    """Write a settings.py with upper-case ``values``."""
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in values.items()))
    return path


class ServerProcess:
    """run.py on 127.0.0.1:``port`` with ``FAST_SETTINGS`` plus ``extra``; ``kill()`` SIGKILLs its
    whole process group, ``stop()`` sends SIGTERM.

    The Prometheus multiprocess folder is ``<lab>/prometheus_<port>`` (``PROMETHEUS_MULTIPROC_DIR``),
    so a SIGKILLed server leaves nothing in /tmp; set ``metrics_in_lab = False`` before ``start()``
    to let run.py make its own ``/tmp/pnp-prometheus-*`` folder (what an operator gets).
    """

    metrics_in_lab = True

    def __init__(self, lab: Path, port: int, database_url: str, **extra) -> None:
        self.lab, self.root, self.port = lab, lab, port
        self.url = f"http://127.0.0.1:{port}"
        values = {**FAST_SETTINGS, "PORT": port, "BIND": "127.0.0.1", "DATABASE_URL": database_url, **extra}
        self.settings = write_settings(lab / f"settings_{port}.py", **values)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0, expect_exit: bool = False, wait_hello: bool = True) -> None:
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("PNP_") and k != "PNP_NO_VENV") and k != "DATABASE_URL"}
        env.update(PNP_ROOT=str(self.lab), PYTHONUNBUFFERED="1")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if self.metrics_in_lab:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.lab / f"prometheus_{self.port}")
        self.log = self.lab / f"server_{self.port}_{self.starts}.out"
        log = self.log.open("w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--settings", str(self.settings)],
                                     cwd=self.lab, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.starts += 1
        if not wait_hello:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if expect_exit:
                    return
                raise RuntimeError(f"server exited {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if requests.get(self.url + "/pnp/HELLO", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.kill()  # never leave a half-started server behind
        raise RuntimeError(f"server did not come back: {self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        """What the server printed so far."""
        log = getattr(self, "log", None)
        return log.read_text(errors="replace") if log is not None and log.exists() else ""


def child_pids(pid: int) -> list[int]:
    """Pids of the direct children of ``pid`` (gunicorn's workers of a master), from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def drive(devices, timeout=90):
    """Run ``device.run(timeout)`` for every device in its own thread; ``{serial: finished?}``."""
    results = {}
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d.serial, d.run(timeout=timeout)))
               for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def db_rows(url):
    """``{serial: row}`` of device_state (the columns the end-to-end checks read)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT serial_number, state, running_version, configured, "
                                 "tarball_transferred, script_transferred, config_register, "
                                 "script_output FROM device_state")).mappings().all()
    engine.dispose()
    return {r["serial_number"]: r for r in rows}


def assert_finished(server_url, db_url, devices, results, image_downloads=1):
    """Every device FINISHED with the target image, config, files, guestshell and script,
    each having downloaded the image ``image_downloads`` times."""
    assert all(results.values()), {d.serial: d.log[-5:] for d in devices}
    rows = db_rows(db_url)
    image_url = f"{server_url}/images/{IMAGE_NAME}"
    for dev in devices:
        row = rows[dev.serial]
        assert row["state"] == "FINISHED"
        assert row["running_version"] == IMAGE_VERSION == dev.version
        assert row["configured"] and row["tarball_transferred"] and row["script_transferred"]
        assert row["config_register"] == "0x2102" == dev.config_register
        assert "PNP-SCRIPT-OK" in row["script_output"]
        assert dev.downloads[image_url] == image_downloads, \
            f"{dev.serial}: image downloaded {dev.downloads[image_url]} times, not {image_downloads}"
        assert "guest-share/pxs.py" in dev.files
        assert dev.guestshell == "RUNNING"
        assert any("InstallGuestShell" in line for line in dev.startup_config)


def mariadb_binaries() -> tuple[str, str] | None:
    """Paths of mariadbd and mariadb-install-db, or None when not installed."""
    server = shutil.which("mariadbd") or (Path("/usr/sbin/mariadbd").is_file() and "/usr/sbin/mariadbd")
    install = shutil.which("mariadb-install-db")
    return (server, install) if server and install else None


class OwnMariaDB:
    """One private mariadbd process; ``url(db)`` gives the SQLAlchemy URL."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir, self.port = Path(datadir), port
        self.proc: subprocess.Popen | None = None
        binaries = mariadb_binaries()
        if binaries is None:
            raise RuntimeError("mariadbd / mariadb-install-db not installed")
        self.server_bin, self.install_bin = binaries

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        subprocess.run([self.install_bin, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self, timeout: float = 60.0) -> None:
        log = (self.datadir / "mariadbd.out").open("a")
        self.proc = subprocess.Popen(
            [self.server_bin, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.datadir / 'mysqld.sock'}", f"--pid-file={self.datadir / 'mysqld.pid'}",
             f"--log-error={self.datadir / 'error.log'}", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", "--max-connections=300", "--skip-name-resolve"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {(self.datadir / 'error.log').read_text()[-2000:]}")
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.3)
        raise RuntimeError("mariadbd did not accept connections")

    def execute(self, sql: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def kill(self) -> None:
        """SIGKILL: the database crashes, connections drop at once."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def galera_provider() -> str | None:
    """Path of Debian's Galera 4 provider library (package galera-4), or None."""
    for path in ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so"):
        if Path(path).is_file():
            return path
    return None


class GaleraNode:
    """One ``mariadbd`` of a :class:`GaleraCluster`: its own datadir, SQL, group-communication
    (gcomm), IST and SST ports on 127.0.0.1."""

    def __init__(self, cluster: GaleraCluster, index: int) -> None:
        self.cluster, self.index = cluster, index
        self.name = f"node{index + 1}"
        self.home = cluster.base / self.name  # logs, socket, pid: outside the datadir SST copies
        self.datadir = self.home / "data"
        self.port, self.gcomm_port, self.ist_port, self.sst_port = (free_port() for _ in range(4))
        self.proc: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def argv(self, bootstrap: bool) -> list[str]:
        c = self.cluster
        peers = ",".join(f"127.0.0.1:{n.gcomm_port}" for n in c.nodes)
        provider_options = ";".join([
            f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port}",
            f"ist.recv_addr=127.0.0.1:{self.ist_port}",
            "gcache.size=64M", "evs.keepalive_period=PT0.5S", "evs.suspect_timeout=PT2S",
            "evs.inactive_timeout=PT4S",
            "pc.wait_prim_timeout=PT30S"])
        args = [c.server_bin, "--no-defaults", f"--datadir={self.datadir}", f"--user={c.user}",
                f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--socket={self.home / 'mysqld.sock'}", f"--pid-file={self.home / 'mysqld.pid'}",
                f"--log-error={self.home / 'error.log'}", "--skip-name-resolve",
                "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
                "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--max-connections=300",
                "--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
                "--innodb-flush-log-at-trx-commit=2",
                "--wsrep-on=ON", f"--wsrep-provider={c.provider}", f"--wsrep-cluster-name={c.name}",
                f"--wsrep-cluster-address=gcomm://{peers}", f"--wsrep-node-name={self.name}",
                f"--wsrep-node-address=127.0.0.1:{self.gcomm_port}",
                f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
                f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
                "--wsrep-sst-method=rsync", f"--wsrep-provider-options={provider_options}"]
        if bootstrap:
            args.append("--wsrep-new-cluster")
        return args

    def install(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.cluster.own(self.home)
        subprocess.run([self.cluster.install_bin, "--no-defaults", f"--datadir={self.datadir}",
                        f"--user={self.cluster.user}", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True, timeout=120)

    def recovered_position(self) -> str | None:
        """``uuid:seqno`` InnoDB recovered after a crash (``mariadbd --wsrep-recover``, what
        Debian's galera_recovery does under systemd); None when it cannot tell."""
        log = self.home / "recover.log"
        log.unlink(missing_ok=True)
        args = [a for a in self.argv(False) if not a.startswith("--log-error=")]
        subprocess.run([*args, f"--log-error={log}", "--wsrep-recover"], capture_output=True, timeout=120)
        text = log.read_text(errors="replace") if log.exists() else ""
        found = [line.split("Recovered position:")[1].strip() for line in text.splitlines()
                 if "Recovered position:" in line]
        return found[-1] if found and not found[-1].endswith(":-1") else None

    def start(self, bootstrap: bool = False, timeout: float = 90.0, position: str | None = None) -> None:
        """Start mariadbd and wait until it is Synced (``wsrep_local_state`` = 4)."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.cluster.own(self.home)
        log = (self.home / "mariadbd.out").open("a")
        # the wsrep_sst_* scripts live in /usr/bin; mariadbd runs them through PATH
        env = {**os.environ, "PATH": f"/usr/bin:/usr/sbin:/bin:/sbin:{os.environ.get('PATH', '')}"}
        args = self.argv(bootstrap) + ([f"--wsrep-start-position={position}"] if position else [])
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        self.wait_synced(timeout)

    def wait_synced(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.error_log()[-3000:]}")
            if self.status().get("wsrep_local_state") == "4":
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not Synced after {timeout}s: {self.error_log()[-3000:]}")

    def error_log(self) -> str:
        path = self.home / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def status(self) -> dict[str, str]:
        """``SHOW STATUS LIKE 'wsrep%'`` as a dict ({} while the node does not answer)."""
        try:
            conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2,
                                   read_timeout=5)
        except pymysql.err.OperationalError:
            return {}
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
                return {k: str(v) for k, v in cur.fetchall()}
        except pymysql.err.MySQLError:
            return {}
        finally:
            conn.close()

    def execute(self, sql: str, *args, database: str | None = None) -> list[tuple]:
        """Run one statement on this node (autocommitted); its rows."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5,
                               database=database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                rows = list(cur.fetchall())
            conn.commit()
            return rows
        finally:
            conn.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node crashes; the others evict it after evs.suspect_timeout (2 s here)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown; the node leaves the cluster gracefully."""
        self._signal(signal.SIGTERM)

    def rejoin(self, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again, as systemd's unit does (recover the position,
        then start): it rejoins by itself, by IST from a donor's gcache when its position is
        still there, else by rsync SST, and is Synced when this returns."""
        if self.running:
            raise RuntimeError(f"{self.name} is still running")
        self.last_position = self.recovered_position()
        self.start(bootstrap=False, timeout=timeout, position=self.last_position)

    def joined_by_ist(self) -> bool:
        """The last (re)join received an incremental state transfer, not a full SST."""
        text = self.error_log()
        last = max(text.rfind(" as process "), 0)
        return "IST received" in text[last:] or "Receiving IST" in text[last:]

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)  # the SST script and rsync run in its group
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


class GaleraCluster:
    """A MariaDB Galera cluster of ``size`` private ``mariadbd`` processes on 127.0.0.1.

    ``base`` (default: a new folder in /tmp) holds one folder per node. The first
    node bootstraps the cluster (``--wsrep-new-cluster``) from a fresh
    datadir; the others join it by rsync SST. ``close()`` kills every node and
    removes the datadirs. Never touches the machine's shared MariaDB.
    """

    def __init__(self, base: Path | None = None, size: int = 3, name: str = "pnp_test") -> None:
        binaries = mariadb_binaries()
        provider = galera_provider()
        if binaries is None or provider is None or shutil.which("rsync") is None:
            raise RuntimeError("a Galera cluster needs mariadb-server, galera-4 and rsync (.ci/apt/galera.txt)")
        self.server_bin, self.install_bin = binaries
        # not under pytest's tmp (mode 0700): the ``mysql`` user must traverse the path
        self.provider, self.name = provider, name
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="pnp-galera-"))
        # as root, mariadbd runs as ``mysql`` (Debian's user), so that the joiner's rsync daemon
        # (which a root parent would switch to ``nobody``) can write its datadir
        self.user = "mysql" if os.geteuid() == 0 else getpass.getuser()
        self.nodes = [GaleraNode(self, i) for i in range(size)]

    def own(self, path: Path) -> None:
        """Make ``path`` (and what is under it) the database user's; the base traversable."""
        path.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(path, self.user, self.user)
            for sub in path.rglob("*"):
                shutil.chown(sub, self.user, self.user)

    def start(self) -> None:
        """Install and bootstrap node 1, then join the others one by one (each Synced)."""
        first, *others = self.nodes
        first.install()
        first.start(bootstrap=True)
        for node in others:
            node.datadir.mkdir(parents=True, exist_ok=True)  # empty: filled by SST
            node.start()

    def size(self) -> int:
        """``wsrep_cluster_size`` as one running node sees it."""
        for node in self.nodes:
            if node.running:
                value = node.status().get("wsrep_cluster_size")
                if value:
                    return int(value)
        return 0

    def wait_size(self, size: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.size() == size:
                return
            time.sleep(0.3)
        raise RuntimeError(f"cluster size is {self.size()}, expected {size}")

    def create_database(self, database: str) -> None:
        self.nodes[0].execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.base, ignore_errors=True)


class HAProxy:
    """Debian's ``haproxy`` in the foreground on 127.0.0.1 running deploy/haproxy.cfg (its
    addresses replaced by loopback ports): an HTTP frontend spreading device traffic over
    ``instances`` (``balance random``, no stickiness, each response names its instance in ``X-Served-By``) and, with
    ``db_nodes``, a TCP frontend for MariaDB that sends every connection to one Galera node
    at a time (single writer; ``mysql-check``; failover on a node loss, no failback).
    ``instances`` and ``db_nodes`` are lists of (name, port)."""

    def __init__(self, workdir: Path, instances: list[tuple[str, int]],
                 db_nodes: list[tuple[str, int]] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.db_port = free_port() if db_nodes else None
        self.instances, self.db_nodes = instances, db_nodes or []
        self.cfg = self.workdir / "haproxy.cfg"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def db_url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.db_port}/{database}"

    def config_text(self) -> str:
        """deploy/haproxy.cfg with loopback ports and this test's servers (same directives)."""
        out, kept_server = [], set()
        section = ""
        for line in (ROOT / "deploy" / "haproxy.cfg").read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or not stripped:
                continue
            if not line.startswith(" "):
                section = stripped
                if section == "listen galera" and not self.db_nodes:
                    break
            elif stripped.startswith("log ") or stripped == "option httplog":
                continue
            elif stripped.startswith("maxconn"):
                line = "    maxconn 2000"  # the test machine's fd limit
            elif stripped.startswith("stats socket"):
                line = f"    stats socket {self.workdir / 'admin.sock'} mode 600 level admin"
            elif stripped == "bind :80":
                line = f"    bind 127.0.0.1:{self.http_port}"
            elif stripped == "bind :3306":
                line = f"    bind 127.0.0.1:{self.db_port}"
            elif stripped.startswith("server "):
                if section in kept_server:
                    continue
                kept_server.add(section)
                options = " ".join(stripped.split()[3:]).replace(" backup", "")
                targets = self.instances if section == "backend pnp_instances" else self.db_nodes
                for i, (name, port) in enumerate(targets):
                    backup = " backup" if i and section == "listen galera" else ""
                    out.append(f"    server {name} 127.0.0.1:{port} {options}{backup}")
                continue
            out.append(line.split(" #")[0].rstrip())
        return "\n".join(out) + "\n"

    def start(self, timeout: float = 15.0) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise RuntimeError("haproxy is not installed (.ci/apt/galera.txt)")
        self.cfg.write_text(self.config_text())
        subprocess.run([binary, "-c", "-q", "-f", str(self.cfg)], check=True, capture_output=True)
        self.log = self.workdir / "haproxy.out"
        self.proc = subprocess.Popen([binary, "-db", "-f", str(self.cfg)], stdout=self.log.open("a"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("haproxy did not listen")

    def command(self, line: str) -> str:
        """One command on the admin socket (``show stat``, ``show table galera``…)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.workdir / "admin.sock"))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self, backend: str) -> dict[str, str]:
        """``{server: UP/DOWN/...}`` of ``backend`` from ``show stat``."""
        out = {}
        for line in self.command("show stat").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == backend and fields[1] not in ("FRONTEND", "BACKEND"):
                out[fields[1]] = fields[17]
        return out

    def wait_up(self, backend: str, names: list[str], timeout: float = 30.0) -> None:
        """Wait until HAProxy's health checks have every server in ``names`` UP."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.server_states(backend)
            if all(states.get(name) == "UP" for name in names):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{backend}: not all UP: {self.server_states(backend)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
def scratch_database(charset: str = "utf8mb4") -> str:
    """A new, empty database on the shared MariaDB (``MARIADB_ADMIN_URL``) created with
    ``CHARACTER SET charset`` (``latin1``: what ``CREATE DATABASE pnp;`` gives on a server
    whose default is latin1); returns its URL. Drop it with ``drop_database``."""
    import uuid

    name = f"pnp_scratch_{uuid.uuid4().hex[:10]}"
    engine = create_engine(MARIADB_ADMIN_URL)
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET {charset}"))
    engine.dispose()
    return f"{MARIADB_ADMIN_URL}/{name}"


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (made by ``scratch_database``)."""
    name = url.rsplit("/", 1)[-1]
    engine = create_engine(MARIADB_ADMIN_URL)
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    engine.dispose()


class WebhookReceiver:
    """A local HTTP receiver: records each POST; answers the statuses queued in ``answers``."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answers: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"headers": dict(self.headers), "body": body})
                status = outer.answers.pop(0) if outer.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"try later")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
