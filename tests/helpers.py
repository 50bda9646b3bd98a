"""Shared test helpers, imported by conftest.py and by every test module that needs them.

* constants of the lab folder (``IMAGE_NAME``, ``FAST_SETTINGS`` …) and ``fixture_text``
  (real PnP messages in simulator/messages/);
* ``free_port``, ``write_settings``;
* ``ServerProcess``: the real server (``run.py`` under gunicorn) as a process on
  127.0.0.1: start, stop (SIGTERM), kill (SIGKILL of the whole process group);
* ``drive``: run simulated devices in threads; ``db_rows``, ``assert_finished``;
* ``OwnMariaDB``: a private ``mariadbd`` for tests that stop the database
  (never the machine's shared one).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
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
    whole process group, ``stop()`` sends SIGTERM."""

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
