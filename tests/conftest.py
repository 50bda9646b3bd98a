"""Shared pytest fixtures: a lab folder, app/client/runner, MariaDB, a real gunicorn server.

* ``lab``: a temporary project root with images/ (a small fake IOS-XE image),
  configs/default.cfg, files/ (guestshell tarball + pxs.py) and a settings file.
* ``app``, ``client``, ``runner``: the Flask tutorial fixtures on a SQLite file.
* ``mariadb_url``: a fresh MariaDB database for this test session (CI requires
  MariaDB; locally the MariaDB tests skip when it cannot be reached).
* ``start_server``: starts ``run.py`` (gunicorn) as a real process on a free
  loopback port and returns its base URL; stopped at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

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


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A project root with a 3 MB fake image, configs/default.cfg, tarball and script."""
    for name in ("images", "configs", "files", "logs"):
        (tmp_path / name).mkdir()
    shutil.copytree(ROOT / "templates", tmp_path / "templates", dirs_exist_ok=True)
    (tmp_path / "images" / IMAGE_NAME).write_bytes(os.urandom(3 * 1024 * 1024))
    (tmp_path / "files" / TARBALL).write_bytes(os.urandom(200 * 1024))
    shutil.copy(ROOT / "files" / "pxs.py", tmp_path / "files" / "pxs.py")
    shutil.copy(ROOT / "configs" / "default.cfg", tmp_path / "configs" / "default.cfg")
    return tmp_path


@pytest.fixture
def make_config(lab: Path):
    """Build a Config rooted in ``lab`` with the fast test settings plus overrides."""
    from app.config import Config

    def make(**overrides):
        values = {k.lower(): v for k, v in FAST_SETTINGS.items()}
        values.update(root=lab, database_url=f"sqlite:///{lab / 'pnp.sqlite3'}")
        values.update(overrides)
        return Config.load(None, env={}, **values)
    return make


@pytest.fixture
def make_app(make_config):
    """Factory: the Flask app for ``make_config(**overrides)`` on a migrated database;
    its engine is disposed at teardown."""
    from app import create_app

    apps = []

    def make(**overrides):
        application = create_app(make_config(**overrides), migrate=True)
        application.config["TESTING"] = True
        apps.append(application)
        return application
    yield make
    for application in apps:
        application.extensions["pnp_engine"].dispose()


@pytest.fixture
def app(make_app):
    """The Flask app on a migrated SQLite file in the lab folder."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    """Flask's CLI runner whose ``invoke(args=[...])`` runs the operator commands of run.py."""
    import click

    from app.cli.commands import GROUPS

    group = click.Group("pnp", commands={g.name: g for g in GROUPS})
    cli_runner = app.test_cli_runner()
    invoke = cli_runner.invoke
    cli_runner.invoke = lambda cli=None, args=None, **kw: invoke(cli or group, args, **kw)
    return cli_runner


@pytest.fixture(scope="session")
def mariadb_url():
    """A fresh MariaDB database for the session; dropped afterwards.

    Skips locally when MariaDB is unreachable; fails under CI (CI=true).
    """
    from sqlalchemy import create_engine, text

    name = f"pnp_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MARIADB_ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except Exception as exc:  # noqa: BLE001 - any connection failure
        if os.environ.get("CI"):
            raise
        pytest.skip(f"MariaDB not reachable at {MARIADB_ADMIN_URL}: {exc.__class__.__name__}")
    yield f"{MARIADB_ADMIN_URL}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture
def mariadb_fresh(mariadb_url):
    """The session MariaDB database, emptied of devices (schema kept)."""
    from sqlalchemy import create_engine, text

    from app.storage.migrate import upgrade

    upgrade(mariadb_url)
    engine = create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM device_event"))
        conn.execute(text("DELETE FROM device_state"))
    engine.dispose()
    return mariadb_url


class Server:
    """A running ``run.py`` process: ``url``, ``root``, ``settings``; ``stop()``."""

    def __init__(self, proc: subprocess.Popen, url: str, root: Path, log: Path):
        self.proc, self.url, self.root, self.log = proc, url, root, log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_server(lab: Path):
    """Factory: start run.py under gunicorn on 127.0.0.1:<free port>; returns a Server."""
    servers: list[Server] = []

    def start(database_url: str | None = None, timeout: float = 30.0, **settings) -> Server:
        port = free_port()
        values = {**FAST_SETTINGS, "PORT": port, "BIND": "127.0.0.1", **settings}
        values["DATABASE_URL"] = database_url or f"sqlite:///{lab / 'pnp.sqlite3'}"
        settings_file = write_settings(lab / f"settings_{port}.py", **values)
        log = lab / "logs" / f"server_{port}.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PNP_")}
        env.update(PNP_ROOT=str(lab), PYTHONUNBUFFERED="1")
        env.pop("DATABASE_URL", None)
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--settings", str(settings_file)],
                                cwd=lab, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        server = Server(proc, f"http://127.0.0.1:{port}", lab, log)
        servers.append(server)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}: {server.output()}")
            try:
                if requests.get(server.url + "/pnp/HELLO", timeout=1).status_code == 200:
                    return server
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer HELLO: {server.output()}")

    yield start
    for server in servers:
        server.stop()
